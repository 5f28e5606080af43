// The seed's quick example translated to TypeScript (examples/quickstart.ts), run as a program
// against a fresh server, configured only by NULLSPACE_API_URL and NULLSPACE_API_KEY.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Client, Sandbox, Volume } from "nullspace";

import { PACKAGE_DIR, startServer, type TestServer } from "./server.js";

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("the quick example prints what it wrote through the mount, and leaves no sandbox", async () => {
  const env: Record<string, string> = { PATH: process.env["PATH"] ?? "", HOME: server.tmp };
  env["NULLSPACE_API_URL"] = server.url;
  env["NULLSPACE_API_KEY"] = server.key;
  const run = spawnSync(process.execPath, [join(PACKAGE_DIR, "dist", "examples", "quickstart.js")], { env, encoding: "utf8" });
  assert.equal(run.stderr, "");
  assert.equal(run.status, 0);
  assert.equal(run.stdout, "persistent\n");

  const client = new Client({ apiUrl: server.url, apiKey: server.key });
  assert.deepEqual(await Sandbox.list({ client }), []);
  const volume = await Volume.fromName("team-data", { client });
  assert.equal(await volume.files.read("/hello.txt"), "persistent\n");
  // Running it again finds the volume instead of making a second one.
  const again = spawnSync(process.execPath, [join(PACKAGE_DIR, "dist", "examples", "quickstart.js")], { env, encoding: "utf8" });
  assert.equal(again.stdout, "persistent\n");
  assert.equal((await Volume.list({ client })).filter((v) => v.name === "team-data").length, 1);
});
