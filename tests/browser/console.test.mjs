// The web console end to end: the real server, Debian's Chromium driven by playwright-core,
// every step through the console's UI (the API is used only to check results and to do what
// the console does not: make a sandbox and run a write in it). Each step leaves a screenshot
// under $NULLSPACE_TEST_OUTPUT/console (or tests/browser/output/console).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';
import { readZip } from './zip.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const OUT = join(process.env.NULLSPACE_TEST_OUTPUT || join(here, 'output'), 'console');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MIB = 1024 * 1024;
// A 1×1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

let server;
let browser;
let page;
let files;
let shot = 0;
let sandbox = null;
let noSandboxes = null;
const external = [];
const pageErrors = [];

async function api(method, path, body) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${server.key}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : null, text };
}

async function screenshot(name) {
  shot += 1;
  await page.screenshot({ path: join(OUT, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
}

const sha = (b) => createHash('sha256').update(b).digest('hex');
/** Controls of the page without an accessible name (a label, aria-label or text). */
const unnamed = () => page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
  .filter((el) => !el.closest('[hidden], dialog:not([open])') && el.type !== 'hidden')
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
  .map((el) => el.outerHTML.slice(0, 80)));
const row = (path) => page.locator(`#files tr[data-path="${path}"]`);

describe('web console', () => {
  before(async () => {
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    server = await startServer();
    files = mkdtempSync(join(tmpdir(), 'nullspace-console-files-'));
    writeFileSync(join(files, 'big.bin'), randomBytes(20 * MIB));
    mkdirSync(join(files, 'docs', 'notes'), { recursive: true });
    writeFileSync(join(files, 'docs', 'readme.txt'), 'first line\nthe needle is here\nlast line\n');
    writeFileSync(join(files, 'docs', 'notes', 'todo.md'), '# todo\n- ship the console\n');
    writeFileSync(join(files, 'docs', 'pixel.png'), PNG);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1400, height: 1000 } });
    // Nothing but the server: a request elsewhere (a CDN, a font) is refused and recorded.
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(server.url) || u.startsWith('blob:') || u.startsWith('data:')) return route.continue();
      external.push(u);
      return route.abort();
    });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // Chromium logs every failed request; the expected ones are the wrong key's 401, the
    // volume_in_use 409 and the chunk this test drops.
    const expected = /the server responded with a status of (401|409)|net::ERR_CONNECTION_RESET/;
    page.on('console', (m) => { if (m.type() === 'error' && !expected.test(m.text())) pageErrors.push(m.text()); });
  });

  after(async () => {
    if (sandbox) await api('DELETE', `/v1/sandboxes/${sandbox.id}`);
    if (browser) await browser.close();
    if (server) await server.stop();
    if (files) rmSync(files, { recursive: true, force: true });
  });

  it('is served at /console/ with a strict CSP, and / redirects there', async () => {
    const res = await fetch(`${server.url}/`, { redirect: 'manual' });
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('location'), '/console/');
    const index = await fetch(`${server.url}/console/`);
    assert.equal(index.status, 200);
    const csp = index.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  });

  it('signs in with an API key, kept in sessionStorage only', async () => {
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/console\/$/);
    await page.getByLabel('API key').fill('nsk_not_a_key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#signin-error', { hasText: 'not valid' }).waitFor();
    // By keyboard alone: the key field has the focus, Enter signs in.
    await page.getByLabel('API key').fill('');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'api-key');
    await page.keyboard.type(server.key);
    await page.keyboard.press('Enter');
    await page.locator('#who', { hasText: 'tenant default' }).waitFor();
    await page.getByRole('heading', { name: 'Volumes', level: 1 }).waitFor();
    const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('nullspace.key'), local: localStorage.length, cookie: document.cookie }));
    assert.equal(stored.session, server.key);
    assert.equal(stored.local, 0);
    assert.equal(stored.cookie, '');
    await screenshot('signed-in');
  });

  it('creates a volume, listed with labels and a usage bar against its cap', async () => {
    await page.getByLabel('Name', { exact: true }).fill('data');
    await page.getByLabel(/^Labels/).fill('team=ml, env=test');
    await page.getByRole('button', { name: 'Create volume' }).click();
    const tr = page.locator('#volumes tr[data-volume="data"]');
    await tr.waitFor();
    assert.match(await tr.textContent(), /team=ml/);
    assert.match(await tr.locator('.usage').textContent(), /^0 B of 2\.0 GiB/);
    assert.equal(await tr.locator('meter').getAttribute('max'), String(2 * 1024 * MIB));
    const v = await api('GET', '/v1/volumes/data');
    assert.deepEqual(v.json.labels, { team: 'ml', env: 'test' });
    await screenshot('volume-created');
  });

  it('uploads a 20 MiB file and a folder through tus, and lists them with sizes', async () => {
    await page.getByRole('link', { name: 'data', exact: true }).click();
    await page.getByRole('heading', { name: 'Volume data' }).waitFor();
    await page.locator('#feed-state', { hasText: 'live' }).waitFor();
    // The second chunk is lost on the way (the connection drops before the server sees it):
    // the console asks the server where the upload stands (HEAD) and goes on from there.
    const tus = [];
    let dropped = false;
    await page.route('**/v1/volumes/data/uploads/**', (route) => {
      const r = route.request();
      tus.push(`${r.method()} ${r.headers()['upload-offset'] ?? ''}`);
      if (r.method() === 'PATCH' && r.headers()['upload-offset'] !== '0' && !dropped) { dropped = true; return route.abort('connectionreset'); }
      return route.continue();
    });
    await page.locator('#upload-files').setInputFiles(join(files, 'big.bin'));
    await page.locator('#uploads li[data-upload="/big.bin"]', { hasText: 'done (20.0 MiB)' }).waitFor();
    await page.unroute('**/v1/volumes/data/uploads/**');
    const chunk = String(8 * MIB);
    assert.deepEqual(tus, ['PATCH 0', `PATCH ${chunk}`, 'HEAD ', `PATCH ${chunk}`, `PATCH ${16 * MIB}`]);
    await page.locator('#upload-folder').setInputFiles(join(files, 'docs'));
    for (const p of ['/docs/readme.txt', '/docs/notes/todo.md', '/docs/pixel.png']) {
      await page.locator(`#uploads li[data-upload="${p}"]`, { hasText: 'done' }).waitFor();
    }
    await row('/big.bin').waitFor();
    assert.equal(await row('/big.bin').locator('td.num').textContent(), '20.0 MiB');
    assert.equal(await row('/docs').locator('td').first().textContent(), 'dir');
    const big = await fetch(`${server.url}/v1/volumes/data/files/content?path=/big.bin`, { headers: { Authorization: `Bearer ${server.key}` } });
    assert.equal(sha(Buffer.from(await big.arrayBuffer())), sha(readFileSync(join(files, 'big.bin'))));
    const pending = await api('GET', '/v1/volumes/data/uploads');
    assert.deepEqual(pending.json.uploads, []);
    await screenshot('uploaded');
    await page.getByRole('link', { name: 'docs/' }).click();
    await row('/docs/readme.txt').waitFor();
    assert.equal(await row('/docs/readme.txt').locator('td.num').textContent(), `${readFileSync(join(files, 'docs', 'readme.txt')).length} B`);
    assert.equal(await row('/docs/pixel.png').locator('td.num').textContent(), `${PNG.length} B`);
    await row('/docs/notes').waitFor();
    assert.deepEqual(await unnamed(), []);
    await screenshot('folder-listed');
  });

  it('previews a text file and an image', async () => {
    await page.getByRole('button', { name: 'Preview readme.txt' }).click();
    await page.locator('#preview-text').waitFor();
    assert.equal(await page.locator('#preview-text').textContent(), 'first line\nthe needle is here\nlast line\n');
    await screenshot('preview-text');
    await page.getByRole('button', { name: 'Preview pixel.png' }).click();
    const img = page.getByRole('img', { name: 'Preview of pixel.png' });
    await img.waitFor();
    await page.waitForFunction(() => document.querySelector('#preview img')?.naturalWidth === 1);
  });

  it('search finds a line', async () => {
    await page.getByLabel('Search contents').fill('needle');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.locator('#search-summary', { hasText: '1 match.' }).waitFor();
    assert.equal(await page.locator('#search-results li').textContent(), '/docs/readme.txt:2 the needle is here');
    await screenshot('search');
  });

  it('downloads a directory as a zip with the same contents', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download this folder as zip' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'docs.zip');
    const zip = readZip(readFileSync(await download.path()));
    const got = Object.fromEntries(Object.entries(zip).filter(([n]) => !n.endsWith('/')).map(([n, b]) => [n.replace(/^\/?(docs\/)?/, ''), sha(b)]));
    assert.deepEqual(got, {
      'readme.txt': sha(readFileSync(join(files, 'docs', 'readme.txt'))),
      'notes/todo.md': sha(readFileSync(join(files, 'docs', 'notes', 'todo.md'))),
      'pixel.png': sha(PNG),
    });
    await screenshot('zip-downloaded');
    // One file: through a signed URL, streamed by the browser itself.
    const [one] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download readme.txt' }).click()]);
    assert.equal(one.suggestedFilename(), 'readme.txt');
    assert.match(one.url(), /\/v1\/signed\//);
    assert.deepEqual(readFileSync(await one.path()), readFileSync(join(files, 'docs', 'readme.txt')));
  });

  it('makes a folder and renames an entry', async () => {
    await page.getByRole('textbox', { name: 'New folder' }).fill('made here');
    await page.getByRole('button', { name: 'Create folder' }).click();
    await row('/docs/made here').waitFor();
    await page.getByRole('button', { name: 'Rename notes' }).click();
    await page.getByLabel('New name for notes').fill('notes2');
    await page.getByLabel('New name for notes').press('Enter');
    await row('/docs/notes2').waitFor();
    assert.equal((await api('GET', '/v1/volumes/data/files/stat?path=/docs/notes2/todo.md')).status, 200);
    assert.equal((await api('GET', '/v1/volumes/data/files/exists?path=/docs/notes')).json.exists, false);
  });

  it('deletes a file only after confirmation', async () => {
    await page.getByRole('button', { name: 'Delete pixel.png' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete pixel.png?' });
    await dialog.waitFor();
    await screenshot('delete-confirm');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await api('GET', '/v1/volumes/data/files/exists?path=/docs/pixel.png')).json.exists, true);
    await page.getByRole('button', { name: 'Delete pixel.png' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await row('/docs/pixel.png').waitFor({ state: 'detached' });
    assert.equal((await api('GET', '/v1/volumes/data/files/exists?path=/docs/pixel.png')).json.exists, false);
    await screenshot('deleted');
  });

  it('pages through a large folder and filters it by name', async () => {
    const tree = join(files, 'tree');
    mkdirSync(join(tree, 'many'), { recursive: true });
    for (let i = 0; i < 450; i += 1) writeFileSync(join(tree, 'many', `file-${String(i).padStart(3, '0')}.txt`), `${i}\n`);
    const tar = spawnSync('tar', ['-C', tree, '-cf', '-', 'many'], { maxBuffer: 1 << 26 }).stdout;
    const put = await fetch(`${server.url}/v1/volumes/data/files/batch?path=/`, { method: 'POST', headers: { Authorization: `Bearer ${server.key}`, 'Content-Type': 'application/x-tar' }, body: tar });
    assert.equal(put.status, 200, await put.text());
    await page.goto(`${server.url}/console/#/volumes/data?path=%2Fmany`);
    const label = page.locator('#page-label');
    await label.filter({ hasText: 'Entries 1\u2013200 (more on the next page)' }).waitFor();
    assert.equal(await page.locator('#files tbody tr').count(), 200);
    assert.equal(await page.locator('#files tbody tr').first().getAttribute('data-path'), '/many/file-000.txt');
    await page.getByRole('button', { name: 'Next page' }).click();
    await label.filter({ hasText: 'Entries 201\u2013400' }).waitFor();
    await page.getByRole('button', { name: 'Next page' }).click();
    await label.filter({ hasText: /^Entries 401\u2013450$/ }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Next page' }).isDisabled(), true);
    assert.equal(await page.locator('#files tbody tr').last().getAttribute('data-path'), '/many/file-449.txt');
    await page.getByRole('button', { name: 'Previous page' }).click();
    await label.filter({ hasText: 'Entries 201\u2013400' }).waitFor();
    await page.getByLabel('Filter names (glob)').fill('file-44?.txt');
    await page.getByRole('button', { name: 'Filter', exact: true }).click();
    await label.filter({ hasText: /^Entries 1\u201310$/ }).waitFor();
    await screenshot('paged-and-filtered');
  });

  it("shows a sandbox's write in the live feed", async (t) => {
    await page.getByRole('link', { name: 'data', exact: true }).first().click();
    await page.getByRole('heading', { name: 'Volume data' }).waitFor();
    await page.locator('#feed-state', { hasText: 'live' }).waitFor();
    const made = await api('POST', '/v1/sandboxes', { volumes: [{ volume: 'data', mount_path: '/data' }] });
    if (made.status === 503) { noSandboxes = made.json.error.message; t.skip(`the sandbox runtime is unavailable: ${noSandboxes}`); return; }
    assert.equal(made.status, 201, made.text);
    sandbox = made.json;
    const run = await api('POST', `/v1/sandboxes/${sandbox.id}/exec`, { cmd: 'echo from-sandbox > /data/sandbox-wrote.txt' });
    assert.equal(run.json.exit_code, 0, run.text);
    const item = page.locator('#feed li[data-path="/sandbox-wrote.txt"]').first();
    await item.waitFor();
    assert.match(await item.textContent(), /created \/sandbox-wrote\.txt$/);
    await screenshot('live-feed');
  });

  it('attaches a volume to a sandbox and shows the record mounted; the in-use refusal is shown', async (t) => {
    if (!sandbox) { t.skip(`no sandbox: ${noSandboxes}`); return; }
    assert.equal((await api('POST', '/v1/volumes', { name: 'other' })).status, 201);
    await page.getByRole('link', { name: 'Sandboxes' }).click();
    await page.getByRole('link', { name: sandbox.id }).click();
    await page.getByRole('heading', { name: `Sandbox ${sandbox.id}` }).waitFor();
    assert.equal(await page.locator('#attachments tr[data-mount="/data"] .att-state').textContent(), 'mounted');
    await page.getByLabel('Volume', { exact: true }).selectOption('other');
    await page.getByLabel('Mount path').fill('/mnt/other');
    await page.getByRole('button', { name: 'Attach' }).click();
    const state = page.locator('#attachments tr[data-mount="/mnt/other"] .att-state');
    await state.waitFor();
    assert.equal(await state.textContent(), 'mounted');
    const atts = (await api('GET', `/v1/sandboxes/${sandbox.id}/attachments`)).json.attachments;
    assert.equal(atts.find((a) => a.mount_path === '/mnt/other').state, 'mounted');
    await page.getByLabel('Command (sh -c)').fill('cat /data/sandbox-wrote.txt && ls -d /mnt/other');
    await page.getByRole('button', { name: 'Run' }).click();
    await page.locator('#exec-stdout').waitFor();
    assert.equal(await page.locator('#exec-stdout').textContent(), 'from-sandbox\n/mnt/other\n');
    assert.deepEqual(await unnamed(), []);
    await screenshot('attached');
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('dd[data-fact="state"]', { hasText: 'paused' }).waitFor();
    assert.equal((await api('GET', `/v1/sandboxes/${sandbox.id}`)).json.state, 'paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('dd[data-fact="state"]', { hasText: 'running' }).waitFor();

    await page.getByRole('link', { name: 'Volumes' }).click();
    await page.getByRole('button', { name: 'Delete volume other' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete volume other?' });
    await dialog.getByRole('button', { name: 'Delete volume' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'volume_in_use' }).waitFor();
    await screenshot('volume-in-use');
    await dialog.getByRole('button', { name: 'Detach everywhere and delete' }).click();
    await page.locator('#volumes tr[data-volume="other"]').waitFor({ state: 'detached' });
    assert.equal((await api('GET', '/v1/volumes/other')).status, 404);
  });

  it('shows an admin a tenant: create it (its key once), its limits and usage, set one', async () => {
    await page.getByRole('link', { name: 'Tenants' }).click();
    await page.getByLabel('New tenant').fill('acme');
    await page.getByRole('button', { name: 'Create tenant' }).click();
    const key = (await page.locator('#tenant-created .key-once').textContent()).trim();
    assert.match(key, /^nsk_/);
    await page.getByRole('heading', { name: 'Tenant acme' }).waitFor();
    await page.getByLabel(/^max_volumes/).fill('7');
    await page.getByRole('button', { name: 'Save limits' }).click();
    await page.getByLabel(/^max_volumes \(set\)/).waitFor();
    const limits = (await api('GET', '/v1/admin/tenants/acme/limits')).json;
    assert.equal(limits.max_volumes, 7);
    assert.ok(limits.custom.includes('max_volumes'));
    const acme = await fetch(`${server.url}/v1/whoami`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal((await acme.json()).tenant, 'acme');
    assert.deepEqual(await unnamed(), []);
    await screenshot('tenants');
  });

  it('a read-only key browses and downloads, its changes are refused; signing out forgets the key', async () => {
    const made = await api('POST', '/v1/keys', { name: 'viewer', role: 'read-only' });
    assert.equal(made.status, 201, made.text);
    const context = await browser.newContext({ acceptDownloads: true });
    const ro = await context.newPage();
    ro.on('pageerror', (e) => pageErrors.push(String(e)));
    await ro.goto(`${server.url}/console/`);
    await ro.getByLabel('API key').fill(made.json.key);
    await ro.getByLabel('API key').press('Enter');
    await ro.locator('#who', { hasText: 'read-only' }).waitFor();
    assert.equal(await ro.locator('#nav-admin').isHidden(), true);
    await ro.getByLabel('Name', { exact: true }).fill('not-allowed');
    await ro.getByRole('button', { name: 'Create volume' }).click();
    await ro.locator('#status', { hasText: 'permission_denied' }).waitFor();
    await ro.goto(`${server.url}/console/#/volumes/data?path=%2Fdocs`);
    await ro.locator('#files tr[data-path="/docs/readme.txt"]').waitFor();
    // No signed URL for a read-only key (a URL is a capability): the file is fetched instead.
    const [one] = await Promise.all([ro.waitForEvent('download'), ro.getByRole('button', { name: 'Download readme.txt' }).click()]);
    assert.match(one.url(), /^blob:/);
    assert.deepEqual(readFileSync(await one.path()), readFileSync(join(files, 'docs', 'readme.txt')));
    await ro.getByRole('button', { name: 'Sign out' }).click();
    await ro.getByRole('heading', { name: 'Sign in' }).waitFor();
    assert.equal(await ro.evaluate(() => sessionStorage.getItem('nullspace.key')), null);
    await context.close();
  });

  it('made no request outside the server and logged no page error', () => {
    assert.deepEqual(external, []);
    assert.deepEqual(pageErrors, []);
  });
});
