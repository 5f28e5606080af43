// Tenants (for an admin key): create a tenant (its first key is shown once), set a tenant's
// volume cap, and read and change its limits. The API has no route that lists tenants, so a
// tenant is looked up by name.

import { get, post, put } from './api.js';
import { h, fill, bytes, say, sayError, field } from './dom.js';

const enc = encodeURIComponent;
const LIMITS = ['max_sandboxes', 'max_volumes', 'max_cpu', 'max_sandbox_memory', 'max_total_memory', 'max_total_disk', 'max_keys'];
const SIZES = new Set(['max_sandbox_memory', 'max_total_memory', 'max_total_disk']);

export async function adminView(main, whoami) {
  if (!whoami.admin) { fill(main, h('h1', {}, 'Tenants'), h('p', {}, 'This needs an admin key.')); return; }
  const newName = h('input', { name: 'tenant', required: true, autocomplete: 'off' });
  const created = h('div', { id: 'tenant-created', 'aria-live': 'polite' });
  const createForm = h('form', { class: 'inline', 'aria-label': 'Create a tenant' }, field('New tenant', newName), h('button', { type: 'submit' }, 'Create tenant'));
  createForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await post('/v1/admin/tenants', { name: newName.value.trim() });
      fill(created, h('p', {}, `Tenant ${newName.value.trim()} created. Its key, shown this once:`), h('p', { class: 'key-once' }, r.key));
      lookup.value = newName.value.trim();
      newName.value = '';
      await show();
    } catch (e) { sayError(e); }
  });

  const lookup = h('input', { name: 'lookup', required: true, autocomplete: 'off', value: whoami.tenant });
  const detail = h('div', { id: 'tenant-detail' });
  const lookupForm = h('form', { class: 'inline', role: 'search', 'aria-label': 'Show a tenant' }, field('Tenant', lookup), h('button', { type: 'submit' }, 'Show'));
  lookupForm.addEventListener('submit', (ev) => { ev.preventDefault(); show().catch(sayError); });

  async function show() {
    const t = lookup.value.trim();
    const l = await get(`/v1/admin/tenants/${enc(t)}/limits`);
    const inputs = {};
    const limitForm = h('form', { class: 'inline', 'aria-label': `Limits of ${t}` },
      LIMITS.map((k) => field(`${k}${l.custom.includes(k) ? ' (set)' : ''}`, inputs[k] = h('input', { name: k, value: l[k] ?? '', size: 12 }))),
      h('button', { type: 'submit' }, 'Save limits'));
    limitForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = {};
      for (const k of LIMITS) {
        const raw = inputs[k].value.trim();
        if (raw === '' || raw === String(l[k] ?? '')) continue;
        body[k] = SIZES.has(k) && !/^\d+$/.test(raw) ? raw : Number(raw);
      }
      try { await put(`/v1/admin/tenants/${enc(t)}/limits`, body); say(`Saved the limits of ${t}.`); await show(); } catch (e) { sayError(e); }
    });
    const cap = h('input', { name: 'cap_bytes', required: true, inputmode: 'numeric', pattern: '\\d+', size: 16 });
    const capForm = h('form', { class: 'inline', 'aria-label': `Volume cap of ${t}` }, field('Volume cap (bytes)', cap), h('button', { type: 'submit' }, 'Set cap'));
    capForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try { await put(`/v1/admin/tenants/${enc(t)}/volume-cap`, { cap_bytes: Number(cap.value) }); say(`Set the volume cap of ${t} to ${bytes(Number(cap.value))}.`); } catch (e) { sayError(e); }
    });
    const u = l.usage || {};
    fill(detail,
      h('h2', {}, `Tenant ${t}`),
      h('table', { id: 'tenant-usage' },
        h('thead', {}, h('tr', {}, ['', 'Used', 'Limit'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, [
          ['Sandboxes', u.sandboxes, l.max_sandboxes], ['Volumes', u.volumes, l.max_volumes],
          ['Memory', bytes(u.memory_bytes), bytes(l.max_total_memory)], ['Disk', bytes(u.disk_bytes), bytes(l.max_total_disk)],
          ['Keys', u.keys, l.max_keys],
        ].map(([k, a, b]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, String(a ?? '')), h('td', {}, String(b ?? 'none')))))),
      limitForm, capForm);
  }

  fill(main, h('h1', {}, 'Tenants'), createForm, created, lookupForm, detail);
  await show().catch(sayError);
}
