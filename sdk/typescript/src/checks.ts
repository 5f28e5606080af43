/** Checks of arguments the SDK can make before sending a request (TypeError / RangeError). */

const MAX_PATH_BYTES = 4096;
const MAX_COMPONENT_BYTES = 255;
const VOLUME_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const encoder = new TextEncoder();

/** An absolute volume path, normalised (`.` and repeated `/` dropped; `..` refused). */
export function checkPath(value: unknown, what = "path"): string {
  if (typeof value !== "string") throw new TypeError(`${what} must be a string, not ${typeof value}`);
  if (!value) throw new RangeError(`${what} must not be empty; volume paths are absolute, like '/data/a.txt'`);
  if (!value.startsWith("/")) throw new RangeError(`${what} ${JSON.stringify(value)} is relative; volume paths are absolute, like '/${value}'`);
  if (value.includes("\0")) throw new RangeError(`${what} ${JSON.stringify(value)} contains a NUL character`);
  const parts: string[] = [];
  for (const part of value.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") throw new RangeError(`${what} ${JSON.stringify(value)} contains '..'; paths cannot leave their directory`);
    if (encoder.encode(part).length > MAX_COMPONENT_BYTES)
      throw new RangeError(`${what} ${JSON.stringify(value)} has a component longer than ${MAX_COMPONENT_BYTES} bytes`);
    parts.push(part);
  }
  const norm = "/" + parts.join("/");
  if (encoder.encode(norm).length > MAX_PATH_BYTES) throw new RangeError(`${what} is longer than ${MAX_PATH_BYTES} bytes`);
  return norm;
}

/** A volume name: 1-63 of `a-z 0-9 . _ -`, starting with a letter or digit. */
export function checkVolumeName(name: unknown): string {
  if (typeof name !== "string") throw new TypeError(`volume name must be a string, not ${typeof name}`);
  if (!VOLUME_NAME.test(name))
    throw new RangeError(`invalid volume name ${JSON.stringify(name)}: 1-63 characters of a-z 0-9 . _ -, starting with a letter or digit`);
  return name;
}

export function checkBool(what: string, v: unknown): boolean {
  if (typeof v !== "boolean") throw new TypeError(`${what} must be a boolean, not ${typeof v}`);
  return v;
}

export function checkInt(what: string, v: unknown, minimum = 0): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new TypeError(`${what} must be an integer, not ${String(v)}`);
  if (v < minimum) throw new RangeError(`${what} must be >= ${minimum}, not ${v}`);
  return v;
}

export function checkStringMap(what: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw new TypeError(`${what} must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") throw new TypeError(`${what} must be an object of strings; ${k} is ${typeof x}`);
    out[k] = x;
  }
  return out;
}

/** `p` for a URL path segment. */
export function seg(p: string): string {
  return encodeURIComponent(p);
}
