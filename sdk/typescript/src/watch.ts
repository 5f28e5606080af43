/** `volume.files.watch`: change events as an async iterator that resumes after a dropped connection. */
import { checkBool, checkInt } from "./checks.js";
import type { Client } from "./client.js";
import { InternalError, UnavailableError } from "./errors.js";
import { lines } from "./files.js";
import type * as wire from "./wire.js";

/**
 * One change, or a gap marker. For `type: "gap"` the server no longer had every event after
 * `id` (the last one this watch had seen) when it reconnected, or changes went unobserved:
 * re-read what you depend on. `oldest_available` is then the oldest id it still had.
 */
export interface WatchEvent extends Omit<wire.ChangeEvent, "type"> {
  type: wire.ChangeKind | "gap";
  oldest_available?: number;
}

/** Options of `volume.files.watch`. */
export interface WatchOptions {
  /** Report changes below `path` at any depth (default), or only its direct entries. */
  recursive?: boolean;
  /** Resume after an event id seen earlier (retained events after it come first). */
  lastEventId?: number | null;
  /** Give up after this many milliseconds without a connection (default: never). */
  reconnectTimeout?: number | null;
  /** Ends the iteration when aborted (as `close()` does). */
  signal?: AbortSignal;
}

/** No byte for this long (the server sends a keep-alive every 15 s): the connection is dead. */
const IDLE_TIMEOUT_MS = 45_000;
const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Change events below a path: `for await (const ev of watch)`. When the connection drops, goes
 * silent for 45 s, or the server says this watcher fell behind (`overflow`), a new connection
 * resumes after the last event id seen, so nothing is lost unless the server no longer has the
 * missed events, which it reports as a `"gap"` event. While the server is unavailable,
 * reconnection is retried with a backoff (0.1 s doubling to 5 s), forever or until
 * `reconnectTimeout`; other errors (the volume or path deleted, the key revoked) are thrown.
 * `close()` (or the `signal`) ends the iteration.
 */
export class Watch implements AsyncIterable<WatchEvent>, AsyncDisposable {
  /** The id of the last change delivered (or the one the watch started after). */
  lastEventId: number | null;
  /** How many connections this watch has made (1 until a reconnect). */
  connections = 0;
  readonly #client: Client;
  readonly #url: string;
  readonly #path: string;
  readonly #recursive: boolean;
  readonly #reconnectTimeout: number | null;
  readonly #stop = new AbortController();
  #connection: AbortController | null = null;
  #lines: AsyncGenerator<string> | null = null;
  #delivered = false;

  constructor(client: Client, url: string, path: string, options: WatchOptions = {}) {
    this.#client = client;
    this.#url = url;
    this.#path = path;
    this.#recursive = checkBool("recursive", options.recursive ?? true);
    this.lastEventId = options.lastEventId == null ? null : checkInt("lastEventId", options.lastEventId);
    this.#reconnectTimeout = options.reconnectTimeout == null ? null : checkInt("reconnectTimeout", options.reconnectTimeout);
    options.signal?.addEventListener("abort", () => this.close(), { once: true });
    if (options.signal?.aborted) this.close();
  }

  /** True once `close()` was called (or a fatal error ended the watch). */
  get closed(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Opens a connection (done by `volume.files.watch` before it resolves). */
  async connect(): Promise<void> {
    const connection = new AbortController();
    const onStop = (): void => connection.abort();
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    const query: Record<string, unknown> = { path: this.#path, recursive: this.#recursive };
    if (this.lastEventId !== null) query["last_event_id"] = this.lastEventId;
    const response = await this.#client.request("GET", this.#url, {
      query,
      headers: { accept: "text/event-stream" },
      timeout: 10_000,
      signal: connection.signal,
    });
    this.connections++;
    this.#connection = connection;
    this.#lines = lines(idle(response, connection), this.#client.url);
    this.#delivered = false;
  }

  #drop(): void {
    this.#connection?.abort();
    this.#connection = null;
    const l = this.#lines;
    this.#lines = null;
    void l?.return(undefined).catch(() => undefined);
  }

  async #reconnect(): Promise<void> {
    let backoff = FIRST_BACKOFF_MS;
    const started = Date.now();
    let first = true;
    while (!this.closed) {
      if (!(first && this.#delivered)) {
        await sleep(backoff * (0.5 + Math.random() / 2), this.#stop.signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
      first = false;
      if (this.closed) return;
      try {
        await this.connect();
        return;
      } catch (e) {
        if (this.closed) return;
        if (!(e instanceof UnavailableError)) throw e;
        if (this.#reconnectTimeout !== null && Date.now() - started >= this.#reconnectTimeout) throw e;
      }
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<WatchEvent> {
    let event = "";
    let data: string[] = [];
    try {
      while (!this.closed) {
        if (this.#lines === null) {
          await this.#reconnect();
          event = "";
          data = [];
          continue;
        }
        let next: IteratorResult<string>;
        try {
          next = await this.#lines.next();
        } catch (e) {
          if (this.closed) return;
          if (!(e instanceof UnavailableError)) throw e;
          next = { done: true, value: undefined };
        }
        if (next.done) {
          // Dropped, broken off or silent: resume after the last id.
          this.#drop();
          continue;
        }
        const line = next.value;
        if (line) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (name === "event") event = value;
          else if (name === "data") data.push(value);
          continue;
        }
        if (data.length === 0) {
          event = "";
          continue;
        }
        const kind = event || "message";
        const payload = data.join("\n");
        event = "";
        data = [];
        let doc: Record<string, unknown>;
        try {
          doc = JSON.parse(payload) as Record<string, unknown>;
        } catch {
          throw new InternalError(`the server at ${this.#client.url} sent a ${kind} event that is not JSON: ${payload.slice(0, 200)}`);
        }
        if (kind === "change") {
          const ev = doc as unknown as wire.ChangeEvent;
          this.lastEventId = ev.id;
          this.#delivered = true;
          yield ev;
        } else if (kind === "gap") {
          const gap = doc as unknown as wire.WatchGap;
          this.#delivered = true;
          yield {
            id: gap.last_event_id,
            type: "gap",
            path: this.#path,
            old_path: null,
            is_dir: false,
            time: new Date().toISOString(),
            oldest_available: gap.oldest_available,
          };
        } else if (kind === "overflow") {
          // The server drops a watcher that fell behind: catch up from the last id.
          this.#delivered = true;
          this.#drop();
        }
        // Other event kinds are for newer clients.
      }
    } finally {
      this.close();
    }
  }

  /** Stops watching and closes the connection (idempotent). */
  close(): void {
    if (!this.#stop.signal.aborted) this.#stop.abort();
    this.#drop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/** `response` whose body is aborted after {@link IDLE_TIMEOUT_MS} without a byte. */
function idle(response: Response, connection: AbortController): Response {
  const body = response.body;
  if (!body) return response;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => connection.abort(), IDLE_TIMEOUT_MS);
    timer.unref();
  };
  arm();
  const watched = (body as ReadableStream<Uint8Array>).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        arm();
        controller.enqueue(chunk);
      },
      flush() {
        clearTimeout(timer);
      },
    }),
  );
  connection.signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  return Object.defineProperty(new Response(watched as ReadableStream, { headers: response.headers, status: response.status }), "url", {
    value: response.url,
  });
}
