/**
 * The real `nullspace server` for tests: `startServer()` runs `$NULLSPACE_BIN` (default: the
 * workspace's debug build) on `127.0.0.1:0` with a fresh data dir and a bootstrap key, waits
 * for the URL it writes to `DATA_DIR/client.json` and for `GET /v1/health`, and `stop()` ends it.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
/** sdk/typescript (this file is compiled to sdk/typescript/dist/test/). */
export const PACKAGE_DIR = resolve(HERE, "..", "..");
const REPO = resolve(PACKAGE_DIR, "..", "..");

export interface TestServer {
  url: string;
  key: string;
  dataDir: string;
  /** Temp dir of the test (HOME etc. go here). */
  tmp: string;
  log: string;
  stop(): Promise<void>;
}

function serverBinary(): string {
  return process.env["NULLSPACE_BIN"] || join(process.env["CARGO_TARGET_DIR"] || join(REPO, "target"), "debug", "nullspace");
}

function writtenUrl(dataDir: string): string {
  try {
    const doc = JSON.parse(readFileSync(join(dataDir, "client.json"), "utf8")) as { url?: unknown };
    return typeof doc.url === "string" ? doc.url : "";
  } catch {
    return "";
  }
}

function waitForExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    }
  });
}

/** Unmounts (MNT_DETACH) what the server left mounted below `dir` (its loop volumes). */
function unmountBelow(dir: string): void {
  let table = "";
  try {
    table = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return;
  }
  const points = table
    .split("\n")
    .map((l) => l.split(" ")[4]?.replace(/\\040/g, " "))
    .filter((p): p is string => !!p && (p === dir || p.startsWith(dir + "/")))
    .sort((a, b) => b.length - a.length);
  for (const p of points) spawnSyncQuiet("umount", ["-l", p]);
}

function spawnSyncQuiet(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: "ignore" });
}


/** Starts a fresh server; `env` is added to its environment. */
export async function startServer(opts: { env?: Record<string, string>; args?: string[] } = {}): Promise<TestServer> {
  const tmp = mkdtempSync(join(tmpdir(), "nullspace-ts-"));
  const dataDir = join(tmp, "data");
  const log = join(tmp, "server.log");
  const key = "nsk_" + randomBytes(24).toString("hex");
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("NULLSPACE_")) env[k] = v;
  env["RUST_LOG"] ??= "info";
  Object.assign(env, opts.env);
  const out = openSync(log, "a");
  const child = spawn(
    serverBinary(),
    ["server", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bootstrap-key", key, ...(opts.args ?? [])],
    { env, stdio: ["ignore", out, out] },
  );
  let spawnError: Error | null = null;
  child.once("error", (e) => (spawnError = e));
  const exited = waitForExit(child);
  const deadline = Date.now() + 60_000;
  let url = "";
  for (;;) {
    if (spawnError) throw new Error(`cannot start ${serverBinary()} (set NULLSPACE_BIN): ${String(spawnError)}`);
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${readFileSync(log, "utf8")}`);
    url = writtenUrl(dataDir);
    if (url) {
      try {
        const r = await fetch(`${url}/v1/health`);
        if (r.ok) break;
      } catch {
        // not yet
      }
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`server not healthy after 60 s:\n${readFileSync(log, "utf8")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    key,
    dataDir,
    tmp,
    log,
    async stop() {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(t);
      unmountBelow(dataDir);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** A fresh name for a volume. */
export function uniqueName(prefix = "v"): string {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/** Points the process at `server` only: no NULLSPACE_* of the developer, a fresh HOME. */
export function isolateEnv(server: TestServer): void {
  for (const k of Object.keys(process.env)) if (k.startsWith("NULLSPACE_") || k.startsWith("XDG_")) delete process.env[k];
  process.env["HOME"] = server.tmp;
}
