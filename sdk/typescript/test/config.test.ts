// Configuration resolution: options, NULLSPACE_API_URL/KEY, the CLI profile, the local
// server's client.json, the default; a file's key only for that file's URL.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { test } from "node:test";

import { Client, InvalidArgumentError, resolveConfig } from "nullspace";

function home(): string {
  return mkdtempSync(join(tmpdir(), "nullspace-ts-config-"));
}

function put(path: string, doc: unknown): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, typeof doc === "string" ? doc : JSON.stringify(doc));
}

test("order: options, then environment, then profile, then client.json, then the default", () => {
  const h = home();
  assert.deepEqual({ ...resolveConfig({}, { HOME: h }), key: null }, { url: "http://127.0.0.1:7420", key: null, urlSource: "default", keySource: null });
  put(join(h, ".local/share/nullspace/client.json"), { url: "http://127.0.0.1:7000", key: "nsk_boot" });
  let c = resolveConfig({}, { HOME: h });
  assert.deepEqual([c.url, c.key, c.urlSource.split(" ")[0]], ["http://127.0.0.1:7000", "nsk_boot", "bootstrap"]);
  put(join(h, ".config/nullspace/config.json"), { url: "localhost:7001/", key: "nsk_prof" });
  c = resolveConfig({}, { HOME: h });
  assert.deepEqual([c.url, c.key, c.urlSource.split(" ")[0]], ["http://localhost:7001", "nsk_prof", "profile"]);
  c = resolveConfig({}, { HOME: h, NULLSPACE_API_URL: "http://127.0.0.1:7000", NULLSPACE_API_KEY: "" });
  assert.deepEqual([c.url, c.key, c.keySource?.split(" ")[0]], ["http://127.0.0.1:7000", "nsk_boot", "bootstrap"], "a file's key for its own URL");
  c = resolveConfig({}, { HOME: h, NULLSPACE_API_URL: "http://example.com:1" });
  assert.deepEqual([c.url, c.key], ["http://example.com:1", null], "no file's key goes to another server");
  c = resolveConfig({ apiUrl: "http://example.com:2", apiKey: "nsk_arg" }, { HOME: h, NULLSPACE_API_URL: "http://x", NULLSPACE_API_KEY: "nsk_env" });
  assert.deepEqual([c.url, c.key, c.urlSource, c.keySource], ["http://example.com:2", "nsk_arg", "argument", "argument"]);
});

test("XDG and NULLSPACE_DATA_DIR are honoured when absolute; a damaged profile is an error, a damaged client.json is skipped", () => {
  const h = home();
  put(join(h, "data/client.json"), { url: "http://127.0.0.1:7100", key: "nsk_data" });
  assert.equal(resolveConfig({}, { HOME: h, NULLSPACE_DATA_DIR: join(h, "data") }).key, "nsk_data");
  assert.equal(resolveConfig({}, { HOME: h, NULLSPACE_DATA_DIR: "data" }).key, null, "relative: ignored");
  put(join(h, "xdg/nullspace/config.json"), "{not json");
  assert.throws(() => resolveConfig({}, { HOME: h, XDG_CONFIG_HOME: join(h, "xdg") }), InvalidArgumentError);
  put(join(h, ".local/share/nullspace/client.json"), "[1,2]");
  assert.equal(resolveConfig({}, { HOME: h }).urlSource, "default");
});

test("the key never shows in logs", () => {
  const c = new Client({ apiUrl: "http://127.0.0.1:1", apiKey: "nsk_secret_value" });
  for (const shown of [inspect(c), String(c), JSON.stringify(c.config), inspect(c.config), JSON.stringify(c)]) {
    assert.ok(!shown.includes("nsk_secret_value"), shown);
  }
  assert.equal(c.config.key, "nsk_secret_value");
});
