// The file browser of one volume: navigate, list a page at a time (so 10,000 entries stay
// usable), preview text and images, download files (signed URLs: the browser streams them to
// disk) and directories (zip), upload files and folders through tus with progress, make
// folders, rename, delete, search contents, and a live feed of changes from watch.

import { get, post, del, request, vol, lines } from './api.js';
import { h, fill, bytes, when, say, sayError, confirmAction, field, saveAs } from './dom.js';
import { upload } from './tus.js';
import { watch } from './watch.js';

/** Entries per page of the listing. */
export const PAGE = 200;
const PREVIEW_BYTES = 256 * 1024;
const FEED_MAX = 200;
const IMAGE_MAX = 32 * 1024 * 1024;
const IMAGE = /\.(png|jpe?g|gif|webp|avif|bmp|ico|svg)$/i;

const join = (dir, name) => (dir === '/' ? `/${name}` : `${dir}/${name}`);
const base = (p) => p.split('/').filter(Boolean).pop() || '/';
const parent = (p) => { const s = p.split('/').filter(Boolean); s.pop(); return `/${s.join('/')}`; };
const href = (volume, path) => `#/volumes/${encodeURIComponent(volume)}?path=${encodeURIComponent(path)}`;

export async function filesView(main, volume, cwd, signal) {
  const v = await get(vol(volume), null, { signal });
  const tbody = h('tbody');
  const pager = h('div', { class: 'pager' });
  const preview = h('div', { class: 'preview', id: 'preview' }, h('p', { class: 'muted' }, 'Choose a file to preview it.'));
  const uploads = h('ul', { class: 'uploads', id: 'uploads' });
  const feed = h('ol', { class: 'feed', id: 'feed', 'aria-live': 'polite', 'aria-relevant': 'additions' });
  const feedState = h('span', { class: 'muted', id: 'feed-state' }, 'connecting');
  const results = h('ol', { id: 'search-results' });
  const searchSummary = h('p', { id: 'search-summary', role: 'status' });
  const glob = h('input', { type: 'search', name: 'glob', placeholder: '*.txt' });
  // Cursors of the pages seen so far: cursors[i] starts page i.
  let cursors = [null];
  let page = 0;

  async function load() {
    const query = { path: cwd, limit: PAGE, cursor: cursors[page], glob: glob.value.trim() };
    const { entries, next_cursor: next } = await get(`${vol(volume)}/files/list`, query, { signal });
    cursors = cursors.slice(0, page + 1);
    if (next) cursors.push(next);
    const shown = entries.filter((e) => e.path !== cwd);
    fill(tbody, shown.length ? shown.map(row) : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, page ? 'No more entries.' : 'This folder is empty.')));
    const first = page * PAGE + 1;
    fill(pager,
      h('button', { type: 'button', disabled: page === 0, onclick: () => go(page - 1) }, 'Previous page'),
      h('span', { id: 'page-label' }, shown.length ? `Entries ${first}\u2013${first + shown.length - 1}${next ? ' (more on the next page)' : ''}` : ''),
      h('button', { type: 'button', disabled: !next, onclick: () => go(page + 1) }, 'Next page'));
  }

  async function go(p) {
    page = p;
    try { await load(); tbody.closest('table').querySelector('caption').focus(); } catch (e) { sayError(e); }
  }

  function row(e) {
    const name = base(e.path);
    const isDir = e.type === 'dir';
    const nameCell = h('th', { scope: 'row' },
      isDir ? h('a', { href: href(volume, e.path) }, `${name}/`)
        : h('button', { type: 'button', class: 'link', onclick: () => show(e), 'aria-label': `Preview ${name}` }, name));
    const tr = h('tr', { 'data-path': e.path },
      nameCell,
      h('td', {}, e.type),
      h('td', { class: 'num' }, isDir ? '' : bytes(e.size)),
      h('td', {}, when(e.mtime)),
      h('td', {},
        h('button', { type: 'button', onclick: () => download(e), 'aria-label': `Download ${name}${isDir ? ' as zip' : ''}` }, isDir ? 'Zip' : 'Download'), ' ',
        h('button', { type: 'button', onclick: () => rename(e, nameCell), 'aria-label': `Rename ${name}` }, 'Rename'), ' ',
        h('button', { type: 'button', class: 'danger', onclick: () => remove(e), 'aria-label': `Delete ${name}` }, 'Delete')));
    return tr;
  }

  async function show(e) {
    const name = base(e.path);
    fill(preview, h('h3', {}, e.path), h('p', { class: 'muted' }, `${bytes(e.size)} · modified ${when(e.mtime)}`));
    try {
      if (IMAGE.test(name) && e.size > IMAGE_MAX) { preview.append(h('p', {}, `An image over ${bytes(IMAGE_MAX)}: download it to view it.`)); return; }
      if (IMAGE.test(name)) {
        const res = await request('GET', `${vol(volume)}/files/content`, { query: { path: e.path }, raw: true, signal });
        const url = URL.createObjectURL(await res.blob());
        preview.append(h('img', { src: url, alt: `Preview of ${name}`, onload: () => setTimeout(() => URL.revokeObjectURL(url), 1000) }));
        return;
      }
      const res = await request('GET', `${vol(volume)}/files/content`, { query: { path: e.path, length: PREVIEW_BYTES }, raw: true, signal });
      const buf = new Uint8Array(await res.arrayBuffer());
      if (buf.includes(0)) { preview.append(h('p', {}, 'A binary file: no preview. Download it instead.')); return; }
      const text = new TextDecoder().decode(buf);
      preview.append(h('pre', { id: 'preview-text', tabindex: 0, 'aria-label': `Contents of ${name}` }, text));
      if (e.size > PREVIEW_BYTES) preview.append(h('p', { class: 'muted' }, `The first ${bytes(PREVIEW_BYTES)} of ${bytes(e.size)}.`));
    } catch (err) { sayError(err); }
  }

  async function download(e) {
    try {
      if (e.type === 'dir') {
        say(`Preparing ${e.path} as a zip…`);
        const res = await request('GET', `${vol(volume)}/files/archive`, { query: { path: e.path, format: 'zip' }, raw: true, signal });
        const parts = [];
        let got = 0;
        const reader = res.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parts.push(value);
          got += value.length;
          say(`Downloading ${e.path} as a zip: ${bytes(got)}`);
        }
        saveAs(new Blob(parts, { type: 'application/zip' }), `${e.path === '/' ? volume : base(e.path)}.zip`);
        say(`Downloaded ${e.path} as a zip (${bytes(got)}).`);
      } else {
        // A short-lived signed URL: the browser downloads it itself, to disk, however large.
        // A read-only key may not make one (a URL is a capability): it fetches the file instead.
        let signed = null;
        try {
          signed = (await post(`${vol(volume)}/files/url`, { path: e.path, method: 'GET', expires_in: 300 })).url;
        } catch (err) {
          if (err.code !== 'permission_denied') throw err;
        }
        if (signed) {
          const u = new URL(signed, location.origin);
          saveAs(u.pathname + u.search, base(e.path));
        } else {
          const res = await request('GET', `${vol(volume)}/files/content`, { query: { path: e.path }, raw: true, signal });
          saveAs(await res.blob(), base(e.path));
        }
      }
    } catch (err) { sayError(err); }
  }

  function rename(e, cell) {
    const old = base(e.path);
    const input = h('input', { value: old, required: true, 'aria-label': `New name for ${old}` });
    const form = h('form', { class: 'inline' }, input, h('button', { type: 'submit' }, 'Save'),
      h('button', { type: 'button', onclick: () => load().catch(sayError) }, 'Cancel'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name || name.includes('/')) { say('A name cannot be empty or contain "/".', true); return; }
      try {
        await post(`${vol(volume)}/files/move`, { src: e.path, dst: join(parent(e.path), name), overwrite: false });
        say(`Renamed ${old} to ${name}.`);
        await load();
      } catch (err) { sayError(err); }
    });
    fill(cell, form);
    input.select();
    input.focus();
  }

  async function remove(e) {
    const isDir = e.type === 'dir';
    const done = await confirmAction({
      title: `Delete ${base(e.path)}?`,
      text: isDir ? `The folder ${e.path} and everything in it is deleted.` : `The file ${e.path} (${bytes(e.size)}) is deleted.`,
      action: () => del(`${vol(volume)}/files`, { path: e.path, recursive: isDir }),
    });
    if (done) { say(`Deleted ${e.path}.`); await load(); }
  }

  async function uploadAll(files) {
    const list = [...files];
    if (!list.length) return;
    let next = 0;
    let failed = 0;
    const one = async () => {
      while (next < list.length) {
        const file = list[next++];
        const rel = file.webkitRelativePath || file.name;
        const path = join(cwd, rel);
        const bar = h('progress', { max: file.size || 1, value: 0, 'aria-label': `Upload of ${rel}` });
        const text = h('span', {}, `${rel}: waiting`);
        uploads.append(h('li', { 'data-upload': path }, text, bar));
        try {
          await upload(volume, path, file, (sent, total) => {
            bar.value = total ? sent : 1;
            text.textContent = `${rel}: ${bytes(sent)} of ${bytes(total)}`;
          });
          text.textContent = `${rel}: done (${bytes(file.size)})`;
        } catch (err) {
          failed += 1;
          text.textContent = `${rel}: failed: ${err.code || ''} ${err.message}`;
          text.classList.add('error');
        }
      }
    };
    say(`Uploading ${list.length} file${list.length > 1 ? 's' : ''}…`);
    await Promise.all([one(), one(), one()]);
    say(failed ? `${failed} of ${list.length} uploads failed (see Uploads).` : `Uploaded ${list.length} file${list.length > 1 ? 's' : ''}.`, failed > 0);
    await load();
  }

  async function search(pattern, regex, ignoreCase) {
    results.replaceChildren();
    searchSummary.textContent = 'Searching…';
    const res = await request('POST', `${vol(volume)}/files/search`, {
      raw: true, signal, json: { pattern, path: cwd, regex, ignore_case: ignoreCase, max_results: 1000 },
    });
    for await (const line of lines(res)) {
      if (!line) continue;
      const m = JSON.parse(line);
      if (m.done) { searchSummary.textContent = `${m.matches} match${m.matches === 1 ? '' : 'es'}${m.truncated ? ' (stopped at 1,000)' : ''}.`; break; }
      results.append(h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => show({ path: m.path, size: 0 }) }, `${m.path}:${m.line}`), ` ${m.text}`));
    }
  }

  // The toolbar.
  const filesInput = h('input', { type: 'file', multiple: true, id: 'upload-files', onchange: (ev) => uploadAll(ev.target.files).finally(() => { ev.target.value = ''; }) });
  const folderInput = h('input', { type: 'file', multiple: true, webkitdirectory: true, id: 'upload-folder', onchange: (ev) => uploadAll(ev.target.files).finally(() => { ev.target.value = ''; }) });
  const folderName = h('input', { name: 'folder', required: true, autocomplete: 'off' });
  const mkdirForm = h('form', { class: 'inline', 'aria-label': 'New folder' }, field('New folder', folderName), h('button', { type: 'submit' }, 'Create folder'));
  mkdirForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await post(`${vol(volume)}/files/mkdir`, { path: join(cwd, folderName.value.trim()), parents: true });
      say(`Created folder ${folderName.value.trim()}.`);
      folderName.value = '';
      await load();
    } catch (err) { sayError(err); }
  });
  const globForm = h('form', { class: 'inline', role: 'search', 'aria-label': 'Filter this folder' }, field('Filter names (glob)', glob), h('button', { type: 'submit' }, 'Filter'));
  globForm.addEventListener('submit', (ev) => { ev.preventDefault(); cursors = [null]; go(0); });
  const pattern = h('input', { type: 'search', name: 'pattern', required: true });
  const regex = h('input', { type: 'checkbox', name: 'regex' });
  const icase = h('input', { type: 'checkbox', name: 'ignore_case' });
  const searchForm = h('form', { class: 'inline', role: 'search', 'aria-label': 'Search file contents' },
    field('Search contents', pattern), field('Regex', regex, 'check'), field('Ignore case', icase, 'check'),
    h('button', { type: 'submit' }, 'Search'));
  searchForm.addEventListener('submit', (ev) => { ev.preventDefault(); search(pattern.value, regex.checked, icase.checked).catch((e) => { searchSummary.textContent = ''; sayError(e); }); });

  const crumbs = [h('li', {}, h('a', { href: href(volume, '/') }, volume))];
  let at = '';
  for (const part of cwd.split('/').filter(Boolean)) { at += `/${part}`; crumbs.push(h('li', {}, h('a', { href: href(volume, at) }, part))); }
  crumbs[crumbs.length - 1].firstChild.setAttribute('aria-current', 'location');

  fill(main,
    h('h1', {}, `Volume ${volume}`),
    h('p', { class: 'muted' }, `${bytes(v.used_bytes)} of ${bytes(v.cap_bytes)} · ${v.file_count} files · ${v.attachments} attachments`),
    h('nav', { class: 'crumbs', 'aria-label': 'Folder' }, h('ol', {}, crumbs)),
    h('div', { class: 'toolbar' },
      h('label', { class: 'file-pick' }, 'Upload files', filesInput),
      h('label', { class: 'file-pick' }, 'Upload a folder', folderInput),
      h('button', { type: 'button', onclick: () => download({ path: cwd, type: 'dir' }) }, 'Download this folder as zip'),
      h('button', { type: 'button', onclick: () => load().catch(sayError) }, 'Refresh')),
    mkdirForm, globForm,
    h('div', { class: 'layout' },
      h('section', { 'aria-labelledby': 'files-title', ondragover: (ev) => ev.preventDefault(), ondrop: (ev) => { ev.preventDefault(); uploadAll(ev.dataTransfer.files); } },
        h('h2', { id: 'files-title' }, `Files in ${cwd}`),
        h('p', { class: 'muted' }, 'Files dropped here are uploaded into this folder.'),
        h('table', { id: 'files' },
          h('caption', { tabindex: -1, class: 'muted' }, `Page size ${PAGE}; sorted by name.`),
          h('thead', {}, h('tr', {}, ['Name', 'Type', 'Size', 'Modified', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
          tbody),
        pager,
        h('section', { class: 'panel', 'aria-labelledby': 'search-title' }, h('h2', { id: 'search-title' }, 'Search'), searchForm, searchSummary, results)),
      h('div', {},
        h('section', { class: 'panel', 'aria-labelledby': 'preview-title' }, h('h2', { id: 'preview-title' }, 'Preview'), preview),
        h('section', { class: 'panel', 'aria-labelledby': 'uploads-title' }, h('h2', { id: 'uploads-title' }, 'Uploads'), uploads),
        h('section', { class: 'panel', 'aria-labelledby': 'feed-title' }, h('h2', { id: 'feed-title' }, 'Live changes '), feedState, feed))));

  watch(volume, '/', (kind, data) => {
    const text = kind === 'change'
      ? `${new Date(data.time).toLocaleTimeString()} ${data.type} ${data.old_path ? `${data.old_path} \u2192 ` : ''}${data.path}${data.is_dir ? '/' : ''}`
      : `${kind}: ${JSON.stringify(data)}`;
    feed.prepend(h('li', { 'data-kind': kind, 'data-path': data.path || '' }, text));
    while (feed.children.length > FEED_MAX) feed.lastChild.remove();
  }, (state) => { feedState.textContent = state; }, signal);

  await load();
}
