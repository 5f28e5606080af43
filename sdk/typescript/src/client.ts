/**
 * The HTTP client: configuration, Node's global `fetch`, retries and error mapping. Every call
 * of the SDK goes through {@link Client.request}, so all of them get the same retries and
 * error classes.
 */
import { resolveConfig, type ResolvedConfig } from "./config.js";
import { APIConnectionError, InternalError, NullspaceError, errorClassFor } from "./errors.js";
import { VERSION } from "./version.js";

/** Options of {@link Client} and {@link configure}. */
export interface ClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:7420`. */
  apiUrl?: string;
  /** API key (`nsk_...`). */
  apiKey?: string;
  /** Milliseconds to wait for an answer's headers (default 60,000). */
  timeout?: number;
  /** How many times a failed idempotent request is retried (default 3; 0 disables). */
  maxRetries?: number;
  /** First delay between retries in milliseconds, doubled each time (default 250). */
  retryBackoff?: number;
}

/** Query parameters: a record or a list of pairs (pairs allow repeated keys). */
export type Query = Record<string, unknown> | ReadonlyArray<readonly [string, unknown]>;

/** A request body. Strings and byte arrays can be sent again on a retry; streams cannot. */
export type RequestBody = string | Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/** Options of one request. */
export interface RequestOptions {
  query?: Query | undefined;
  /** A JSON body (sent with `content-type: application/json`). */
  json?: unknown;
  body?: RequestBody | undefined;
  headers?: Record<string, string> | undefined;
  /** Retry on `unavailable`/`internal`/a dropped connection (default: by method). */
  idempotent?: boolean | undefined;
  /** Milliseconds to wait for the answer's headers (default: the client's). `0`: no limit. */
  timeout?: number | undefined;
  signal?: AbortSignal | undefined;
}

type FetchBody = NonNullable<RequestInit["body"]>;

const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
const CONNECT_FAILURES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT", "EHOSTUNREACH"]);

function queryValue(v: unknown): string {
  return typeof v === "boolean" ? (v ? "true" : "false") : String(v);
}

function isReplayable(body: RequestBody | undefined): boolean {
  return body === undefined || typeof body === "string" || body instanceof Uint8Array;
}

function toFetchBody(body: RequestBody): FetchBody {
  if (typeof body === "string" || body instanceof Uint8Array || body instanceof ReadableStream) return body as FetchBody;
  const it = body[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel(reason) {
      await it.return?.(reason);
    },
  }) as FetchBody;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The code of the system error behind a failed `fetch` (`ECONNREFUSED`, ...), if any. */
function causeCode(e: unknown): string | undefined {
  let c: unknown = e;
  for (let i = 0; i < 4 && c && typeof c === "object"; i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string") return code;
    c = (c as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A connection to one nullspace server with an API key. Safe to share across the program. */
export class Client {
  readonly #config: ResolvedConfig;
  readonly #auth: string | null;
  readonly timeout: number;
  readonly maxRetries: number;
  readonly retryBackoff: number;

  constructor(options: ClientOptions = {}) {
    const { timeout = 60_000, maxRetries = 3, retryBackoff = 250 } = options;
    if (!(timeout > 0)) throw new RangeError(`timeout must be a positive number of milliseconds, not ${timeout}`);
    if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new RangeError(`maxRetries must be an integer >= 0, not ${maxRetries}`);
    if (!(retryBackoff >= 0)) throw new RangeError(`retryBackoff must be >= 0, not ${retryBackoff}`);
    this.#config = resolveConfig(options);
    this.#auth = this.#config.key ? `Bearer ${this.#config.key}` : null;
    this.timeout = timeout;
    this.maxRetries = maxRetries;
    this.retryBackoff = retryBackoff;
  }

  /** The server's base URL. */
  get url(): string {
    return this.#config.url;
  }

  /** The resolved configuration and where each part came from (the key is not shown). */
  get config(): ResolvedConfig {
    return this.#config;
  }

  toString(): string {
    return `Client(${this.url})`;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  /** An absolute URL for an API path and query. */
  urlFor(path: string, query?: Query): string {
    const u = new URL(path, this.url + "/");
    if (query) {
      const pairs = Array.isArray(query) ? query : Object.entries(query);
      for (const [k, v] of pairs as Array<readonly [string, unknown]>) {
        if (v !== undefined && v !== null) u.searchParams.append(k, queryValue(v));
      }
    }
    return u.toString();
  }

  /**
   * Sends one request and returns the successful answer, its body not yet read. Errors become
   * {@link NullspaceError} subclasses. Retryable failures (`unavailable`, `internal`, a
   * dropped connection) are retried with exponential backoff when the request is idempotent
   * and its body can be sent again; a request that could not connect at all is retried
   * whatever its method.
   */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    method = method.toUpperCase();
    const idempotent = options.idempotent ?? IDEMPOTENT.has(method);
    const replayable = isReplayable(options.body);
    const url = this.urlFor(path, options.query);
    const headers: Record<string, string> = { "user-agent": `nullspace-typescript/${VERSION}` };
    if (this.#auth) headers["authorization"] = this.#auth;
    let body: FetchBody | undefined;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    Object.assign(headers, options.headers);
    for (let attempt = 0; ; attempt++) {
      if (options.body !== undefined) body = toFetchBody(options.body);
      const canRetry = replayable && attempt < this.maxRetries;
      const controller = new AbortController();
      const onAbort = (): void => controller.abort(options.signal?.reason);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
      const limit = options.timeout ?? this.timeout;
      let timedOut = false;
      const timer =
        limit > 0
          ? setTimeout(() => {
              timedOut = true;
              controller.abort();
            }, limit)
          : undefined;
      let response: Response;
      try {
        const init: RequestInit & { duplex?: "half" } = { method, headers, signal: controller.signal, redirect: "manual" };
        if (body !== undefined) init.body = body;
        if (body instanceof ReadableStream) init.duplex = "half";
        response = await fetch(url, init);
      } catch (e) {
        if (options.signal?.aborted) throw options.signal.reason ?? e;
        const code = causeCode(e);
        const err = connectionError(this.url, method, url, e, timedOut);
        if (canRetry && (idempotent || (code !== undefined && CONNECT_FAILURES.has(code)))) {
          await this.#backoff(attempt, null);
          continue;
        }
        throw err;
      } finally {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      }
      if (response.status < 400) return response;
      const err = await errorFromResponse(response, method, url);
      if (canRetry && idempotent && (err.retryable || err.code === "unavailable" || err.code === "internal")) {
        await this.#backoff(attempt, response.headers.get("retry-after"));
        continue;
      }
      throw err;
    }
  }

  /** Like {@link request}, and decodes the JSON answer (`InternalError` if it is not JSON). */
  async requestJson<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(method, path, options);
    const text = await readText(response, this.url, method, path);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new InternalError(
        `the server at ${this.url} sent an answer that is not JSON to ${method} ${path} (HTTP ${response.status})`,
        { status: response.status },
      );
    }
  }

  /** Sends a request and drops the answer's body. */
  async requestVoid(method: string, path: string, options: RequestOptions = {}): Promise<void> {
    const response = await this.request(method, path, options);
    await readText(response, this.url, method, path);
  }

  async #backoff(attempt: number, retryAfter: string | null): Promise<void> {
    let delay = this.retryBackoff * 2 ** attempt * (0.5 + Math.random() / 2);
    const after = retryAfter === null ? NaN : Number(retryAfter);
    if (Number.isFinite(after)) delay = Math.max(delay, Math.min(after, 30) * 1000);
    if (delay > 0) await sleep(delay);
  }
}

