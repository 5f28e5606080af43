/** The direct file API of a volume: `volume.files.*` (no sandbox needed). */
import { stat } from "node:fs/promises";
import { basename, resolve } from "node:path";

import { checkBool, checkInt, checkPath, seg } from "./checks.js";
import { connectionError, type Client, type RequestBody } from "./client.js";
import { InternalError } from "./errors.js";
import { END, fileEntry } from "./tar.js";
import { downloadArchive, downloadFile, tusUpload, uploadTree, type DownloadResult, type ProgressCallback, type UploadResult } from "./transfer.js";
import { Watch, type WatchOptions } from "./watch.js";
import type { Volume } from "./volume.js";
import type * as wire from "./wire.js";

/** An entry's metadata: `path, type, size, mode, mtime, etag` (and `path_base64` for non-UTF-8 names). */
export type FileStat = wire.FileStat;
/** One search hit: `path, line, column, text` (1-based line and byte column). */
export type SearchMatch = wire.SearchMatch;
/** What `writeBatch` wrote: `files` and `bytes`. */
export type BatchResult = wire.BatchResult;
/** What `replace` changed (or would change, with `dryRun`). */
export type ReplaceResult = wire.ReplaceSummary;

/** What `write` accepts: text (UTF-8), bytes, a Blob, or a stream of bytes (sent as it is read). */
export type WriteData = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

function etagHeader(ifMatch: string | FileStat | undefined | null): string | undefined {
  if (ifMatch === undefined || ifMatch === null) return undefined;
  let etag = typeof ifMatch === "string" ? ifMatch : ifMatch.etag;
  if (typeof etag !== "string") throw new TypeError("ifMatch must be an etag string or a FileStat");
  etag = etag.trim();
  if (etag.startsWith("W/")) etag = etag.slice(2);
  etag = etag.replace(/^"+|"+$/g, "");
  if (!etag) throw new RangeError("ifMatch must not be empty");
  return `"${etag}"`;
}

