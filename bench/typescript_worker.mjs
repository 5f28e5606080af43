#!/usr/bin/env node
// One timed operation of the TypeScript SDK for bench/typescript.py; prints {"seconds": S}.
// Configured by NULLSPACE_API_URL / NULLSPACE_API_KEY; imports the built SDK
// (sdk/typescript/dist, `npm run build` there first).
//
//   node bench/typescript_worker.mjs write-big VOLUME LOCAL REMOTE
//   node bench/typescript_worker.mjs read-big VOLUME REMOTE LOCAL
//   node bench/typescript_worker.mjs upload-big VOLUME LOCAL REMOTE
//   node bench/typescript_worker.mjs write-small VOLUME LOCAL_DIR REMOTE_DIR CONCURRENCY
//   node bench/typescript_worker.mjs read-small VOLUME REMOTE_DIR LOCAL_DIR CONCURRENCY
import { createReadStream, createWriteStream, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

const { Volume } = await import(new URL("../sdk/typescript/dist/src/index.js", import.meta.url).href);

const [op, name, a, b, c] = process.argv.slice(2);
const volume = await Volume.fromName(name);

async function pool(items, concurrency, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

const t0 = performance.now();
switch (op) {
  case "write-big":
    await volume.files.write(b, createReadStream(a, { highWaterMark: 1 << 20 }));
    break;
  case "read-big": {
    const s = await volume.files.readStream(a);
    await pipeline(Readable.fromWeb(s.stream), createWriteStream(b));
    break;
  }
  case "upload-big":
    await volume.files.upload(a, b, { resume: false });
    break;
  case "write-small": {
    const names = readdirSync(a).sort();
    await pool(names, Number(c), (n) => volume.files.write(`${b}/${n}`, readFileSync(join(a, n))));
    break;
  }
  case "read-small": {
    const names = (await volume.files.list(a)).map((e) => e.path);
    await pool(names, Number(c), async (p) => writeFileSync(join(b, p.slice(p.lastIndexOf("/") + 1)), await volume.files.readBytes(p)));
    break;
  }
  default:
    throw new Error(`unknown op ${op}`);
}
console.log(JSON.stringify({ seconds: (performance.now() - t0) / 1000 }));
