// Sandboxes through the SDK: mounts (read-only, subpath), exec, files, attach/detach, lifecycle.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client, InvalidArgumentError, NotFoundError, Sandbox, Volume } from "nullspace";

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

test("mounts at create: read-write, read-only and subpath; exec; sandbox files", { timeout: 120_000 }, async () => {
  const v = await Volume.create(uniqueName(), { client });
  await v.files.write("/projects/a/readme.txt", "project a\n");
  await v.files.write("/top.txt", "top\n");
  await using sb = await Sandbox.create({
    volumes: [v.mount("/rw"), v.mount("/ro", { readOnly: true }), v.mount("/sub", { subpath: "projects/a" })],
    env: { GREETING: "hi" },
    client,
  });
  const info = await sb.info();
  assert.equal(info.state, "running");
  assert.deepEqual(info.attachments.map((a) => [a.mount_path, a.read_only, a.subpath ?? null, a.state]).sort(), [
    ["/ro", true, null, "mounted"],
    ["/rw", false, null, "mounted"],
    ["/sub", false, "projects/a", "mounted"],
  ]);

  const echo = await sb.exec(["sh", "-c", 'echo "$GREETING $0" && echo err >&2 && exit 3', "there"]);
  assert.deepEqual([echo.stdout, echo.stderr, echo.exitCode, echo.timedOut], ["hi there\n", "err\n", 3, false]);
  const sh = await sb.exec("cat && pwd", { stdin: "from stdin\n", cwd: "/rw", env: { X: "1" } });
  assert.equal(sh.stdout, "from stdin\n/rw\n");
  const bin = await sb.exec(["printf", "\\000\\377"]);
  assert.equal(bin.stdout, "");
  assert.deepEqual(bin.stdoutBytes, new Uint8Array([0, 255]));

  assert.equal((await sb.exec("cat /sub/readme.txt && ls /sub")).stdout, "project a\nreadme.txt\n");
  const denied = await sb.exec("echo x > /ro/new.txt");
  assert.notEqual(denied.exitCode, 0);
  assert.match(denied.stderr, /Read-only/i);
  await sb.exec("echo from-sandbox > /rw/made.txt");
  assert.equal(await v.files.read("/made.txt"), "from-sandbox\n");

  await sb.files.write("/tmp/f.txt", "sandbox file");
  assert.equal(await sb.files.read("/tmp/f.txt"), "sandbox file");
  assert.ok((await sb.files.list("/tmp")).some((e) => e.name === "f.txt"));
  assert.equal(await sb.files.read("/rw/top.txt"), "top\n");
  await assert.rejects(Sandbox.create({ volumes: [{ ...v.mount("/x"), path: "relative" }], client }), InvalidArgumentError);
});

test("attach and detach at runtime; pause, resume, hibernate, fork, destroy, connect, list", { timeout: 180_000 }, async () => {
  const v = await Volume.create(uniqueName(), { client });
  await v.files.write("/data.txt", "shared\n");
  const sb = await Sandbox.create({ client });
  const att = await sb.volumes.attach(v.mount("/late"));
  assert.equal(att.state, "mounted");
  assert.equal(att.volume, v.name);
  assert.equal((await sb.exec("cat /late/data.txt")).stdout, "shared\n");
  assert.deepEqual((await sb.volumes.list()).map((a) => a.mount_path), ["/late"]);

  assert.equal((await sb.pause()).state, "paused");
  assert.equal((await sb.volumes.list())[0]?.state, "released");
  assert.equal((await sb.resume()).state, "running");
  assert.equal((await sb.volumes.list())[0]?.state, "mounted");
  assert.equal((await sb.hibernate()).state, "hibernated");
  assert.equal((await sb.exec("cat /late/data.txt")).stdout, "shared\n", "exec resumes a hibernated sandbox");

  await sb.exec("echo own > /tmp/own.txt");
  const child = await sb.fork();
  try {
    assert.notEqual(child.id, sb.id);
    assert.equal((await child.exec("cat /tmp/own.txt /late/data.txt")).stdout, "own\nshared\n");
  } finally {
    await child.destroy();
  }

  const detached = await sb.volumes.detach("/late");
  assert.equal(detached.state, "released");
  assert.notEqual((await sb.exec("test -e /late/data.txt")).exitCode, 0);

  assert.equal((await Sandbox.connect(sb.id, { client })).id, sb.id);
  assert.ok((await Sandbox.list({ client })).some((s) => s.id === sb.id));
  await sb.destroy();
  await assert.rejects(Sandbox.connect(sb.id, { client }), NotFoundError);
  assert.equal(await v.files.read("/data.txt"), "shared\n", "volumes outlive their sandboxes");
});
