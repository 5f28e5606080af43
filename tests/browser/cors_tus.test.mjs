// Browsers as clients (issue 15): a page served on another origin than the API uploads 20 MiB
// with tus-js-client (PATCH sent as POST + X-HTTP-Method-Override), is interrupted, resumes
// from the offset the server kept, and the sha256 matches; the page also fetches a signed URL
// and reads its exposed ETag. A page on an origin `--cors-origin` does not name is refused.
// Headless Chromium (Debian's chromium) driven by playwright-core; the real server binary.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { startServer } from "./server.mjs";

const require = createRequire(import.meta.url);
const TUS_BUNDLE = readFileSync(require.resolve("tus-js-client/dist/tus.min.js"));
const SIZE = 20 << 20;
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

/** A page server on its own origin: `/` is an empty page that loads tus-js-client. */
async function startPageServer() {
  const server = createServer((req, res) => {
    if (req.url === "/tus.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(TUS_BUNDLE);
    } else {
      res.writeHead(200, { "content-type": "text/html" });
      res.end('<!doctype html><title>page</title><script src="/tus.min.js"></script>');
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, close: () => new Promise((r) => server.close(r)) };
}

let allowedPage, otherPage, api, browser;

before(async () => {
  allowedPage = await startPageServer();
  otherPage = await startPageServer();
  api = await startServer({ args: ["--cors-origin", allowedPage.origin, "--volume-backend", "directory"] });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const r = await fetch(`${api.url}/v1/volumes`, {
    method: "POST",
    headers: { authorization: `Bearer ${api.key}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "web" }),
  });
  assert.equal(r.status, 201, await r.text());
});

after(async () => {
  await browser?.close();
  await api?.stop();
  await allowedPage?.close();
  await otherPage?.close();
});

async function openPage(origin) {
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => typeof window.tus !== "undefined");
  return page;
}

/** The upload's offset as the server keeps it (tus HEAD), from outside the browser. */
async function storedOffset(uploadUrl) {
  const r = await fetch(new URL(uploadUrl, api.url), {
    method: "HEAD",
    headers: { authorization: `Bearer ${api.key}`, "tus-resumable": "1.0.0" },
  });
  assert.equal(r.status, 200);
  return Number(r.headers.get("upload-offset"));
}

test("a page on an allowed origin uploads 20 MiB with tus-js-client, is interrupted, resumes, and the sha256 matches", async () => {
  const page = await openPage(allowedPage.origin);
  const args = { api: api.url, key: api.key, size: SIZE };

  // The first attempt stops once 5 MiB are sent, as a closed tab or a lost network would.
  const first = await page.evaluate(async ({ api, key, size }) => {
    const data = new Uint8Array(size);
    let x = 2463534242;
    for (let i = 0; i < size; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      data[i] = x & 255;
    }
    window.payload = new Blob([data]);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
    window.options = {
      endpoint: `${api}/v1/volumes/web/uploads`,
      headers: { Authorization: `Bearer ${key}` },
      metadata: { path: "/from-browser.bin" },
      chunkSize: 1 << 20,
      overridePatchMethod: true,
      retryDelays: null,
      storeFingerprintForResuming: false,
    };
    const url = await new Promise((resolve, reject) => {
      let stopped = false;
      const upload = new tus.Upload(window.payload, {
        ...window.options,
        onProgress(sent) {
          if (sent >= 5 << 20 && !stopped) {
            stopped = true;
            upload.abort().then(() => resolve(upload.url), reject);
          }
        },
        onError: reject,
        onSuccess: () => reject(new Error("the upload finished before it was interrupted")),
      });
      upload.start();
    });
    return { url, digest: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("") };
  }, args);
  assert.ok(first.url, "the upload got a Location (exposed to the page)");

  const kept = await storedOffset(first.url);
  assert.ok(kept > 0 && kept < SIZE, `the server kept part of the upload: ${kept}`);

  // The second attempt resumes the same upload; had it started over at offset 0 the server
  // would have refused it (409, offset mismatch).
  const second = await page.evaluate(async (url) => new Promise((resolve, reject) => {
    let firstProgress = null;
    const upload = new tus.Upload(window.payload, {
      ...window.options,
      uploadUrl: url,
      onProgress(sent) { if (firstProgress === null) firstProgress = sent; },
      onError: reject,
      onSuccess: () => resolve({ url: upload.url, firstProgress }),
    });
    upload.start();
  }), first.url);
  assert.equal(second.url, first.url, "the same upload was resumed");
  assert.ok(second.firstProgress >= kept, `resumed at ${second.firstProgress}, kept ${kept}`);

  const r = await fetch(`${api.url}/v1/volumes/web/files/content?path=%2Ffrom-browser.bin`, {
    headers: { authorization: `Bearer ${api.key}` },
  });
  assert.equal(r.status, 200);
  const body = Buffer.from(await r.arrayBuffer());
  assert.equal(body.length, SIZE);
  assert.equal(createHash("sha256").update(body).digest("hex"), first.digest);

  // A signed URL fetched from the page: no key, the bytes and the exposed ETag.
  const signed = await fetch(`${api.url}/v1/volumes/web/files/url`, {
    method: "POST",
    headers: { authorization: `Bearer ${api.key}`, "content-type": "application/json" },
    body: JSON.stringify({ path: "/from-browser.bin", expires_in: 600 }),
  }).then((r) => r.json());
  const fetched = await page.evaluate(async (url) => {
    const r = await fetch(url);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await r.arrayBuffer()));
    return {
      status: r.status,
      etag: r.headers.get("etag"),
      digest: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    };
  }, signed.url);
  assert.equal(fetched.status, 200);
  assert.equal(fetched.digest, first.digest);
  assert.equal(fetched.etag, r.headers.get("etag"), "the page reads the ETag");
  await page.close();
});

test("a page on an origin --cors-origin does not name cannot read answers", async () => {
  const page = await openPage(otherPage.origin);
  const outcome = await page.evaluate(async (api) => {
    try {
      const r = await fetch(`${api}/v1/health`);
      return `answer ${r.status}`;
    } catch (e) {
      return `refused: ${e.name}`;
    }
  }, api.url);
  assert.equal(outcome, "refused: TypeError");
  await page.close();
});