/** The body of a successful answer as text; a connection lost meanwhile is an `APIConnectionError`. */
export async function readText(response: Response, base: string, method: string, path: string): Promise<string> {
  try {
    return await response.text();
  } catch (e) {
    throw connectionError(base, method, path, e, false);
  }
}

/** The SDK's error for a request that got no (complete) answer. */
export function connectionError(base: string, method: string, url: string, e: unknown, timedOut: boolean): APIConnectionError {
  const detail = causeCode(e) ?? (e instanceof Error ? e.message : String(e));
  const what = timedOut
    ? `timed out waiting for the nullspace server at ${base} (${method} ${url})`
    : causeCode(e) === "ECONNREFUSED"
      ? `cannot reach the nullspace server at ${base} (${method} ${url}): ${detail}; is \`nullspace server\` running? (set NULLSPACE_API_URL or run \`nullspace login\`)`
      : `connection to the nullspace server at ${base} failed (${method} ${url}): ${detail}`;
  return new APIConnectionError(what, { retryable: true, cause: e });
}

/** Turns an error answer (status >= 400) into the error of its code; reads the body. */
export async function errorFromResponse(response: Response, method: string, url: string): Promise<NullspaceError> {
  const status = response.status;
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The status is enough to classify it.
  }
  let code: string | null = null;
  let message: string | null = null;
  let retryable: boolean | null = null;
  try {
    const doc = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; retryable?: unknown } };
    const e = doc?.error;
    if (e && typeof e === "object") {
      if (typeof e.code === "string") code = e.code;
      if (typeof e.message === "string") message = e.message;
      if (typeof e.retryable === "boolean") retryable = e.retryable;
    }
  } catch {
    // Not JSON (a proxy, or a bare status such as a signed URL's 403).
  }
  const cls = errorClassFor(code, status);
  if (message === null) {
    const t = text.trim().slice(0, 200);
    message = `HTTP ${status} from ${method} ${url}` + (t ? `: ${t}` : "");
  }
  const opts: { status: number; retryable: boolean; code?: string } = {
    status,
    retryable: retryable ?? [502, 503, 504].includes(status),
  };
  if (code !== null) opts.code = code;
  return new cls(message, opts);
}

let defaultClientInstance: Client | null = null;

/** Sets the client used when no `client` option is given, and returns it. */
export function configure(options: ClientOptions = {}): Client {
  defaultClientInstance = new Client(options);
  return defaultClientInstance;
}

/** The client set by {@link configure}, made from the environment on first use. */
export function defaultClient(): Client {
  defaultClientInstance ??= new Client();
  return defaultClientInstance;
}

/** Forgets the default client; the next call resolves the configuration again. */
export function resetDefaultClient(): void {
  defaultClientInstance = null;
}

/** `client` itself, or the default client. */
export function resolveClient(client?: Client | null): Client {
  if (client === undefined || client === null) return defaultClient();
  if (!(client instanceof Client)) throw new TypeError("client must be a nullspace Client");
  return client;
}
