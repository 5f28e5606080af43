// Volumes and the direct file API against the real server, and the error class of each code.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  AlreadyExistsError,
  Client,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  NullspaceError,
  PermissionDeniedError,
  QuotaExceededError,
  UnauthenticatedError,
  Volume,
  VolumeInUseError,
  APIConnectionError,
  UnavailableError,
  ERROR_CLASSES,
  Sandbox,
  ResourceExhaustedError,
} from "nullspace";

import { startServer, uniqueName, type TestServer } from "./server.js";

let server: TestServer;
let client: Client;
before(async () => {
  server = await startServer();
  client = new Client({ apiUrl: server.url, apiKey: server.key, retryBackoff: 10 });
});
after(async () => {
  await server?.stop();
});

async function freshVolume(): Promise<Volume> {
  return Volume.create(uniqueName(), { client });
}

describe("volumes", () => {
  test("fromName finds, createIfMissing creates once, create refuses a second, delete", async () => {
    const name = uniqueName();
    await assert.rejects(Volume.fromName(name, { client }), NotFoundError);
    const v = await Volume.fromName(name, { createIfMissing: true, client });
    const again = await Volume.fromName(name, { createIfMissing: true, client });
    assert.equal(again.id, v.id);
    await assert.rejects(Volume.create(name, { client }), AlreadyExistsError);
    const info = await v.info();
    assert.equal(info.name, name);
    assert.equal(info.used_bytes, 0);
    assert.equal(typeof info.cap_bytes, "number");
    assert.deepEqual(Object.keys(await v.info({ fields: ["name", "used_bytes"] })).sort(), ["name", "used_bytes"]);
    await Volume.delete(name, { client });
    await assert.rejects(v.info(), NotFoundError);
    await Volume.delete(name, { ifExists: true, client });
    await assert.rejects(Volume.delete(name, { client }), NotFoundError);
  });

  test("list filters by labels and selects fields", async () => {
    const a = await Volume.create(uniqueName(), { labels: { team: "ml" }, client });
    const b = await Volume.create(uniqueName(), { labels: { team: "web" }, client });
    const ml = await Volume.list({ labels: { team: "ml" }, fields: ["name"], client });
    assert.deepEqual(ml, [{ name: a.name }]);
    assert.ok((await Volume.list({ client })).some((v) => v.name === b.name && v.labels?.["team"] === "web"));
    await assert.rejects(Volume.list({ fields: ["nope" as "name"], client }), RangeError);
  });

  test("mount validates paths and subpaths before any request", async () => {
    const v = await freshVolume();
    assert.deepEqual(v.mount("/workspace//shared/."), { volume: v.name, path: "/workspace/shared", readOnly: false, subpath: null, volumeId: v.id });
    assert.deepEqual(v.mount("/w", { readOnly: true, subpath: "/a/./b/" }).subpath, "a/b");
    for (const bad of ["relative", "/", "/proc/x", "/a/../b"]) assert.throws(() => v.mount(bad), RangeError, bad);
    assert.throws(() => v.mount("/w", { subpath: "../up" }), RangeError);
  });
});

