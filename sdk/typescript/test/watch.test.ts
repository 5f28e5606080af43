// volume.files.watch: an async iterator of changes that resumes after a dropped connection.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client, NotFoundError, Volume, type Watch, type WatchEvent } from "nullspace";

import { startRelay, type Relay } from "./proxy.js";
import { startServer, uniqueName, type TestServer } from "./server.js";

let server: TestServer;
let client: Client;
before(async () => {
  server = await startServer();
  client = new Client({ apiUrl: server.url, apiKey: server.key, retryBackoff: 10 });
});
after(async () => {
  await server?.stop();
});

async function take(events: AsyncIterator<WatchEvent>, n: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  while (out.length < n) {
    const r = await events.next();
    assert.ok(!r.done, "the watch ended early");
    out.push(r.value);
  }
  return out;
}

const brief = (e: WatchEvent): string => `${e.type} ${e.path}${e.old_path ? " from " + e.old_path : ""}${e.is_dir ? "/" : ""}`;

test("changes arrive in order with their kinds; close ends the iteration", { timeout: 60_000 }, async () => {
  const v = await Volume.create(uniqueName(), { client });
  const w = await v.files.watch("/");
  const events = w[Symbol.asyncIterator]();
  await v.files.mkdir("/d");
  await v.files.write("/d/a.txt", "a");
  await v.files.write("/d/a.txt", "b");
  await v.files.move("/d/a.txt", "/d/b.txt");
  await v.files.remove("/d/b.txt");
  const got = await take(events, 5);
  assert.deepEqual(got.map(brief), ["created /d/", "created /d/a.txt", "modified /d/a.txt", "moved /d/b.txt from /d/a.txt", "deleted /d/b.txt"]);
  assert.ok(got.every((e, i) => i === 0 || e.id > got[i - 1]!.id));
  assert.equal(w.lastEventId, got[4]!.id);
  w.close();
  assert.deepEqual(await events.next(), { done: true, value: undefined });
  assert.equal(w.closed, true);

  // lastEventId replays what came after an id the server still has.
  const again = await v.files.watch("/", { lastEventId: got[2]!.id });
  const replay = await take(again[Symbol.asyncIterator](), 2);
  assert.deepEqual(replay.map((e) => e.id), [got[3]!.id, got[4]!.id]);
  again.close();
});

test("a missing path is NotFoundError; recursive: false sees only direct entries", { timeout: 60_000 }, async () => {
  const v = await Volume.create(uniqueName(), { client });
  await assert.rejects(v.files.watch("/nope"), NotFoundError);
  await v.files.mkdir("/top/sub");
  const w = await v.files.watch("/top", { recursive: false });
  await v.files.write("/top/sub/deep.txt", "x");
  await v.files.write("/top/direct.txt", "x");
  const [ev] = await take(w[Symbol.asyncIterator](), 1);
  assert.equal(ev!.path, "/top/direct.txt");
  w.close();
});

test("after a dropped connection the watch resumes from the last event id: nothing is lost", { timeout: 60_000 }, async () => {
  const relay: Relay = await startRelay(server.url);
  let w: Watch | undefined;
  try {
    const v = await Volume.create(uniqueName(), { client });
    const viaRelay = new Volume(v.name, v.id, { client: new Client({ apiUrl: relay.url, apiKey: server.key, retryBackoff: 10 }) });
    w = await viaRelay.files.watch("/");
    const events = w[Symbol.asyncIterator]();
    await v.files.write("/one", "1");
    const [one] = await take(events, 1);
    assert.equal(brief(one!), "created /one");

    // Drop the connection and keep the watch out while changes happen.
    relay.block();
    relay.cut();
    await v.files.write("/two", "2");
    await v.files.write("/three", "3");
    await v.files.remove("/one");
    relay.unblock();

    const rest = await take(events, 3);
    assert.deepEqual(rest.map(brief), ["created /two", "created /three", "deleted /one"]);
    assert.ok(rest.every((e) => e.type !== "gap"));
    assert.ok(rest[0]!.id > one!.id);
    assert.equal(w.connections, 2, "one reconnect");
  } finally {
    w?.close();
    await relay.close();
  }
});
