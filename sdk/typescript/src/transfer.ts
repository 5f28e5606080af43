/**
 * Transfers: resumable (tus 1.0) file uploads and streamed downloads.
 *
 * A file upload keeps its tus upload's URL in a small resume record under
 * `$XDG_CACHE_HOME/nullspace/uploads/` (default `~/.cache/nullspace/uploads/`), named by the
 * server, volume, remote path and the local file's size and mtime exactly as the CLI and the
 * Python SDK name it, so any of them can resume an upload another one started.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, rename, stat, unlink, readFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, posix } from "node:path";

import { checkBool, checkInt, checkPath, seg } from "./checks.js";
import type { Client } from "./client.js";
import { APIConnectionError, NotFoundError, NullspaceError } from "./errors.js";
import type { FileReadStream } from "./files.js";
import { treeEntries } from "./tar.js";
import type * as wire from "./wire.js";

/** The tus protocol version spoken. */
export const TUS_VERSION = "1.0.0";
/** Bytes per tus `PATCH` by default. */
export const DEFAULT_TUS_CHUNK = 16 * 1024 * 1024;
const OFFSET_TYPE = "application/offset+octet-stream";

/** Called with (bytes done, total bytes or `null` when unknown). */
export type ProgressCallback = (done: number, total: number | null) => void;

/** What `volume.files.upload` did. */
export interface UploadResult {
  /** Where the file went in the volume. */
  path: string;
  /** Bytes of the file. */
  bytes: number;
  /** Bytes already on the server from an earlier, interrupted run (0 for a fresh upload). */
  resumedFrom: number;
  /** The uploaded file's etag (`null` for a directory). */
  etag: string | null;
  /** Files written (1 for a file). */
  files: number;
  /** Local entries a directory upload left out (symlinks, sockets, devices). */
  skipped: string[];
}

/** What `volume.files.download` wrote. */
export interface DownloadResult {
  localPath: string;
  bytes: number;
}

/** `$XDG_CACHE_HOME/nullspace/uploads`, else `~/.cache/nullspace/uploads`. */
export function recordsDir(env: Readonly<Record<string, string | undefined>> = process.env): string | null {
  const base = env["XDG_CACHE_HOME"] ?? "";
  if (base && isAbsolute(base)) return join(base, "nullspace", "uploads");
  const home = env["HOME"] ?? "";
  if (home && isAbsolute(home)) return join(home, ".cache", "nullspace", "uploads");
  return null;
}

/** The file name of a resume record (the same as the CLI's and the Python SDK's). */
export function recordName(server: string, volume: string, path: string, size: number | bigint, mtimeNs: bigint): string {
  const key = `${server}\n${volume}\n${path}\n${size}\n${mtimeNs}`;
  return createHash("sha256").update(key, "utf8").digest("hex") + ".json";
}

async function readRecord(path: string): Promise<string | null> {
  try {
    const doc = JSON.parse(await readFile(path, "utf8")) as { upload_url?: unknown };
    return typeof doc.upload_url === "string" && doc.upload_url ? doc.upload_url : null;
  } catch {
    return null;
  }
}

