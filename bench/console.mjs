#!/usr/bin/env node
// The web console's benchmarks (issue 16), in Debian's Chromium driven by playwright-core:
//  1. first load of /console/ with a cold cache: bytes on the wire (CDP encodedDataLength,
//     headers included), requests, and time to interactive (the app's `console-ready` mark:
//     its first view rendered and focused), served by nullspace (files embedded in the
//     binary) against nginx serving the same files from disk — side by side, interleaved;
//  2. a 10,000-file directory in the file browser: time until its first page (200 rows) is
//     rendered and painted, and a page turn, against rendering every entry at once (one
//     `list?limit=10000` and 10,000 rows built with the console's own helpers) — the naive
//     browser the pagination replaces.
// Medians of --runs runs. Prints a table; --json FILE writes the raw figures.
//
//   NULLSPACE_BIN=target/release/nullspace node bench/console.mjs [--runs 7] [--json out.json]

import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const require = createRequire(join(root, 'tests/browser/package.json'));
const { chromium } = require('playwright-core');
const { startServer } = await import(join(root, 'tests/browser/server.mjs'));

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const RUNS = Number(opt('--runs', 7));
// First loads are short and noisy: more of them.
const LOAD_RUNS = Number(opt('--load-runs', 3 * RUNS));
const FILES = Number(opt('--files', 10_000));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function freePort() {
  // Only nginx needs a port chosen for it (it cannot report port 0); a benchmark, not a test.
  return new Promise((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); }); });
}

async function startNginx() {
  const dir = mkdtempSync(join(tmpdir(), 'nullspace-bench-nginx-'));
  mkdirSync(join(dir, 'site'));
  for (const f of readdirSync(join(root, 'console'))) if (f !== 'README.md') cpSync(join(root, 'console', f), join(dir, 'site', f));
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), `user root; daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 256; }
http { access_log off; sendfile on; tcp_nodelay on; etag on;
  types { text/html html; text/javascript js; text/css css; image/svg+xml svg; }
  server { listen 127.0.0.1:${port};
    location /console/ { alias ${dir}/site/; index index.html; add_header Cache-Control no-cache; } } }
`);
  const child = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i += 1) { try { if ((await fetch(`${url}/console/`)).ok) break; } catch { /* not yet */ } await delay(25); }
  return { url, stop: () => { child.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); } };
}

