/** A TCP relay to a real server that a test can cut and block, to drop connections on purpose. */
import { createServer, connect, type Socket } from "node:net";

export interface Relay {
  url: string;
  /** Closes every relayed connection now. */
  cut(): void;
  /** New connections are closed at once until {@link unblock}. */
  block(): void;
  unblock(): void;
  /** Connections accepted (and relayed) so far. */
  accepted(): number;
  close(): Promise<void>;
}

export async function startRelay(target: string): Promise<Relay> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let blocked = false;
  let accepted = 0;
  const server = createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    accepted++;
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  if (!addr || typeof addr === "string") throw new Error("no address");
  return {
    url: `http://127.0.0.1:${addr.port}`,
    cut() {
      for (const s of sockets) s.destroy();
    },
    block() {
      blocked = true;
    },
    unblock() {
      blocked = false;
    },
    accepted: () => accepted,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
