// startServer(opts) -> {url, key, dataDir, stop()}: the real `nullspace server` ($NULLSPACE_BIN)
// on port 0 in a fresh temp dir; its real URL comes from DATA_DIR/client.json.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

export async function startServer(opts = {}) {
  const bin = process.env.NULLSPACE_BIN;
  if (!bin) throw new Error("NULLSPACE_BIN must name the nullspace binary (scripts/test.sh sets it)");
  const root = mkdtempSync(join(tmpdir(), "nullspace-browser-"));
  const dataDir = join(root, "data");
  const key = "nsk_browser_test_key_0123456789abcdef";
  const args = ["server", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--bootstrap-key", key,
    "--volume-backend", "directory", ...(opts.args ?? [])];
  const log = openSync(join(root, "server.log"), "w");
  const env = { ...process.env, HOME: root };
  for (const k of Object.keys(env)) if (k.startsWith("NULLSPACE_") && k !== "NULLSPACE_BIN") delete env[k];
  const child = spawn(bin, args, { stdio: ["ignore", log, log], env });
  let exited = null;
  child.on("exit", (code) => { exited = code; });
  const clientJson = join(dataDir, "client.json");
  let url = null;
  // Bounded wait (server start-up, not a sync point between test steps).
  for (let i = 0; i < 600 && exited === null; i++) {
    if (existsSync(clientJson)) {
      try {
        url = JSON.parse(readFileSync(clientJson, "utf8")).url;
        const r = await fetch(`${url}/v1/health`);
        if (r.ok) break;
      } catch { /* not serving yet */ }
      url = null;
    }
    await delay(50);
  }
  if (!url) {
    child.kill("SIGKILL");
    throw new Error(`server did not start: ${readFileSync(join(root, "server.log"), "utf8")}`);
  }
  return {
    url, key, dataDir,
    async stop() {
      if (exited === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}