/** One cold load of `url`/console/ in a fresh context: {ms, bytes, requests}. */
async function firstLoad(browser, url, key) {
  const context = await browser.newContext();
  if (key) await context.addInitScript((k) => sessionStorage.setItem('nullspace.key', k), key);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let bytes = 0;
  let requests = 0;
  cdp.on('Network.loadingFinished', (e) => { bytes += e.encodedDataLength; requests += 1; });
  await page.goto(`${url}/console/${key ? '#/volumes' : ''}`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  const ms = await page.evaluate(() => performance.getEntriesByName('console-ready')[0].startTime);
  await context.close();
  return { ms, bytes, requests };
}

/** Time (ms, in the page) until the folder's first page is rendered and painted. */
async function paginated(page, volume, dir) {
  await page.evaluate(() => { location.hash = `#/volumes?at=${performance.now()}`; });
  await page.locator('#volumes').waitFor();
  return page.evaluate(async ({ volume, dir }) => {
    const t0 = performance.now();
    location.hash = `#/volumes/${volume}?path=${encodeURIComponent(dir)}`;
    await new Promise((resolve) => {
      const check = () => { const tb = document.querySelector('#files tbody'); if (tb && tb.rows.length >= 200) { obs.disconnect(); resolve(); } };
      const obs = new MutationObserver(check);
      obs.observe(document.body, { childList: true, subtree: true });
      check();
    });
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    const first = performance.now() - t0;
    const t1 = performance.now();
    const label = document.getElementById('page-label').textContent;
    [...document.querySelectorAll('.pager button')].find((b) => b.textContent === 'Next page').click();
    await new Promise((resolve) => {
      const check = () => { const l = document.getElementById('page-label'); if (l && l.textContent !== label) { obs.disconnect(); resolve(); } };
      const obs = new MutationObserver(check);
      obs.observe(document.body, { childList: true, subtree: true, characterData: true });
    });
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    return { first, next: performance.now() - t1, rows: document.querySelector('#files tbody').rows.length, nodes: document.getElementsByTagName('*').length };
  }, { volume, dir });
}

/** The baseline: every entry of the folder in one table (one list call, the console's row cells). */
async function renderAll(page, volume, dir) {
  await page.evaluate(() => { location.hash = `#/volumes?at=${performance.now()}`; });
  await page.locator('#volumes').waitFor();
  return page.evaluate(async ({ volume, dir, n }) => {
    const { h, bytes, when } = await import('./dom.js');
    const { get, vol } = await import('./api.js');
    const t0 = performance.now();
    const { entries } = await get(`${vol(volume)}/files/list`, { path: dir, limit: n + 1 });
    const tbody = h('tbody', {}, entries.filter((e) => e.path !== dir).map((e) => {
      const name = e.path.split('/').pop();
      return h('tr', { 'data-path': e.path },
        h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link', 'aria-label': `Preview ${name}` }, name)),
        h('td', {}, e.type), h('td', { class: 'num' }, bytes(e.size)), h('td', {}, when(e.mtime)),
        h('td', {}, h('button', { type: 'button' }, 'Download'), ' ', h('button', { type: 'button' }, 'Rename'), ' ', h('button', { type: 'button', class: 'danger' }, 'Delete')));
    }));
    document.getElementById('main').replaceChildren(h('table', { id: 'files' }, tbody));
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    return { first: performance.now() - t0, rows: tbody.rows.length, nodes: document.getElementsByTagName('*').length };
  }, { volume, dir, n: FILES });
}

// The files the console serves (not its README) and the module that serves them.
const CODE_PATHS = [...readdirSync(join(root, 'console')).filter((f) => f !== 'README.md').sort().map((f) => `console/${f}`), 'crates/api/src/console.rs'];
const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
const ms = (x) => `${Math.round(x).toLocaleString('en-US')} ms`;

/** bench/results/console.json (the shape of bench/figures.py) from one run. */
function writeResults(out) {
  const git = (...a) => spawnSync('git', ['-C', root, ...a], { encoding: 'utf8' }).stdout.trim();
  const f = out.first_load;
  const l = out.listing;
  const build = /release/.test(out.binary || '') ? 'release build' : 'debug build';
  const doc = {
    bench: 'console', order: 90,
    command: `NULLSPACE_BIN=${out.binary} node bench/console.mjs --runs ${out.runs} --load-runs ${out.load_runs} --write`,
    measured: { date: out.date, commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no', '--', ...CODE_PATHS) !== '', commit_is: 'built' },
    attribution: `built from this commit (${build}) in the worktree of issue 16 (console); load average ${out.load_before} before, ${out.load_after} after`,
    code_paths: CODE_PATHS,
    notes: 'bench/notes/issue16-console.md',
    figures: [
      { subsystem: 'console', what: `first load of /console/, cold cache, to interactive in Chromium (${f.requests} requests; ${build})`,
        ours: `${ms(f.ours_ms)}, ${kib(f.ours_bytes)}`, baseline: `nginx, same files: ${ms(f.nginx_ms)}, ${kib(f.nginx_bytes)}`,
        ratio: `${(f.ours_ms / f.nginx_ms).toFixed(2)}x`, goal: '—', met: '—' },
      { subsystem: 'console', what: `a ${out.files.toLocaleString('en-US')}-file folder in the file browser: first page (${l.page_rows} rows) shown; a page turn ${ms(l.next_page_ms)}`,
        ours: ms(l.first_page_ms), baseline: `every row at once: ${ms(l.all_ms)}`,
        ratio: `${(l.first_page_ms / l.all_ms).toFixed(3)}x`, goal: '—', met: '—' },
    ],
  };
  writeFileSync(join(root, 'bench/results/console.json'), `${JSON.stringify(doc, null, 1)}\n`);
  console.log('wrote bench/results/console.json');
}

async function main() {
  const load = loadavg().map((x) => x.toFixed(1)).join(' ');
  const server = await startServer();
  const nginx = await startNginx();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  try {
    const runs = { ours: [], nginx: [], signedIn: [] };
    await firstLoad(browser, server.url); // warm both servers' page caches once
    await firstLoad(browser, nginx.url);
    for (let i = 0; i < LOAD_RUNS; i += 1) {
      runs.ours.push(await firstLoad(browser, server.url));
      runs.nginx.push(await firstLoad(browser, nginx.url));
      runs.signedIn.push(await firstLoad(browser, server.url, server.key));
    }

    // 10,000 files of 100 bytes in one folder, written in one tar batch.
    const auth = { Authorization: `Bearer ${server.key}` };
    await fetch(`${server.url}/v1/volumes`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'big' }) });
    const tree = mkdtempSync(join(tmpdir(), 'nullspace-bench-tree-'));
    mkdirSync(join(tree, 'd'));
    for (let i = 0; i < FILES; i += 1) writeFileSync(join(tree, 'd', `file-${String(i).padStart(5, '0')}.txt`), `${'x'.repeat(99)}\n`);
    const tar = spawnSync('tar', ['-C', tree, '-cf', '-', 'd'], { maxBuffer: 1 << 30 }).stdout;
    rmSync(tree, { recursive: true, force: true });
    const put = await fetch(`${server.url}/v1/volumes/big/files/batch?path=/`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/x-tar' }, body: tar });
    if (!put.ok) throw new Error(`batch: ${put.status} ${await put.text()}`);

    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    await context.addInitScript((k) => sessionStorage.setItem('nullspace.key', k), server.key);
    const page = await context.newPage();
    await page.goto(`${server.url}/console/#/volumes`);
    await page.waitForFunction(() => document.body.dataset.ready === 'true');
    const pages = [];
    const all = [];
    await paginated(page, 'big', '/d');
    await renderAll(page, 'big', '/d');
    for (let i = 0; i < RUNS; i += 1) {
      pages.push(await paginated(page, 'big', '/d'));
      all.push(await renderAll(page, 'big', '/d'));
    }
    await context.close();

    const m = (xs, k) => median(xs.map((x) => x[k]));
    const out = {
      date: new Date().toISOString().slice(0, 10), load_before: load, load_after: loadavg().map((x) => x.toFixed(1)).join(' '),
      binary: process.env.NULLSPACE_BIN, runs: RUNS, load_runs: LOAD_RUNS, files: FILES,
      first_load: { ours_ms: m(runs.ours, 'ms'), nginx_ms: m(runs.nginx, 'ms'), ours_bytes: m(runs.ours, 'bytes'), nginx_bytes: m(runs.nginx, 'bytes'), requests: m(runs.ours, 'requests'), nginx_requests: m(runs.nginx, 'requests'), signed_in_ms: m(runs.signedIn, 'ms'), signed_in_bytes: m(runs.signedIn, 'bytes') },
      listing: { first_page_ms: m(pages, 'first'), next_page_ms: m(pages, 'next'), page_rows: pages[0].rows, page_nodes: pages[0].nodes, all_ms: m(all, 'first'), all_rows: all[0].rows, all_nodes: all[0].nodes },
      raw: { runs, pages, all },
    };
    const f = out.first_load;
    const l = out.listing;
    console.log(`load average before ${out.load_before}, after ${out.load_after}; medians of ${LOAD_RUNS} first loads and ${RUNS} listings`);
    console.log(`first load, sign-in page:  nullspace ${f.ours_ms.toFixed(0)} ms, ${f.ours_bytes} B in ${f.requests} requests | nginx ${f.nginx_ms.toFixed(0)} ms, ${f.nginx_bytes} B in ${f.nginx_requests} | ratio ${(f.ours_ms / f.nginx_ms).toFixed(2)}x`);
    console.log(`first load, signed in (volumes listed): ${f.signed_in_ms.toFixed(0)} ms, ${f.signed_in_bytes} B`);
    console.log(`${FILES}-file folder: first page (${l.page_rows} rows, ${l.page_nodes} elements) ${l.first_page_ms.toFixed(0)} ms, next page ${l.next_page_ms.toFixed(0)} ms | all at once (${l.all_rows} rows, ${l.all_nodes} elements) ${l.all_ms.toFixed(0)} ms | ratio ${(l.all_ms / l.first_page_ms).toFixed(1)}x`);
    const json = opt('--json');
    if (json) writeFileSync(json, `${JSON.stringify(out, null, 1)}\n`);
    if (args.includes('--write')) writeResults(out);
  } finally {
    await browser.close();
    nginx.stop();
    await server.stop();
  }
}

await main();
