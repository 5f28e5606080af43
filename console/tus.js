// Resumable uploads through the server's tus endpoint (tus 1.0.0 core + creation +
// termination; docs/API.md "Transfers"). The upload URL of each file is kept in sessionStorage
// under the file's identity, so a dropped network, a failed chunk or a reloaded tab resumes at
// the server's offset (HEAD) instead of starting again.

import { request, vol, ApiError } from './api.js';

const CHUNK = 8 * 1024 * 1024;
const TUS = { 'Tus-Resumable': '1.0.0' };

function b64(text) {
  const utf8 = new TextEncoder().encode(text);
  let s = '';
  for (const b of utf8) s += String.fromCharCode(b);
  return btoa(s);
}

function fingerprint(volume, path, file) {
  return `nullspace.tus:${volume}:${path}:${file.size}:${file.lastModified}`;
}

/** Where an unfinished upload of this file stands on the server (null: start afresh). */
async function resumeOffset(location, size) {
  try {
    const res = await request('HEAD', location, { headers: TUS, raw: true });
    const offset = Number(res.headers.get('Upload-Offset'));
    const length = Number(res.headers.get('Upload-Length'));
    return length === size && offset <= size ? offset : null;
  } catch (e) {
    if (e instanceof ApiError && [404, 410].includes(e.status)) return null;
    throw e;
  }
}

/**
 * Uploads `file` to `path` of `volume`; `progress(sent, total)` is called as chunks land.
 * Resolves when the file is published (an empty file is, at creation). Retries a failed chunk (network or retryable error)
 * from the server's offset, a few times, before giving up.
 */
export async function upload(volume, path, file, progress = () => {}, { signal } = {}) {
  const fp = fingerprint(volume, path, file);
  let location = sessionStorage.getItem(fp);
  let offset = location ? await resumeOffset(location, file.size) : null;
  if (offset === null) {
    const res = await request('POST', `${vol(volume)}/uploads`, {
      raw: true,
      signal,
      headers: { ...TUS, 'Upload-Length': String(file.size), 'Upload-Metadata': `path ${b64(path)}` },
    });
    location = new URL(res.headers.get('Location'), window.location.origin).pathname;
    sessionStorage.setItem(fp, location);
    offset = Number(res.headers.get('Upload-Offset') || 0);
  }
  progress(offset, file.size);
  let failures = 0;
  while (offset < file.size) {
    const end = Math.min(offset + CHUNK, file.size);
    try {
      const res = await request('PATCH', location, {
        raw: true,
        signal,
        headers: { ...TUS, 'Upload-Offset': String(offset), 'Content-Type': 'application/offset+octet-stream' },
        body: file.slice(offset, end),
      });
      offset = Number(res.headers.get('Upload-Offset'));
      failures = 0;
    } catch (e) {
      if (signal && signal.aborted) throw e;
      const retry = !(e instanceof ApiError) || e.retryable || e.status === 409;
      failures += 1;
      if (!retry || failures > 5) throw e;
      await new Promise((r) => setTimeout(r, 250 * 2 ** failures));
      const at = await resumeOffset(location, file.size);
      if (at === null) throw e;
      offset = at;
    }
    progress(offset, file.size);
  }
  sessionStorage.removeItem(fp);
}