/** Writes atomically, readable by the user only; a failure only costs resumability. */
async function writeRecord(path: string, doc: Record<string, unknown>): Promise<void> {
  const tmp = `${path}.tmp${process.pid}`;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const f = await open(tmp, "w", 0o600);
    try {
      await f.writeFile(JSON.stringify(doc));
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, path);
  } catch {
    await unlink(tmp).catch(() => undefined);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface UploadOptions {
  chunkSize?: number;
  resume?: boolean;
  checksum?: boolean;
  progress?: ProgressCallback;
  retries?: number;
}

/** Uploads one local file to one volume path through the tus endpoint, resumably. */
export async function tusUpload(
  client: Client,
  volume: string,
  localPath: string,
  remotePath: string | undefined,
  options: UploadOptions,
  isDir: (path: string) => Promise<boolean>,
): Promise<UploadResult> {
  const chunkSize = checkInt("chunkSize", options.chunkSize ?? DEFAULT_TUS_CHUNK, 1);
  const resume = checkBool("resume", options.resume ?? true);
  const checksum = checkBool("checksum", options.checksum ?? true);
  const retries = checkInt("retries", options.retries ?? 5);
  const st = await stat(localPath, { bigint: true });
  if (st.isDirectory()) throw new RangeError(`${localPath} is a directory; upload its files one by one or send an archive`);
  if (!st.isFile()) throw new RangeError(`${localPath} is not a regular file`);
  const size = Number(st.size);
  const name = basename(localPath);
  let remote: string;
  if (remotePath === undefined) remote = checkPath("/" + name, "remotePath");
  else {
    remote = checkPath(remotePath, "remotePath");
    if (remote === "/" || remotePath.endsWith("/") || (await isDir(remote))) remote = posix.join(remote, name);
  }
  const base = `/v1/volumes/${seg(volume)}/uploads`;
  const tus = { "tus-resumable": TUS_VERSION };
  const dir = resume ? recordsDir() : null;
  const record = dir ? join(dir, recordName(client.url, volume, remote, st.size, st.mtimeNs)) : null;
  const report = (done: number): void => options.progress?.(done, size);

  const create = async (): Promise<string> => {
    const meta = "path " + Buffer.from(remote, "utf8").toString("base64");
    const r = await client.request("POST", base, {
      headers: { ...tus, "upload-length": String(size), "upload-metadata": meta },
      idempotent: false,
    });
    await r.arrayBuffer();
    const location = r.headers.get("location");
    if (!location) throw new NullspaceError(`the server at ${client.url} created an upload without a Location`);
    const url = new URL(location, client.url + "/").toString();
    if (record)
      await writeRecord(record, { upload_url: url, server: client.url, volume, path: remote, size, mtime_ns: Number(st.mtimeNs) });
    return url;
  };
  /** The durable offset, or `null` when the server no longer has the upload. */
  const offsetOf = async (url: string): Promise<number | null> => {
    try {
      const r = await client.request("HEAD", url, { headers: tus });
      if (Number(r.headers.get("upload-length") ?? "-1") !== size) return null;
      return Number(r.headers.get("upload-offset"));
    } catch (e) {
      if (e instanceof NullspaceError && (e.status === 404 || e.status === 410)) return null;
      throw e;
    }
  };

  let url: string | null = null;
  let offset = 0;
  if (record) {
    const stored = await readRecord(record);
    if (stored && new URL(stored).origin === new URL(client.url).origin) {
      const found = await offsetOf(stored);
      if (found !== null && found < size) [url, offset] = [stored, found];
    }
  }
  const resumedFrom = offset;
  url ??= await create();
  report(offset);
  let etag: string | null = null;
  let failures = 0;
  let restarted = false;
  const f = await open(localPath, "r");
  try {
    while (offset < size) {
      const want = Math.min(chunkSize, size - offset);
      const chunk = Buffer.allocUnsafe(want);
      const { bytesRead } = await f.read(chunk, 0, want, offset);
      if (bytesRead !== want) throw new RangeError(`${localPath} shrank while it was being uploaded`);
      const headers: Record<string, string> = { ...tus, "content-type": OFFSET_TYPE, "upload-offset": String(offset) };
      if (checksum) headers["upload-checksum"] = "sha256 " + createHash("sha256").update(chunk).digest("base64");
      let error: NullspaceError;
      try {
        const r = await client.request("PATCH", url, { body: chunk, headers, idempotent: false, timeout: 0 });
        await r.arrayBuffer();
        offset = Number(r.headers.get("upload-offset"));
        etag = (r.headers.get("etag") ?? "").replace(/^(W\/)?"|"$/g, "") || null;
        failures = 0;
        report(offset);
        continue;
      } catch (e) {
        if (!(e instanceof NullspaceError)) throw e;
        if (e.status === 404 || e.status === 410) {
          if (restarted) throw new NotFoundError(`upload ${url} disappeared from the server twice`);
          restarted = true;
          [url, offset] = [await create(), 0];
          report(offset);
          continue;
        }
        const retry = e instanceof APIConnectionError || [409, 423, 460, 500, 502, 503, 504].includes(e.status ?? 0);
        if (!retry) throw e;
        error = e;
      }
      failures++;
      if (failures > retries) throw error;
      await sleep(Math.min(500 * 2 ** (failures - 1), 10_000));
      let found: number | null;
      try {
        found = await offsetOf(url);
      } catch (e) {
        if (e instanceof APIConnectionError) continue;
        throw e;
      }
      if (found === null) {
        if (restarted) throw error;
        restarted = true;
        [url, found] = [await create(), 0];
      }
      offset = found;
      report(offset);
    }
  } finally {
    await f.close();
  }
  if (record) await unlink(record).catch(() => undefined);
  return { path: remote, bytes: size, resumedFrom, etag, files: 1, skipped: [] };
}

/** Sends the tree under `local` into `remote` as one streamed tar batch (constant memory). */
export async function uploadTree(client: Client, batchUrl: string, local: string, remote: string, progress?: ProgressCallback): Promise<UploadResult> {
  const skipped: string[] = [];
  let done = 0;
  const body = treeEntries(local, skipped, (n) => {
    done += n;
    progress?.(done, null);
  });
  const doc = await client.requestJson<wire.BatchResult>("POST", batchUrl, {
    query: { path: remote },
    body,
    headers: { "content-type": "application/x-tar" },
    timeout: 0,
  });
  return { path: remote, bytes: doc.bytes, resumedFrom: 0, etag: null, files: doc.files, skipped };
}

/** Streams chunks into a temp file beside `local`, fsyncs it and renames it into place. */
async function writeAtomically(chunks: AsyncIterable<Uint8Array>, local: string, onBytes?: (n: number) => void): Promise<number> {
  await mkdir(dirname(local), { recursive: true });
  const tmp = join(dirname(local), `.${basename(local)}.tmp${process.pid}-${randomBytes(4).toString("hex")}.nspart`);
  let n = 0;
  const f = await open(tmp, "wx", 0o644);
  try {
    try {
      for await (const c of chunks) {
        await f.write(c);
        n += c.length;
        onBytes?.(n);
      }
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, local);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  return n;
}

/** Writes a file being read to `localPath` (see `volume.files.download`). */
export async function downloadFile(stream: FileReadStream, remote: string, localPath: string | undefined, progress?: ProgressCallback): Promise<DownloadResult> {
  const name = posix.basename(remote) || "download";
  let local = localPath ?? name;
  try {
    if ((await stat(local)).isDirectory()) local = join(local, name);
  } catch {
    // A new file.
  }
  const total = stream.size;
  const bytes = await writeAtomically(stream, local, progress && ((n) => progress(n, total)));
  return { localPath: local, bytes };
}

/** Writes an archive being read to `localPath`; returns its size. */
export async function downloadArchive(stream: FileReadStream, localPath: string, progress?: ProgressCallback): Promise<number> {
  return writeAtomically(stream, localPath, progress && ((n) => progress(n, null)));
}
