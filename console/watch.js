// A live change feed from GET /v1/volumes/{name}/watch. EventSource cannot send an
// Authorization header, so the stream is read with fetch and parsed here (the SSE format:
// "id:", "event:", "data:" fields, a blank line ends an event). After a drop it reconnects
// with the last event id, so nothing retained is missed; a "gap" event says some were.

import { request, vol } from './api.js';
import { lines } from './api.js';

/**
 * Watches `path` of `volume` until `signal` aborts: `onEvent(kind, data)` for each event
 * (kind "change", "gap", "overflow"), `onState(text)` for connection changes.
 */
export async function watch(volume, path, onEvent, onState, signal) {
  let lastId = null;
  let failures = 0;
  while (!signal.aborted) {
    try {
      const res = await request('GET', `${vol(volume)}/watch`, {
        raw: true,
        signal,
        query: { path, recursive: true },
        headers: lastId === null ? {} : { 'Last-Event-ID': String(lastId) },
      });
      onState('live');
      failures = 0;
      let ev = { event: 'message', data: [] };
      for await (const line of lines(res)) {
        if (line === '') {
          if (ev.data.length) {
            let data = ev.data.join('\n');
            try { data = JSON.parse(data); } catch { /* shown as text */ }
            if (ev.id !== undefined) lastId = ev.id;
            onEvent(ev.event, data);
          }
          ev = { event: 'message', data: [] };
        } else if (line.startsWith(':')) {
          // a keep-alive comment
        } else {
          const i = line.indexOf(':');
          const name = i < 0 ? line : line.slice(0, i);
          const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (name === 'data') ev.data.push(value);
          else if (name === 'event') ev.event = value;
          else if (name === 'id') ev.id = value;
        }
      }
      onState('reconnecting');
    } catch (e) {
      if (signal.aborted) return;
      failures += 1;
      onState(`disconnected (${e.code || e.message}); retrying`);
      if (e.status && e.status < 500 && e.status !== 429) { onState(`stopped: ${e.code}: ${e.message}`); return; }
    }
    await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** failures, 15_000)));
  }
}