describe("files", () => {
  test("write, read, readBytes with ranges, readStream, stat, exists", async () => {
    const v = await freshVolume();
    const st = await v.files.write("/dir/hello.txt", "hello world");
    assert.equal(st.path, "/dir/hello.txt");
    assert.equal(st.type, "file");
    assert.equal(st.size, 11);
    assert.equal(await v.files.read("/dir/hello.txt"), "hello world");
    assert.deepEqual(await v.files.readBytes("/dir/hello.txt", { offset: 6, length: 3 }), new TextEncoder().encode("wor"));
    assert.deepEqual(await v.files.readBytes("/dir/hello.txt", { offset: 6 }), new TextEncoder().encode("world"));
    const stream = await v.files.readStream("/dir/hello.txt");
    assert.equal(stream.etag, st.etag);
    assert.equal(stream.size, 11);
    const parts: Uint8Array[] = [];
    for await (const c of stream) parts.push(c);
    assert.equal(Buffer.concat(parts).toString(), "hello world");
    assert.deepEqual(await v.files.stat("/dir/hello.txt"), st);
    assert.equal((await v.files.stat("/dir")).type, "dir");
    assert.equal(await v.files.exists("/dir/hello.txt"), true);
    assert.equal(await v.files.exists("/nope"), false);
    await assert.rejects(v.files.read("/nope"), NotFoundError);
    await assert.rejects(v.files.read("relative"), RangeError);
  });

  test("write takes bytes, Blobs, web streams and async iterables; ifMatch and overwrite", async () => {
    const v = await freshVolume();
    await v.files.write("/b", new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual(await v.files.readBytes("/b"), new Uint8Array([0, 1, 2, 255]));
    await v.files.write("/blob", new Blob(["from ", "a blob"]));
    assert.equal(await v.files.read("/blob"), "from a blob");
    async function* gen(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 100; i++) yield new Uint8Array(10_000).fill(i);
    }
    const big = await v.files.write("/gen", gen());
    assert.equal(big.size, 1_000_000);
    const web = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("web "));
        c.enqueue(new TextEncoder().encode("stream"));
        c.close();
      },
    });
    await v.files.write("/web", web);
    assert.equal(await v.files.read("/web"), "web stream");

    const first = await v.files.write("/c", "one");
    await assert.rejects(v.files.write("/c", "two", { overwrite: false }), AlreadyExistsError);
    const second = await v.files.write("/c", "two", { ifMatch: first });
    assert.notEqual(second.etag, first.etag);
    await assert.rejects(v.files.write("/c", "three", { ifMatch: first.etag }), ConflictError);
    assert.equal(await v.files.read("/c"), "two");
  });

  test("mkdir, list (recursive, glob, pages), move, copy, remove", async () => {
    const v = await freshVolume();
    await v.files.mkdir("/a/b/c");
    await assert.rejects(v.files.mkdir("/x/y", { parents: false }), NotFoundError);
    for (let i = 0; i < 5; i++) await v.files.write(`/a/f${i}.txt`, `${i}`);
    await v.files.write("/a/b/deep.md", "deep");
    const top = await v.files.list("/a");
    assert.deepEqual(top.map((e) => e.path), ["/a/b", "/a/f0.txt", "/a/f1.txt", "/a/f2.txt", "/a/f3.txt", "/a/f4.txt"]);
    const all = await v.files.list("/", { recursive: true });
    assert.ok(all.some((e) => e.path === "/a/b/deep.md"));
    assert.deepEqual((await v.files.list("/", { recursive: true, glob: "*.md" })).map((e) => e.path), ["/a/b/deep.md"]);
    const paged: string[] = [];
    for await (const e of v.files.iterList("/a", { pageSize: 2 })) paged.push(e.path);
    assert.deepEqual(paged, top.map((e) => e.path));

    await v.files.move("/a/f0.txt", "/moved.txt");
    assert.equal(await v.files.exists("/a/f0.txt"), false);
    await assert.rejects(v.files.move("/a/f1.txt", "/moved.txt"), AlreadyExistsError);
    await v.files.move("/a/f1.txt", "/moved.txt", { overwrite: true });
    assert.equal(await v.files.read("/moved.txt"), "1");
    await v.files.copy("/a", "/copy");
    assert.equal(await v.files.read("/copy/b/deep.md"), "deep");
    await assert.rejects(v.files.copy("/a", "/copy2", { recursive: false }), InvalidArgumentError);
    await assert.rejects(v.files.remove("/a"), InvalidArgumentError);
    await v.files.remove("/a", { recursive: true });
    await v.files.remove("/moved.txt");
    assert.deepEqual((await v.files.list("/")).map((e) => e.path), ["/copy"]);
  });

  test("edit replaces exactly count occurrences, or none and conflict", async () => {
    const v = await freshVolume();
    await v.files.write("/e.txt", "a a a b");
    await assert.rejects(v.files.edit("/e.txt", "a", "x"), (e: unknown) => e instanceof ConflictError && /3/.test(e.message));
    assert.equal(await v.files.read("/e.txt"), "a a a b");
    await v.files.edit("/e.txt", "b", "c");
    await v.files.edit("/e.txt", "a", "x", { count: 3 });
    assert.equal(await v.files.read("/e.txt"), "x x x c");
    const st = await v.files.edit("/e.txt", "x", "y", { count: "all" });
    await assert.rejects(v.files.edit("/e.txt", "y", "z", { ifMatch: "stale" }), ConflictError);
    await v.files.edit("/e.txt", "y", "z", { count: "all", ifMatch: st });
    assert.equal(await v.files.read("/e.txt"), "z z z c");
    await assert.rejects(v.files.edit("/none", "a", "b"), NotFoundError);
  });

  test("search streams matches and a summary; replace and its dry run", async () => {
    const v = await freshVolume();
    await v.files.write("/src/a.py", "TODO one\nfine\ntodo two\n");
    await v.files.write("/src/b.ts", "// TODO three\n");
    await v.files.write("/bin", new Uint8Array([0, 84, 79, 68, 79]));
    const hits = await v.files.search("TODO").toArray();
    assert.deepEqual(hits, [
      { path: "/src/a.py", line: 1, column: 1, text: "TODO one" },
      { path: "/src/b.ts", line: 1, column: 4, text: "// TODO three" },
    ]);
    const results = v.files.search("todo", { ignoreCase: true, glob: "*.py", maxResults: 1 });
    const few = [];
    for await (const m of results) few.push(m);
    assert.equal(few.length, 1);
    assert.deepEqual(results.summary, { matches: 1, truncated: true });
    assert.equal((await v.files.search("T.DO", { regex: false }).toArray()).length, 0);
    await assert.rejects(v.files.search("(unclosed").toArray(), InvalidArgumentError);

    const dry = await v.files.replace("TODO", "DONE", { dryRun: true });
    assert.equal(dry.replacements, 2);
    assert.equal(dry.dry_run, true);
    assert.equal(await v.files.read("/src/b.ts"), "// TODO three\n");
    const done = await v.files.replace("(?i)todo (\\w+)", "DONE $1", { path: "/src" });
    assert.equal(done.files_changed, 2);
    assert.equal(done.replacements, 3);
    assert.equal(await v.files.read("/src/a.py"), "DONE one\nfine\nDONE two\n");
  });
});

