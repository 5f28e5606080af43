// DOM helpers: elements are built with h() and text is always set as text (never as HTML), so
// names and file contents from the server cannot inject markup.

/** Makes an element: h('button', {type: 'button', onclick: f}, 'Go'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 20971520 → "20.0 MiB"; 512 → "512 B". */
export function bytes(n) {
  if (n === null || n === undefined) return '';
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

/** An RFC 3339 time as the browser's local date and time. */
export function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toLocaleString();
}

/** Says something in the status line (a polite live region). */
export function say(text, isError = false) {
  const s = document.getElementById('status');
  s.classList.toggle('error', isError);
  s.textContent = text;
}

/** Shows an error from the API in the status line. */
export function sayError(e) {
  say(e && e.code ? `${e.code}: ${e.message}` : String(e && e.message ? e.message : e), true);
}

/**
 * Asks for confirmation in the modal dialog. `action(choice)` runs on "ok" (or on "extra" when
 * `extra` names a second button); when it throws, the error is shown in the dialog, and
 * `onError(err)` may return a label to offer the extra button (e.g. "Detach and delete").
 * Resolves true when an action succeeded, false when cancelled.
 */
export function confirmAction({ title, text, ok = 'Delete', action, onError }) {
  const dialog = document.getElementById('confirm');
  const err = document.getElementById('confirm-error');
  const extra = document.getElementById('confirm-extra');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = ok;
  err.hidden = true;
  extra.hidden = true;
  return new Promise((resolve) => {
    const form = dialog.querySelector('form');
    const onSubmit = async (ev) => {
      const choice = ev.submitter ? ev.submitter.value : 'cancel';
      if (choice === 'cancel') return; // the dialog closes by itself
      ev.preventDefault();
      try {
        await action(choice);
        form.removeEventListener('submit', onSubmit);
        dialog.close('done');
        resolve(true);
      } catch (e) {
        err.textContent = e && e.code ? `${e.code}: ${e.message}` : String(e);
        err.hidden = false;
        const label = onError ? onError(e) : null;
        if (label) { extra.textContent = label; extra.hidden = false; }
      }
    };
    form.addEventListener('submit', onSubmit);
    dialog.addEventListener('close', () => {
      form.removeEventListener('submit', onSubmit);
      if (dialog.returnValue !== 'done') resolve(false);
    }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

let fieldIds = 0;

/** A labelled input: field('Name', h('input', {...})); the label names it alone. */
export function field(text, input, cls) {
  if (!input.id) { fieldIds += 1; input.id = `field-${fieldIds}`; }
  return h('span', { class: `field ${cls || ''}` }, h('label', { for: input.id }, text), input);
}

/** Starts a browser download of `blob` (or of a same-origin URL) as `name`. */
export function saveAs(blobOrUrl, name) {
  const url = typeof blobOrUrl === 'string' ? blobOrUrl : URL.createObjectURL(blobOrUrl);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  if (typeof blobOrUrl !== 'string') setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