function toBody(data: WriteData): RequestBody {
  if (typeof data === "string" || data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (typeof Blob !== "undefined" && data instanceof Blob) return data.stream() as ReadableStream<Uint8Array>;
  if (data instanceof ReadableStream) return data;
  if (data && typeof (data as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === "function") return data as AsyncIterable<Uint8Array>;
  throw new TypeError("data must be a string, Uint8Array, ArrayBuffer, Blob, ReadableStream or async iterable of Uint8Array");
}

function rangeQuery(path: string, offset: number | undefined, length: number | undefined): Record<string, unknown> {
  const q: Record<string, unknown> = { path: checkPath(path) };
  if (offset !== undefined && checkInt("offset", offset) > 0) q["offset"] = offset;
  if (length !== undefined) q["length"] = checkInt("length", length);
  return q;
}

/** A file being read: an async iterable of its bytes, with its etag and size. */
export class FileReadStream implements AsyncIterable<Uint8Array> {
  /** The file's etag (of the version being read). */
  readonly etag: string | null;
  /** Bytes this read returns (the range's length for a range), when the server said. */
  readonly size: number | null;
  readonly #response: Response;
  readonly #base: string;

  constructor(response: Response, base: string) {
    this.#response = response;
    this.#base = base;
    this.etag = (response.headers.get("etag") ?? "").replace(/^(W\/)?"|"$/g, "") || null;
    const len = response.headers.get("content-length");
    this.size = len !== null && /^\d+$/.test(len) ? Number(len) : null;
  }

  /** The body as a web `ReadableStream` (use it or iterate, not both). */
  get stream(): ReadableStream<Uint8Array> {
    const body = this.#response.body;
    if (!body) throw new InternalError("the answer has no body");
    return body as ReadableStream<Uint8Array>;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    const reader = this.stream.getReader();
    try {
      for (;;) {
        let r: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>;
        try {
          r = await reader.read();
        } catch (e) {
          throw connectionError(this.#base, "GET", this.#response.url, e, false);
        }
        if (r.done) return;
        yield r.value;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  /** Stops reading and closes the connection. */
  async cancel(): Promise<void> {
    await this.#response.body?.cancel().catch(() => undefined);
  }
}

/** Matches of a search as they stream in; {@link SearchResults.summary} is set at the end. */
export class SearchResults implements AsyncIterable<SearchMatch> {
  /** `{matches, truncated}` once every match was read. */
  summary: wire.SearchSummary | null = null;
  readonly #start: () => Promise<Response>;
  readonly #base: string;

  constructor(start: () => Promise<Response>, base: string) {
    this.#start = start;
    this.#base = base;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SearchMatch> {
    const response = await this.#start();
    for await (const line of lines(response, this.#base)) {
      if (!line.trim()) continue;
      let doc: unknown;
      try {
        doc = JSON.parse(line);
      } catch {
        throw new InternalError(`the server at ${this.#base} sent a search line that is not JSON: ${line.slice(0, 200)}`);
      }
      const d = doc as Partial<SearchMatch & wire.SearchSummary & { done: boolean; error?: wire.ErrorDetail }>;
      if (d.done) {
        this.summary = { matches: d.matches ?? 0, truncated: d.truncated ?? false };
        return;
      }
      yield d as SearchMatch;
    }
    throw connectionError(this.#base, "POST", response.url, new Error("the search stream ended before its last line"), false);
  }

  /** Every match, in path order. */
  async toArray(): Promise<SearchMatch[]> {
    const out: SearchMatch[] = [];
    for await (const m of this) out.push(m);
    return out;
  }
}

/** The lines of a streamed answer (newline-delimited), decoded as UTF-8. */
export async function* lines(response: Response, base: string): AsyncGenerator<string> {
  const body = response.body;
  if (!body) return;
  const reader = (body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      let r: Awaited<ReturnType<ReadableStreamDefaultReader<string>["read"]>>;
      try {
        r = await reader.read();
      } catch (e) {
        throw connectionError(base, "GET", response.url, e, false);
      }
      if (r.done) break;
      buf += r.value;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        yield buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
      }
    }
    if (buf) yield buf;
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** Options of `search`. */
export interface SearchOptions {
  /** Directory (or file) to search below (default `/`). */
  path?: string;
  /** Only files whose name (or relative path, with a `/`) matches this shell glob. */
  glob?: string | null;
  /** `pattern` is a regular expression (Rust syntax; default) or, with `false`, a literal. */
  regex?: boolean;
  ignoreCase?: boolean;
  /** Stop after this many matches (the summary then says `truncated`). */
  maxResults?: number | null;
}

/** Options of `replace`. */
export interface ReplaceOptions {
  path?: string;
  glob?: string | null;
  regex?: boolean;
  ignoreCase?: boolean;
  /** Report what would change and change nothing. */
  dryRun?: boolean;
}

/** `volume.files`: the direct file API of one volume. */
export class VolumeFiles {
  readonly #volume: Volume;

  constructor(volume: Volume) {
    this.#volume = volume;
  }

  get #client(): Client {
    return this.#volume.client;
  }

  #url(suffix: string): string {
    return `/v1/volumes/${seg(this.#volume.name)}/files${suffix}`;
  }

  /** The whole file decoded as UTF-8. */
  async read(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readBytes(path));
  }

  /** The file's bytes: all of them, or `length` bytes (or the rest) from `offset`. */
  async readBytes(path: string, options: { offset?: number; length?: number } = {}): Promise<Uint8Array> {
    const r = await this.#client.request("GET", this.#url("/content"), { query: rangeQuery(path, options.offset, options.length) });
    try {
      return new Uint8Array(await r.arrayBuffer());
    } catch (e) {
      throw connectionError(this.#client.url, "GET", r.url, e, false);
    }
  }

  /** The file as a stream of chunks (constant memory), with its etag and size. */
  async readStream(path: string, options: { offset?: number; length?: number } = {}): Promise<FileReadStream> {
    const r = await this.#client.request("GET", this.#url("/content"), { query: rangeQuery(path, options.offset, options.length) });
    return new FileReadStream(r, this.#client.url);
  }

  /**
   * Writes a file atomically and durably (parents are created): readers see the old or the new
   * content, never a mix. `ifMatch` (an etag or a FileStat) makes it conditional
   * (`ConflictError` if the file changed); `overwrite: false` refuses an existing file
   * (`AlreadyExistsError`). A stream is sent as it is read, in constant memory.
   */
  async write(path: string, data: WriteData, options: { ifMatch?: string | FileStat | null; overwrite?: boolean } = {}): Promise<FileStat> {
    const p = checkPath(path);
    const overwrite = checkBool("overwrite", options.overwrite ?? true);
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    const etag = etagHeader(options.ifMatch);
    if (etag) headers["if-match"] = etag;
    return this.#client.requestJson<FileStat>("PUT", this.#url("/content"), {
      query: { path: p, overwrite },
      body: toBody(data),
      headers,
    });
  }

  /**
   * Writes many files in one request, all or nothing: `{ "/a.txt": "text", "/b/c.bin": bytes }`
   * is sent as one tar archive; either every file is written or, on any error, none is.
   */
  async writeBatch(files: Record<string, string | Uint8Array>): Promise<BatchResult> {
    if (typeof files !== "object" || files === null) throw new TypeError("files must be an object of path to data");
    const seen = new Map<string, string>();
    const chunks: Uint8Array[] = [];
    const now = Math.floor(Date.now() / 1000);
    for (const [path, data] of Object.entries(files)) {
      const p = checkPath(path);
      if (p === "/") throw new RangeError("cannot write a file at '/'");
      if (seen.has(p)) throw new RangeError(`paths ${JSON.stringify(seen.get(p))} and ${JSON.stringify(path)} are the same file`);
      seen.set(p, path);
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
      if (!(bytes instanceof Uint8Array)) throw new TypeError(`data of ${path} must be a string or Uint8Array`);
      chunks.push(...fileEntry(p.slice(1), bytes, now));
    }
    if (seen.size === 0) return { files: 0, bytes: 0 };
    chunks.push(END);
    return this.#client.requestJson<BatchResult>("POST", this.#url("/batch"), {
      query: { path: "/" },
      body: Buffer.concat(chunks),
      headers: { "content-type": "application/x-tar" },
    });
  }

  /** Makes a directory (with its parents unless `parents: false`). */
  async mkdir(path: string, options: { parents?: boolean } = {}): Promise<FileStat> {
    const body: wire.MkdirRequest = { path: checkPath(path), parents: checkBool("parents", options.parents ?? true) };
    return this.#client.requestJson<FileStat>("POST", this.#url("/mkdir"), { json: body });
  }

  /** Moves or renames; an existing `dst` needs `overwrite` (`AlreadyExistsError`). */
  async move(src: string, dst: string, options: { overwrite?: boolean } = {}): Promise<FileStat> {
    const body: wire.MoveRequest = { src: checkPath(src, "src"), dst: checkPath(dst, "dst"), overwrite: checkBool("overwrite", options.overwrite ?? false) };
    return this.#client.requestJson<FileStat>("POST", this.#url("/move"), { json: body });
  }

  /** Copies a file or (recursively, the default) a directory. */
  async copy(src: string, dst: string, options: { overwrite?: boolean; recursive?: boolean } = {}): Promise<FileStat> {
    const body: wire.CopyRequest = {
      src: checkPath(src, "src"),
      dst: checkPath(dst, "dst"),
      overwrite: checkBool("overwrite", options.overwrite ?? false),
      recursive: checkBool("recursive", options.recursive ?? true),
    };
    return this.#client.requestJson<FileStat>("POST", this.#url("/copy"), { json: body });
  }

  /** Removes a file, or a directory (a non-empty one needs `recursive`). */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.#client.requestVoid("DELETE", this.#url(""), {
      query: { path: checkPath(path), recursive: checkBool("recursive", options.recursive ?? false) },
    });
  }

  /**
   * Replaces exactly `count` (default 1; `"all"`: every one, at least one) occurrences of the
   * literal `oldText` with `newText`, atomically. Any other number found is a `ConflictError`
   * naming how many were found, and nothing changes.
   */
  async edit(path: string, oldText: string, newText: string, options: { count?: number | "all"; ifMatch?: string | FileStat | null } = {}): Promise<FileStat> {
    if (typeof oldText !== "string" || typeof newText !== "string") throw new TypeError("old and new text must be strings");
    if (!oldText) throw new RangeError("the text to replace must not be empty");
    const count = options.count ?? 1;
    const etag = etagHeader(options.ifMatch);
    const body: wire.EditRequest = {
      path: checkPath(path),
      old: oldText,
      new: newText,
      count: count === "all" ? null : checkInt("count", count, 1),
      if_match: etag ? etag.slice(1, -1) : null,
    };
    return this.#client.requestJson<FileStat>("POST", this.#url("/edit"), { json: body });
  }

  /** Entries below `path` lazily, page by page (sorted by path, depth first). */
  async *iterList(path = "/", options: { recursive?: boolean; glob?: string | null; pageSize?: number } = {}): AsyncGenerator<FileStat> {
    const p = checkPath(path);
    const recursive = checkBool("recursive", options.recursive ?? false);
    let cursor: string | null | undefined;
    do {
      const page: wire.ListPage = await this.#client.requestJson<wire.ListPage>("GET", this.#url("/list"), {
        query: { path: p, recursive, glob: options.glob, limit: options.pageSize, cursor },
      });
      yield* page.entries;
      cursor = page.next_cursor;
    } while (cursor);
  }

  /** Every entry below `path` (only its direct entries unless `recursive`); a file lists itself. */
  async list(path = "/", options: { recursive?: boolean; glob?: string | null } = {}): Promise<FileStat[]> {
    const out: FileStat[] = [];
    for await (const e of this.iterList(path, options)) out.push(e);
    return out;
  }

  /** Metadata of one path (symlinks are reported, not followed). */
  async stat(path: string): Promise<FileStat> {
    return this.#client.requestJson<FileStat>("GET", this.#url("/stat"), { query: { path: checkPath(path) } });
  }

  /** Whether anything exists at `path`. */
  async exists(path: string): Promise<boolean> {
    const doc = await this.#client.requestJson<wire.Exists>("GET", this.#url("/exists"), { query: { path: checkPath(path) } });
    return doc.exists;
  }

  /**
   * Searches file contents: an async iterable of matches in path order, streamed as the
   * server finds them (`for await (const m of volume.files.search("TODO"))`, or `.toArray()`).
   * An invalid pattern is an `InvalidArgumentError` when iteration starts.
   */
  search(pattern: string, options: SearchOptions = {}): SearchResults {
    if (typeof pattern !== "string") throw new TypeError("pattern must be a string");
    const body: wire.SearchRequest = {
      pattern,
      path: checkPath(options.path ?? "/"),
      glob: options.glob ?? null,
      regex: checkBool("regex", options.regex ?? true),
      ignore_case: checkBool("ignoreCase", options.ignoreCase ?? false),
      max_results: options.maxResults == null ? null : checkInt("maxResults", options.maxResults, 1),
    };
    return new SearchResults(
      () => this.#client.request("POST", this.#url("/search"), { json: body, idempotent: true, timeout: 0 }),
      this.#client.url,
    );
  }

  /** Replaces `pattern` with `replacement` (`$1`, `${name}` with regexes) in every matching file. */
  async replace(pattern: string, replacement: string, options: ReplaceOptions = {}): Promise<ReplaceResult> {
    if (typeof pattern !== "string" || typeof replacement !== "string") throw new TypeError("pattern and replacement must be strings");
    const body: wire.ReplaceRequest = {
      pattern,
      replacement,
      path: checkPath(options.path ?? "/"),
      glob: options.glob ?? null,
      regex: checkBool("regex", options.regex ?? true),
      ignore_case: checkBool("ignoreCase", options.ignoreCase ?? false),
      dry_run: checkBool("dryRun", options.dryRun ?? false),
    };
    return this.#client.requestJson<ReplaceResult>("POST", this.#url("/replace"), { json: body, timeout: 0 });
  }

  /**
   * Watches `path` for changes (API writes and sandbox code in mounts alike). The connection
   * is made before this resolves, so every change after it is delivered; iterate the result
   * with `for await`. It reconnects by itself after a dropped connection, resuming after the
   * last event id (see {@link Watch}). `NotFoundError` when `path` does not exist.
   */
  async watch(path = "/", options: WatchOptions = {}): Promise<Watch> {
    const w = new Watch(this.#client, `/v1/volumes/${seg(this.#volume.name)}/watch`, checkPath(path), options);
    await w.connect();
    return w;
  }

  /**
   * Uploads a local file resumably (tus 1.0) in chunks of `chunkSize` bytes, each checked
   * with sha256 unless `checksum: false`; the file appears at `remotePath` atomically when
   * complete. An interrupted upload continues from the server's durable offset when called
   * again with the same arguments (the upload's URL is kept under
   * `$XDG_CACHE_HOME/nullspace/uploads/`, shared with the CLI and the Python SDK).
   * `progress(done, total)` is called as chunks are stored.
   *
   * A local directory is sent as one streamed, all-or-nothing tar batch into `remotePath`
   * (default `/` + its name): layout and empty directories kept, existing files replaced,
   * symlinks and special files skipped (listed in `skipped`).
   */
  async upload(
    localPath: string,
    remotePath?: string,
    options: { chunkSize?: number; resume?: boolean; checksum?: boolean; progress?: ProgressCallback } = {},
  ): Promise<UploadResult> {
    const st = await stat(localPath);
    if (st.isDirectory()) {
      const remote = checkPath(remotePath ?? "/" + basename(resolve(localPath)), "remotePath");
      return uploadTree(this.#client, this.#url("/batch"), localPath, remote, options.progress);
    }
    return tusUpload(this.#client, this.#volume.name, localPath, remotePath, options, (p) => this.#isDir(p));
  }

  async #isDir(path: string): Promise<boolean> {
    try {
      return (await this.stat(path)).type === "dir";
    } catch (e) {
      if ((e as { code?: string }).code === "not_found") return false;
      throw e;
    }
  }

  /**
   * Downloads a file: streamed to a temporary file beside `localPath`, fsynced and renamed into
   * place (default: its name in the current directory; inside `localPath` when that is a
   * directory). `progress(done, total)` is called as bytes arrive. For a directory use
   * {@link downloadArchive}.
   */
  async download(remotePath: string, localPath?: string, options: { progress?: ProgressCallback } = {}): Promise<DownloadResult> {
    const remote = checkPath(remotePath, "remotePath");
    const stream = await this.readStream(remote);
    return downloadFile(stream, remote, localPath, options.progress);
  }

  /** Downloads a directory as one streamed `tar`, `tar.gz` or `zip` archive; returns its size in bytes. */
  async downloadArchive(
    remotePath: string,
    localPath: string,
    options: { format?: "tar" | "tar.gz" | "zip"; progress?: ProgressCallback } = {},
  ): Promise<number> {
    const format = options.format ?? "tar";
    if (!["tar", "tar.gz", "zip"].includes(format)) throw new RangeError(`format must be tar, tar.gz or zip, not ${JSON.stringify(format)}`);
    const r = await this.#client.request("GET", this.#url("/archive"), { query: { path: checkPath(remotePath, "remotePath"), format } });
    return downloadArchive(new FileReadStream(r, this.#client.url), localPath, options.progress);
  }

  /**
   * A signed URL that downloads (`GET`) or uploads (`PUT`) `path` without an API key until it
   * expires (`expires` seconds, 1 s to 7 days; default 1 h). It is bound to this volume, the
   * path and the method; any change to it makes it invalid (403).
   */
  async url(path: string, options: { expires?: number; method?: "GET" | "PUT" } = {}): Promise<string> {
    const expires = checkInt("expires", options.expires ?? 3600, 1);
    if (expires > 7 * 24 * 3600) throw new RangeError(`expires must be at most 604800 seconds (7 days), not ${expires}`);
    const method = (options.method ?? "GET").toUpperCase();
    if (method !== "GET" && method !== "PUT") throw new RangeError(`method must be GET or PUT, not ${JSON.stringify(options.method)}`);
    const body: wire.SignRequest = { path: checkPath(path), method, expires_in: expires };
    const doc = await this.#client.requestJson<wire.SignedUrl>("POST", this.#url("/url"), { json: body });
    return doc.url;
  }
}
