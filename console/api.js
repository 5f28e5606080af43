// The console's client of the public /v1 API (docs/API.md). The key lives in sessionStorage
// only: it goes with the tab, is never written to localStorage, a cookie or a URL.

const KEY = 'nullspace.key';

/** An error answer of the API: {code, message, status, retryable}. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || `http_${status}`;
    this.retryable = !!e.retryable;
  }
}

export function storedKey() { return sessionStorage.getItem(KEY); }
export function storeKey(key) { sessionStorage.setItem(KEY, key); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

/** `/v1/volumes/{name}` with the name encoded. */
export const vol = (name) => `/v1/volumes/${encodeURIComponent(name)}`;
export const sbx = (id) => `/v1/sandboxes/${encodeURIComponent(id)}`;

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) u.searchParams.append(k, String(one));
  }
  return u.pathname + u.search;
}

/**
 * One request. `json` is sent as a JSON body; `body` as is. Answers the parsed JSON (or null
 * for 204), or the Response itself with `raw: true`. Error answers throw ApiError.
 */
export async function request(method, path, { query, json, body, headers = {}, raw = false, key, signal } = {}) {
  const h = { ...headers };
  const k = key || storedKey();
  if (k) h.Authorization = `Bearer ${k}`;
  if (json !== undefined) { h['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  const res = await fetch(url(path, query), { method, headers: h, body, signal, cache: 'no-store' });
  if (!res.ok) {
    let parsed = null;
    try { parsed = await res.json(); } catch { /* not JSON: the status says it */ }
    throw new ApiError(res.status, parsed);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, query, opts) => request('GET', path, { ...opts, query });
export const post = (path, json, opts) => request('POST', path, { ...opts, json });
export const put = (path, json, opts) => request('PUT', path, { ...opts, json });
export const del = (path, query, opts) => request('DELETE', path, { ...opts, query });

/** Reads a response body as lines as they arrive (NDJSON, SSE). */
export async function* lines(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      yield buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}
