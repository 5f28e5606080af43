// Resumable (tus) uploads and streamed downloads with progress, archives, signed URLs.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Client, NotFoundError, Volume, recordsDir } from "nullspace";

import { isolateEnv, startServer, uniqueName, type TestServer } from "./server.js";

let server: TestServer;
let client: Client;
before(async () => {
  server = await startServer();
  isolateEnv(server);
  client = new Client({ apiUrl: server.url, apiKey: server.key, retryBackoff: 10 });
});
after(async () => {
  await server?.stop();
});

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const MiB = 1024 * 1024;

test("upload sends chunks with progress; an interrupted upload resumes from the server's offset", async () => {
  const v = await Volume.create(uniqueName(), { client });
  const local = join(server.tmp, "data.bin");
  const data = randomBytes(5 * MiB + 123);
  writeFileSync(local, data);

  const seen: Array<[number, number | null]> = [];
  await assert.rejects(
    v.files.upload(local, "/up/data.bin", {
      chunkSize: MiB,
      progress: (done, total) => {
        seen.push([done, total]);
        if (done >= 2 * MiB) throw new Error("interrupted");
      },
    }),
    /interrupted/,
  );
  assert.deepEqual(seen, [[0, data.length], [MiB, data.length], [2 * MiB, data.length]]);
  assert.equal(await v.files.exists("/up/data.bin"), false, "nothing is published before the last byte");
  const pending = await v.uploads();
  assert.equal(pending.length, 1);
  assert.equal(pending[0]?.path, "/up/data.bin");
  assert.equal(pending[0]?.offset, 2 * MiB);
  assert.equal(readdirSync(recordsDir()!).length, 1, "the resume record is kept");

  const progress: number[] = [];
  const r = await v.files.upload(local, "/up/data.bin", { chunkSize: MiB, progress: (d) => progress.push(d) });
  assert.equal(r.resumedFrom, 2 * MiB);
  assert.equal(r.bytes, data.length);
  assert.equal(r.path, "/up/data.bin");
  assert.deepEqual(progress, [2 * MiB, 3 * MiB, 4 * MiB, 5 * MiB, data.length]);
  assert.equal(sha256(await v.files.readBytes("/up/data.bin")), sha256(data));
  assert.equal(r.etag, (await v.files.stat("/up/data.bin")).etag);
  assert.deepEqual(await v.uploads(), []);
  assert.deepEqual(readdirSync(recordsDir()!), [], "the record goes when the upload completes");

  // Into an existing directory, under the local name; without checksums.
  await v.files.mkdir("/dir");
  const into = await v.files.upload(local, "/dir", { checksum: false, resume: false });
  assert.equal(into.path, "/dir/data.bin");
  assert.equal(sha256(await v.files.readBytes("/dir/data.bin")), sha256(data));
});

test("cancelUpload frees a pending upload", async () => {
  const v = await Volume.create(uniqueName(), { client });
  const local = join(server.tmp, "c.bin");
  writeFileSync(local, randomBytes(3 * MiB));
  await assert.rejects(
    v.files.upload(local, "/c.bin", { chunkSize: MiB, resume: false, progress: (d) => { if (d > 0) throw new Error("stop"); } }),
    /stop/,
  );
  const [up] = await v.uploads();
  assert.ok(up);
  assert.equal((await v.info()).pending_upload_bytes, MiB, "pending bytes count as they arrive");
  await v.cancelUpload(up.id);
  assert.deepEqual(await v.uploads(), []);
  assert.equal((await v.info()).pending_upload_bytes, 0);
  await assert.rejects(v.cancelUpload(up.id), NotFoundError);
});

