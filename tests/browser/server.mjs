// Starts the real `nullspace server` for a browser test: the binary from $NULLSPACE_BIN (as
// scripts/test.sh exports it), port 0 (the server writes its URL to DATA_DIR/client.json),
// a fresh temp data dir and a bootstrap key. stop() ends it and removes the data dir.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** startServer({args, env}) -> {url, key, dataDir, log, stop()} */
export async function startServer(opts = {}) {
  const bin = process.env.NULLSPACE_BIN;
  if (!bin) throw new Error('NULLSPACE_BIN is not set (scripts/test.sh sets it to the built nullspace binary)');
  const root = mkdtempSync(join(tmpdir(), 'nullspace-browser-'));
  const dataDir = join(root, 'data');
  const log = join(root, 'server.log');
  const key = `nsk_${randomBytes(24).toString('hex')}`;
  const out = openSync(log, 'a');
  const child = spawn(bin, ['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--bootstrap-key', key, ...(opts.args || [])], {
    stdio: ['ignore', out, out],
    env: { ...process.env, ...(opts.env || {}) },
  });
  closeSync(out);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 60_000;
  let url = null;
  while (!url) {
    if (exited) throw new Error(`server exited (${JSON.stringify(exited)}); log:\n${readFileSync(log, 'utf8')}`);
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`server not healthy after 60 s; log:\n${readFileSync(log, 'utf8')}`); }
    try {
      const written = JSON.parse(readFileSync(join(dataDir, 'client.json'), 'utf8')).url;
      if (written && (await fetch(`${written}/v1/health`)).ok) url = written;
    } catch { /* not written or not answering yet */ }
    if (!url) await delay(25);
  }
  const stop = async () => {
    if (!exited) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    }
    detachMounts(root);
    try { rmSync(root, { recursive: true, force: true }); } catch (e) { console.error(`left ${root}: ${e.message}`); }
  };
  return { url, key, dataDir, log, stop };
}

/** Detaches (lazily) every mount at or below `dir`, deepest first: the loop volumes and
 * sandbox roots a stopped server leaves, so the temp dir can be removed. */
function detachMounts(dir) {
  const unescape = (p) => p.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  const points = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4]).filter(Boolean).map(unescape)
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) spawnSync('umount', ['-l', p], { stdio: 'ignore' });
}
