// Sandboxes: the list (state, runtime, limits, attachments) and one sandbox's page:
// attachments with their states, attach and detach, pause/resume/hibernate/destroy, and an
// exec box.

import { get, post, del, sbx } from './api.js';
import { h, fill, bytes, when, say, sayError, confirmAction, field } from './dom.js';

const limits = (s) => `${s.cpu ?? '?'} CPU · ${bytes(s.memory_bytes)} memory · ${bytes(s.disk_bytes)} disk · ${s.pids ?? '?'} pids`;

export async function sandboxesView(main, signal) {
  const { sandboxes } = await get('/v1/sandboxes', null, { signal });
  fill(main,
    h('h1', {}, 'Sandboxes'),
    h('p', { class: 'muted' }, 'Sandboxes are made through the API, the CLI or an SDK; here you can watch and steer them.'),
    h('table', { id: 'sandboxes' },
      h('thead', {}, h('tr', {}, ['Sandbox', 'State', 'Runtime', 'Limits', 'Attachments', 'Server', 'Created', 'Expires'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, sandboxes.length ? sandboxes.map((s) => h('tr', { 'data-sandbox': s.id },
        h('th', { scope: 'row' }, h('a', { href: `#/sandboxes/${encodeURIComponent(s.id)}` }, s.name ? `${s.name} (${s.id})` : s.id)),
        h('td', {}, s.state), h('td', {}, s.runtime || ''), h('td', {}, limits(s)),
        h('td', {}, (s.attachments || []).map((a) => h('span', { class: 'chip' }, `${a.volume} → ${a.mount_path}: ${a.state}`))),
        h('td', {}, s.server_id), h('td', {}, when(s.created_at)), h('td', {}, when(s.expires_at) || 'never')))
        : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No sandboxes.')))));
}

export async function sandboxView(main, id, signal) {
  const facts = h('dl', { id: 'sandbox-facts' });
  const atts = h('tbody');
  const output = h('div', { id: 'exec-output', 'aria-live': 'polite' });
  const volumeSelect = h('select', { name: 'volume', required: true });
  const mountPath = h('input', { name: 'mount_path', required: true, placeholder: '/mnt/data', autocomplete: 'off' });
  const subpath = h('input', { name: 'subpath', placeholder: '(whole volume)', autocomplete: 'off' });
  const readOnly = h('input', { type: 'checkbox', name: 'read_only' });
  const cmd = h('input', { name: 'cmd', required: true, placeholder: 'ls -l /', autocomplete: 'off', size: 50 });
  const lifecycle = h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Lifecycle' });

  async function load() {
    const s = await get(sbx(id), null, { signal });
    fill(facts, ...[
      ['State', s.state], ['Runtime', s.runtime], ['Limits', limits(s)], ['Template', s.template],
      ['Server', s.server_id], ['Created', when(s.created_at)], ['Expires', when(s.expires_at) || 'never'],
    ].flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-fact': k.toLowerCase() }, v)]));
    const { attachments } = await get(`${sbx(id)}/attachments`, null, { signal });
    fill(atts, attachments.length ? attachments.map((a) => h('tr', { 'data-mount': a.mount_path },
      h('th', { scope: 'row' }, a.mount_path), h('td', {}, h('a', { href: `#/volumes/${encodeURIComponent(a.volume)}` }, a.volume)),
      h('td', {}, a.subpath || '/'), h('td', {}, a.read_only ? 'read-only' : 'read-write'),
      h('td', { class: 'att-state' }, a.state), h('td', { class: 'error' }, a.error || ''), h('td', {}, when(a.updated_at)),
      h('td', {}, a.state === 'mounted' ? h('button', { type: 'button', 'aria-label': `Detach ${a.mount_path}`, onclick: () => detach(a) }, 'Detach') : '')))
      : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No attachments.')));
    const verbs = { running: ['pause', 'hibernate'], paused: ['resume', 'hibernate'], hibernated: ['resume'] }[s.state] || [];
    fill(lifecycle, verbs.map((verb) => h('button', { type: 'button', onclick: () => act(verb) }, verb[0].toUpperCase() + verb.slice(1))),
      h('button', { type: 'button', class: 'danger', onclick: destroy }, 'Destroy'));
  }

  async function act(verb) {
    try { say(`${verb}…`); await post(`${sbx(id)}/${verb}`); say(`Sandbox ${verb} done.`); await load(); } catch (e) { sayError(e); }
  }

  async function destroy() {
    const done = await confirmAction({
      title: `Destroy sandbox ${id}?`, text: 'Its processes end and its attachments are released; the volumes and their data stay.',
      ok: 'Destroy', action: () => del(sbx(id)),
    });
    if (done) { say(`Destroyed ${id}.`); location.hash = '#/sandboxes'; }
  }

  async function detach(a) {
    try { await del(`${sbx(id)}/attachments`, { mount_path: a.mount_path }); say(`Detached ${a.mount_path}.`); await load(); } catch (e) { sayError(e); }
  }

  const attachForm = h('form', { class: 'inline', 'aria-label': 'Attach a volume' },
    field('Volume', volumeSelect), field('Mount path', mountPath), field('Subpath', subpath), field('Read-only', readOnly, 'check'),
    h('button', { type: 'submit' }, 'Attach'));
  attachForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const a = await post(`${sbx(id)}/attachments`, { volume: volumeSelect.value, mount_path: mountPath.value.trim(), read_only: readOnly.checked, subpath: subpath.value.trim() || null });
      say(`Attached ${a.volume} at ${a.mount_path}: ${a.state}.`);
      mountPath.value = '';
      await load();
    } catch (e) { sayError(e); }
  });
  const execForm = h('form', { class: 'inline', 'aria-label': 'Run a command' }, field('Command (sh -c)', cmd), h('button', { type: 'submit' }, 'Run'));
  execForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(output, h('p', { class: 'muted' }, 'Running…'));
    try {
      const r = await post(`${sbx(id)}/exec`, { cmd: cmd.value });
      const decode = (text, b64) => (b64 ? `(binary, ${atob(b64).length} bytes)` : text);
      fill(output,
        h('p', {}, `exit code ${r.exit_code}${r.timed_out ? ' (timed out)' : ''}${r.oom_killed ? ' (out of memory)' : ''}${r.truncated ? ' (output truncated)' : ''}`),
        h('h3', {}, 'stdout'), h('pre', { id: 'exec-stdout', tabindex: 0 }, decode(r.stdout, r.stdout_base64)),
        h('h3', {}, 'stderr'), h('pre', { id: 'exec-stderr', tabindex: 0 }, decode(r.stderr, r.stderr_base64)));
      await load();
    } catch (e) { fill(output); sayError(e); }
  });

  const { volumes } = await get('/v1/volumes', { fields: 'name' }, { signal });
  fill(volumeSelect, volumes.map((v) => h('option', { value: v.name }, v.name)));
  fill(main,
    h('h1', {}, `Sandbox ${id}`),
    h('p', {}, h('a', { href: '#/sandboxes' }, 'All sandboxes')),
    facts, lifecycle,
    h('section', { class: 'panel', 'aria-labelledby': 'att-title' },
      h('h2', { id: 'att-title' }, 'Attachments'),
      h('table', { id: 'attachments' },
        h('thead', {}, h('tr', {}, ['Mount path', 'Volume', 'Subpath', 'Access', 'State', 'Error', 'Updated', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        atts),
      attachForm),
    h('section', { class: 'panel', 'aria-labelledby': 'exec-title' }, h('h2', { id: 'exec-title' }, 'Exec'), execForm, output));
  await load();
}
