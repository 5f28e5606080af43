/**
 * Where the SDK finds the server URL and API key. First value wins:
 *
 * 1. explicit options (`new Client({ apiUrl, apiKey })` or `configure({...})`);
 * 2. the environment: `NULLSPACE_API_URL` and `NULLSPACE_API_KEY`;
 * 3. the CLI profile written by `nullspace login`: `$XDG_CONFIG_HOME/nullspace/config.json`
 *    (default `~/.config/nullspace/config.json`);
 * 4. the local server's bootstrap file: `client.json` in `$NULLSPACE_DATA_DIR`, else
 *    `$XDG_DATA_HOME/nullspace`, else `~/.local/share/nullspace`;
 * 5. the default URL `http://127.0.0.1:7420` (with no key).
 *
 * A file is used as a unit: its key is taken only when its URL is the URL already chosen (or no
 * URL was chosen yet, when its URL is taken too), so a key is never sent to a server it was not
 * saved for. A damaged profile is an `InvalidArgumentError`; a damaged `client.json` is skipped.
 * Relative `XDG_*`/`NULLSPACE_DATA_DIR` values are ignored. The same resolution as the CLI's
 * and the Python SDK's.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";

import { InvalidArgumentError } from "./errors.js";

export const DEFAULT_URL = "http://127.0.0.1:7420";
export const ENV_URL = "NULLSPACE_API_URL";
export const ENV_KEY = "NULLSPACE_API_KEY";

/** The outcome of configuration resolution. The key is kept out of `toJSON`/inspection. */
export interface ResolvedConfig {
  readonly url: string;
  readonly key: string | null;
  readonly urlSource: string;
  readonly keySource: string | null;
}

type Env = Readonly<Record<string, string | undefined>>;

function envDir(env: Env, name: string): string | null {
  const v = env[name] ?? "";
  return v && isAbsolute(v) ? v : null;
}

function home(env: Env): string | null {
  const h = envDir(env, "HOME");
  if (h) return h;
  try {
    const d = homedir();
    return d && isAbsolute(d) ? d : null;
  } catch {
    return null;
  }
}

/** Path of the CLI profile written by `nullspace login` (`null` without a home directory). */
export function profilePath(env: Env = process.env): string | null {
  const base = envDir(env, "XDG_CONFIG_HOME");
  if (base) return join(base, "nullspace", "config.json");
  const h = home(env);
  return h ? join(h, ".config", "nullspace", "config.json") : null;
}

/** Path of the `client.json` the local server writes at its first start. */
export function bootstrapPath(env: Env = process.env): string | null {
  let dir = envDir(env, "NULLSPACE_DATA_DIR");
  if (!dir) {
    const xdg = envDir(env, "XDG_DATA_HOME");
    if (xdg) dir = join(xdg, "nullspace");
    else {
      const h = home(env);
      if (!h) return null;
      dir = join(h, ".local", "share", "nullspace");
    }
  }
  return join(dir, "client.json");
}

function readConfigFile(path: string, strict: boolean): { url: string | null; key: string | null } {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { url: null, key: null };
    if (strict) throw new InvalidArgumentError(`invalid profile ${path}: ${(e as Error).message}`);
    return { url: null, key: null };
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    if (strict) throw new InvalidArgumentError(`invalid profile ${path}: expected a JSON object with url and key`);
    return { url: null, key: null };
  }
  const { url, key } = doc as Record<string, unknown>;
  return {
    url: typeof url === "string" && url ? url : null,
    key: typeof key === "string" && key ? key : null,
  };
}

/** Strips whitespace and trailing slashes; adds `http://` when no scheme is given. */
export function normalizeUrl(url: string): string {
  let u = url.trim().replace(/\/+$/, "");
  if (!u.includes("://")) u = "http://" + u;
  return u;
}

/** Resolves the server URL and API key (see the module comment for the order). */
export function resolveConfig(
  options: { apiUrl?: string | undefined; apiKey?: string | undefined } = {},
  env: Env = process.env,
): ResolvedConfig {
  let url: string | null = null;
  let key: string | null = null;
  let urlSource: string | null = null;
  let keySource: string | null = null;
  if (options.apiUrl) [url, urlSource] = [options.apiUrl, "argument"];
  else if (env[ENV_URL]) [url, urlSource] = [env[ENV_URL]!, `env ${ENV_URL}`];
  if (options.apiKey) [key, keySource] = [options.apiKey, "argument"];
  else if (env[ENV_KEY]) [key, keySource] = [env[ENV_KEY]!, `env ${ENV_KEY}`];

  for (const [label, path] of [
    ["profile", profilePath(env)],
    ["bootstrap", bootstrapPath(env)],
  ] as const) {
    if (url !== null && key !== null) break;
    if (path === null) continue;
    const f = readConfigFile(path, label === "profile");
    if (f.url === null) continue; // a key without its URL is never used
    if (url === null) {
      [url, urlSource] = [f.url, `${label} ${path}`];
      if (key === null && f.key !== null) [key, keySource] = [f.key, `${label} ${path}`];
    } else if (key === null && f.key !== null && normalizeUrl(f.url) === normalizeUrl(url)) {
      [key, keySource] = [f.key, `${label} ${path}`];
    }
  }
  if (url === null) [url, urlSource] = [DEFAULT_URL, "default"];
  return redacted({ url: normalizeUrl(url), key, urlSource: urlSource!, keySource });
}

/** The config with its key hidden from `JSON.stringify`, `console.log` and `util.inspect`. */
function redacted(c: ResolvedConfig): ResolvedConfig {
  const shown = { url: c.url, key: c.key === null ? null : "<redacted>", urlSource: c.urlSource, keySource: c.keySource };
  return Object.defineProperties(
    { url: c.url, urlSource: c.urlSource, keySource: c.keySource } as ResolvedConfig,
    {
      key: { value: c.key, enumerable: false },
      toJSON: { value: () => shown, enumerable: false },
      [Symbol.for("nodejs.util.inspect.custom")]: { value: () => shown, enumerable: false },
    },
  );
}
