/**
 * A streaming tar (POSIX pax) writer for batch writes and directory uploads: regular files and
 * directories only, names longer than ustar's 100 bytes or not ASCII in a pax `path` record.
 */
import { open, lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

const BLOCK = 512;
const encoder = new TextEncoder();

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(name: string, size: number, type: "0" | "5" | "x", mode: number, mtime: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const put = (s: string | Uint8Array, at: number, width: number): void => {
    const b = typeof s === "string" ? encoder.encode(s) : s;
    h.set(b.subarray(0, width), at);
  };
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(mtime, 12), 136, 12);
  put("        ", 148, 8);
  put(type, 156, 1);
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(octal(sum, 7) + " ", 148, 8);
  return h;
}

function padding(size: number): Uint8Array {
  const rest = size % BLOCK;
  return new Uint8Array(rest === 0 ? 0 : BLOCK - rest);
}

/** The header block(s) of one entry; a pax record carries a long or non-ASCII name. */
export function entryHeader(name: string, size: number, type: "0" | "5", mode: number, mtime: number): Uint8Array[] {
  const bytes = encoder.encode(name);
  // eslint-disable-next-line no-control-regex
  if (bytes.length <= 100 && /^[\x20-\x7e]*$/.test(name)) return [header(name, size, type, mode, mtime)];
  // A pax record is "LEN path=NAME\n" where LEN counts the whole record, its own digits too.
  const body = ` path=${name}\n`;
  const bodyLen = encoder.encode(body).length;
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  const record = encoder.encode(`${len}${body}`);
  return [header("PaxHeader", record.length, "x", 0o644, mtime), record, padding(record.length), header(name, size, type, mode, mtime)];
}

/** The two zero blocks that end an archive. */
export const END = new Uint8Array(2 * BLOCK);

/** One file's bytes, padded to whole blocks, after its header. */
export function* fileEntry(name: string, data: Uint8Array, mtime: number): Generator<Uint8Array> {
  yield* entryHeader(name, data.length, "0", 0o644, mtime);
  yield data;
  yield padding(data.length);
}

/** A local tree as tar chunks (names relative to `root`); symlinks and special files are skipped into `skipped`. */
export async function* treeEntries(root: string, skipped: string[], onFile?: (bytes: number) => void): AsyncGenerator<Uint8Array> {
  async function* walk(rel: string): AsyncGenerator<Uint8Array> {
    const names = (await readdir(rel ? join(root, rel) : root)).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const path = join(root, r);
      const st = await lstat(path);
      const mtime = Math.floor(st.mtimeMs / 1000);
      if (st.isDirectory()) {
        yield* entryHeader(r + "/", 0, "5", 0o755, mtime);
        yield* walk(r);
      } else if (st.isFile()) {
        yield* entryHeader(r, st.size, "0", st.mode & 0o777, mtime);
        const f = await open(path, "r");
        try {
          let left = st.size;
          while (left > 0) {
            const buf = Buffer.allocUnsafe(Math.min(left, 1 << 20));
            const { bytesRead } = await f.read(buf, 0, buf.length, st.size - left);
            if (bytesRead === 0) throw new RangeError(`${path} shrank while it was being sent`);
            left -= bytesRead;
            yield buf.subarray(0, bytesRead);
            onFile?.(bytesRead);
          }
        } finally {
          await f.close();
        }
        yield padding(st.size);
      } else {
        skipped.push(path);
      }
    }
  }
  yield* walk("");
  yield END;
}
