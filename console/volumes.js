// Volumes: the list with usage against the cap, labels, create, delete (with confirmation,
// and the volume_in_use refusal shown with the choice to detach first).

import { get, post, del, vol } from './api.js';
import { h, fill, bytes, say, sayError, confirmAction, field } from './dom.js';

/** "team=ml, env=dev" → {team: "ml", env: "dev"}; throws on a part without "=". */
export function parseLabels(text) {
  const labels = {};
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) throw new Error(`label "${part}" is not key=value`);
    labels[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return labels;
}

export async function volumesView(main, signal) {
  const table = h('tbody');
  const filter = h('input', { type: 'search', name: 'label', placeholder: 'team=ml' });
  const name = h('input', { name: 'name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]*', autocomplete: 'off' });
  const labels = h('input', { name: 'labels', placeholder: 'team=ml, env=dev', autocomplete: 'off' });
  const create = h('form', { class: 'inline', 'aria-label': 'Create a volume' },
    field('Name', name), field('Labels (key=value, comma separated)', labels),
    h('button', { type: 'submit' }, 'Create volume'));
  const filterForm = h('form', { class: 'inline', role: 'search', 'aria-label': 'Filter volumes by label' },
    field('Filter by label', filter), h('button', { type: 'submit' }, 'Filter'));

  async function load() {
    const query = {};
    const wanted = filter.value.trim();
    if (wanted) query.label = wanted.split(',').map((s) => s.trim()).filter(Boolean);
    const { volumes } = await get('/v1/volumes', query, { signal });
    fill(table, volumes.length ? volumes.map(row) : h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No volumes yet.')));
  }

  function row(v) {
    const used = v.used_bytes + (v.pending_upload_bytes || 0);
    const pct = v.cap_bytes ? Math.round((100 * used) / v.cap_bytes) : 0;
    return h('tr', { 'data-volume': v.name },
      h('th', { scope: 'row' }, h('a', { href: `#/volumes/${encodeURIComponent(v.name)}` }, v.name)),
      h('td', {},
        h('meter', { min: 0, max: v.cap_bytes || 1, value: used, low: 0.8 * v.cap_bytes, high: 0.95 * v.cap_bytes, optimum: 0,
          'aria-label': `${v.name} usage: ${bytes(used)} of ${bytes(v.cap_bytes)}` }),
        ' ', h('span', { class: 'usage' }, `${bytes(used)} of ${bytes(v.cap_bytes)} (${pct} %)`)),
      h('td', { class: 'num' }, String(v.file_count)),
      h('td', {}, Object.entries(v.labels || {}).map(([k, val]) => h('span', { class: 'chip' }, `${k}=${val}`))),
      h('td', { class: 'num' }, String(v.attachments)),
      h('td', {}, v.state),
      h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Delete volume ${v.name}`, onclick: () => remove(v) }, 'Delete')));
  }

  async function remove(v) {
    const done = await confirmAction({
      title: `Delete volume ${v.name}?`,
      text: `Every file in "${v.name}" (${bytes(v.used_bytes)}, ${v.file_count} files) is removed. This cannot be undone.`,
      ok: 'Delete volume',
      action: (choice) => del(vol(v.name), choice === 'extra' ? { force: true } : {}),
      onError: (e) => (e.code === 'volume_in_use' ? 'Detach everywhere and delete' : null),
    });
    if (done) { say(`Deleted volume ${v.name}.`); await load(); }
  }

  create.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await post('/v1/volumes', { name: name.value.trim(), labels: parseLabels(labels.value) });
      say(`Created volume ${name.value.trim()}.`);
      name.value = '';
      labels.value = '';
      await load();
    } catch (e) { sayError(e); }
  });
  filterForm.addEventListener('submit', async (ev) => { ev.preventDefault(); try { await load(); } catch (e) { sayError(e); } });

  fill(main,
    h('h1', {}, 'Volumes'),
    create, filterForm,
    h('table', { id: 'volumes' },
      h('caption', { class: 'muted' }, 'Usage counts files and bytes of unfinished uploads against the volume\u2019s cap.'),
      h('thead', {}, h('tr', {}, ['Name', 'Usage', 'Files', 'Labels', 'Attachments', 'State', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      table));
  await load();
}