describe("errors", () => {
  test("one class per SPEC code, all NullspaceErrors, with code, status and retryable", () => {
    const codes = Object.keys(ERROR_CLASSES).sort();
    assert.deepEqual(codes, [
      "already_exists", "conflict", "internal", "invalid_argument", "not_found", "payload_too_large",
      "permission_denied", "quota_exceeded", "resource_exhausted", "unauthenticated", "unavailable", "volume_in_use",
    ]);
    const classes = new Set(Object.values(ERROR_CLASSES));
    assert.equal(classes.size, codes.length);
    for (const [code, cls] of Object.entries(ERROR_CLASSES)) {
      const e = new cls("m");
      assert.ok(e instanceof NullspaceError && e instanceof Error);
      assert.equal(e.code, code);
      assert.equal(e.name, cls.name);
    }
    assert.ok(new APIConnectionError("x") instanceof UnavailableError);
  });

  test("the server's codes arrive as their classes", async () => {
    const v = await freshVolume();
    const bad = new Client({ apiUrl: server.url, apiKey: "nsk_wrong" });
    await assert.rejects(Volume.list({ client: bad }), (e: unknown) => e instanceof UnauthenticatedError && e.status === 401 && e.code === "unauthenticated");
    await assert.rejects(Volume.list({ client: new Client({ apiUrl: server.url }) }), UnauthenticatedError);
    await assert.rejects(v.files.read("/x"), (e: unknown) => e instanceof NotFoundError && e.status === 404 && !e.retryable);
    await assert.rejects(v.files.write("/../x", "x"), RangeError);
    const token = await client.requestJson<{ key: string }>("POST", `/v1/volumes/${v.name}/tokens`, { json: { read_only: true } });
    const ro = new Volume(v.name, v.id, { client: new Client({ apiUrl: server.url, apiKey: token.key }) });
    await assert.rejects(ro.files.write("/x", "x"), PermissionDeniedError);

    const tenant = await client.requestJson<{ key: string }>("POST", "/v1/admin/tenants", { json: { name: uniqueName("t") } });
    const small = new Client({ apiUrl: server.url, apiKey: tenant.key });
    const who = await small.requestJson<{ tenant: string }>("GET", "/v1/whoami");
    await client.requestJson("PUT", `/v1/admin/tenants/${who.tenant}/volume-cap`, { json: { cap_bytes: 1000 } });
    const sv = await Volume.create(uniqueName(), { client: small });
    await assert.rejects(sv.files.write("/big", new Uint8Array(2000)), (e: unknown) => e instanceof QuotaExceededError && e.status === 507);
    assert.equal(await sv.files.exists("/big"), false);
    await client.requestJson("PUT", `/v1/admin/tenants/${who.tenant}/limits`, { json: { max_volumes: 1 } });
    await assert.rejects(Volume.create(uniqueName(), { client: small }), ResourceExhaustedError);

    const used = await freshVolume();
    const sb = await Sandbox.create({ volumes: [used.mount("/data")], client });
    try {
      await assert.rejects(Volume.delete(used.name, { client }), VolumeInUseError);
    } finally {
      await sb.destroy();
    }
    await Volume.delete(used.name, { client });
  });

  test("a server that is not there is an APIConnectionError (retried, then thrown)", async () => {
    const gone = new Client({ apiUrl: "http://127.0.0.1:9", apiKey: "k", maxRetries: 1, retryBackoff: 1 });
    await assert.rejects(Volume.list({ client: gone }), (e: unknown) => e instanceof APIConnectionError && e.status === null && /127\.0\.0\.1:9/.test(e.message));
  });
});