test("download streams a file to disk with progress; downloadArchive writes a tar", async () => {
  const v = await Volume.create(uniqueName(), { client });
  const data = randomBytes(3 * MiB + 7);
  await v.files.write("/d/big.bin", data);
  await v.files.write("/d/small.txt", "small");
  const dest = join(server.tmp, "downloads");
  mkdirSync(dest);
  const progress: Array<[number, number | null]> = [];
  const r = await v.files.download("/d/big.bin", dest, { progress: (d, t) => progress.push([d, t]) });
  assert.equal(r.localPath, join(dest, "big.bin"));
  assert.equal(r.bytes, data.length);
  assert.equal(sha256(readFileSync(r.localPath)), sha256(data));
  assert.ok(progress.length >= 1);
  assert.deepEqual(progress.at(-1), [data.length, data.length]);
  assert.ok(progress.every(([d], i) => i === 0 || d > progress[i - 1]![0]), "progress only grows");
  assert.deepEqual(readdirSync(dest), ["big.bin"], "no temporary file is left");
  await assert.rejects(v.files.download("/missing", dest), NotFoundError);

  const tar = join(server.tmp, "d.tar");
  const n = await v.files.downloadArchive("/d", tar, { format: "tar" });
  const bytes = readFileSync(tar);
  assert.equal(bytes.length, n);
  assert.ok(bytes.includes(Buffer.from("small.txt")) && bytes.includes(Buffer.from("ustar")));
});

test("signed URLs need no key, keep to their method, and refuse any change", async () => {
  const v = await Volume.create(uniqueName(), { client });
  await v.files.write("/s.txt", "signed content");
  const get = await v.files.url("/s.txt", { expires: 60 });
  const r = await fetch(get);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), "signed content");
  assert.equal((await fetch(get, { method: "PUT", body: "x" })).status, 403);
  assert.equal((await fetch(get.replace("s.txt", "t.txt"))).status, 403);
  const put = await v.files.url("/new.txt", { method: "PUT", expires: 60 });
  assert.equal((await fetch(put, { method: "PUT", body: "put through a URL" })).status < 300, true);
  assert.equal(await v.files.read("/new.txt"), "put through a URL");
  await assert.rejects(v.files.url("/s.txt", { expires: 8 * 24 * 3600 }), RangeError);
});

test("writeBatch writes every file or none; long and non-ASCII names survive", async () => {
  const v = await Volume.create(uniqueName(), { client });
  const long = "/deep/" + "d".repeat(120) + "/" + "n".repeat(150) + ".txt";
  const r = await v.files.writeBatch({ "/a.txt": "A", "/sub/b.bin": new Uint8Array([1, 2, 3]), [long]: "long", "/ünï/çødé.txt": "utf8" });
  assert.deepEqual(r, { files: 4, bytes: 1 + 3 + 4 + 4 });
  assert.equal(await v.files.read("/a.txt"), "A");
  assert.deepEqual(await v.files.readBytes("/sub/b.bin"), new Uint8Array([1, 2, 3]));
  assert.equal(await v.files.read(long), "long");
  assert.equal(await v.files.read("/ünï/çødé.txt"), "utf8");
  // A file where the batch needs a directory fails the whole batch.
  await assert.rejects(v.files.writeBatch({ "/new.txt": "n", "/a.txt/under": "x" }));
  assert.equal(await v.files.exists("/new.txt"), false, "all or nothing");
  assert.deepEqual(await v.files.writeBatch({}), { files: 0, bytes: 0 });
  await assert.rejects(v.files.writeBatch({ "/x": "1", "//x": "2" }), RangeError);
});

test("upload of a directory sends the tree as one batch, skipping symlinks", async () => {
  const v = await Volume.create(uniqueName(), { client });
  const root = join(server.tmp, "tree");
  mkdirSync(join(root, "a", "empty"), { recursive: true });
  writeFileSync(join(root, "top.txt"), "top");
  writeFileSync(join(root, "a", "inner.bin"), randomBytes(2 * MiB));
  symlinkSync("/etc/passwd", join(root, "link"));
  const progress: number[] = [];
  const r = await v.files.upload(root, "/t", { progress: (d) => progress.push(d) });
  assert.equal(r.path, "/t");
  assert.equal(r.files, 2);
  assert.equal(r.bytes, 3 + 2 * MiB);
  assert.deepEqual(r.skipped, [join(root, "link")]);
  assert.equal(progress.at(-1), 3 + 2 * MiB);
  assert.deepEqual((await v.files.list("/t", { recursive: true })).map((e) => e.path), ["/t/a", "/t/a/empty", "/t/a/inner.bin", "/t/top.txt"]);
  assert.equal(sha256(await v.files.readBytes("/t/a/inner.bin")), sha256(readFileSync(join(root, "a", "inner.bin"))));
});
