// The console's shell: sign-in, navigation and the hash router. Each view renders into <main>
// and gets an AbortSignal that fires when the user leaves it (which ends its live streams).

import { get, storedKey, storeKey, forgetKey } from './api.js';
import { h, fill, say, sayError } from './dom.js';
import { volumesView } from './volumes.js';
import { filesView } from './files.js';
import { sandboxesView, sandboxView } from './sandboxes.js';
import { adminView } from './admin.js';

const main = document.getElementById('main');
let whoami = null;
let leaving = null;

/** The route of the location's hash: {view, name, params}. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, queryPart = ''] = raw.split('?');
  const parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(queryPart) };
}

function signInView() {
  const input = h('input', { type: 'password', id: 'api-key', name: 'key', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = h('p', { class: 'error', role: 'alert', id: 'signin-error' });
  const form = h('form', { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', {}, 'Paste an API key (nsk_…). It is kept in this tab only (sessionStorage) and sent to this server alone.'),
    h('label', { for: 'api-key' }, 'API key'), input,
    h('p', {}, h('button', { type: 'submit' }, 'Sign in')),
    error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    try {
      whoami = await get('/v1/whoami', null, { key: input.value.trim() });
      storeKey(input.value.trim());
      signedIn();
      if (!location.hash || location.hash === '#/' || location.hash === '#/signin') location.hash = '#/volumes';
      else render();
    } catch (e) {
      error.textContent = e.code === 'unauthenticated' ? 'That key is not valid (unknown, revoked or expired).' : `${e.code || 'error'}: ${e.message}`;
      input.focus();
    }
  });
  fill(main, form);
  input.focus();
}

function signedIn() {
  document.getElementById('nav').hidden = false;
  document.getElementById('sign-out').hidden = false;
  document.getElementById('nav-admin').hidden = !whoami.admin;
  document.getElementById('who').textContent = `tenant ${whoami.tenant} · ${whoami.role}`;
}

function signOut() {
  forgetKey();
  whoami = null;
  document.getElementById('nav').hidden = true;
  document.getElementById('sign-out').hidden = true;
  document.getElementById('who').textContent = '';
  if (leaving) leaving.abort();
  location.hash = '#/signin';
  signInView();
}

async function render() {
  if (leaving) leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  if (!whoami) return signInView();
  const { parts, params } = parseHash();
  for (const a of document.querySelectorAll('#nav a')) {
    a.toggleAttribute('aria-current', a.getAttribute('href') === `#/${parts[0] || 'volumes'}`);
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  main.replaceChildren();
  say('');
  try {
    if (parts[0] === 'volumes' && parts[1]) await filesView(main, parts[1], params.get('path') || '/', signal);
    else if (parts[0] === 'sandboxes' && parts[1]) await sandboxView(main, parts[1], signal);
    else if (parts[0] === 'sandboxes') await sandboxesView(main, signal);
    else if (parts[0] === 'admin') await adminView(main, whoami, signal);
    else await volumesView(main, signal);
  } catch (e) {
    if (signal.aborted) return;
    if (e.code === 'unauthenticated') return signOut();
    sayError(e);
  }
  const title = main.querySelector('h1');
  if (title && !signal.aborted) { title.tabIndex = -1; title.focus({ preventScroll: true }); }
}

async function start() {
  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', render);
  const key = storedKey();
  if (key) {
    try {
      whoami = await get('/v1/whoami');
      signedIn();
    } catch (e) {
      if (e.code !== 'unauthenticated') sayError(e);
      forgetKey();
    }
  }
  await render();
  // Interactive: the first view is rendered and focused (bench/console.mjs reads this mark).
  performance.mark('console-ready');
  document.body.dataset.ready = 'true';
}

start();
