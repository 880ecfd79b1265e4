/**
 * A loopback TCP proxy that makes a local registry look remote, for the bench and for tests: every byte
 * crossing it waits half the round-trip time each way, every connection has its own bandwidth in each
 * direction, and a new connection pays one round trip (the TCP handshake) before its first byte arrives.
 * It knows nothing of HTTP, so keep-alive, chunked uploads and redirects pass as they are, and every client
 * (ocify and the peers alike) pays for each connection it opens and each round trip it waits for.
 * Not modelled: TCP slow start, loss, a bandwidth shared between connections.
 */
import { type AddressInfo, connect, createServer, type Socket } from "node:net";

/** How the proxy shapes each connection. */
export interface ShapingOptions {
  /** Added round-trip time in milliseconds (half of it each way). */
  rttMs: number;
  /** Bandwidth of each connection in each direction, in bytes per second (0: unlimited). */
  bytesPerSecond: number;
  /**
   * Hears the request lines clients send (`connection method target`), for finding where round trips go.
   * Read from the start of each chunk a client sends, so a body that holds such a line may be heard too.
   */
  onRequest?: (connection: number, method: string, target: string) => void;
}

/**
 * One direction of one connection: a link of `bytesPerSecond` with a propagation delay. A chunk that
 * arrives at `now` leaves when the link is free and its bytes are serialised, and arrives one-way delay
 * later. `busyUntil` starts at `opensAt`: nothing leaves before the connection is open.
 */
export class ShapedLink {
  #busyUntil: number;
  readonly #oneWayMs: number;
  readonly #msPerByte: number;

  /** A link of the given shape that opens at `opensAt` (milliseconds, the caller's clock). */
  constructor(options: ShapingOptions, opensAt: number) {
    this.#busyUntil = opensAt;
    this.#oneWayMs = options.rttMs / 2;
    this.#msPerByte = options.bytesPerSecond > 0 ? 1000 / options.bytesPerSecond : 0;
  }

  /** When a chunk of `bytes` that reaches the link at `now` arrives at the other end. */
  schedule(bytes: number, now: number): number {
    const departs = Math.max(now, this.#busyUntil) + bytes * this.#msPerByte;
    this.#busyUntil = departs;
    return departs + this.#oneWayMs;
  }
}

/** Counters of what crossed a proxy. */
export interface ShapingStats {
  /** Connections accepted. */
  connections: number;
  /** Bytes from clients to the registry. */
  bytesUp: number;
  /** Bytes from the registry to clients. */
  bytesDown: number;
}

/** A running shaping proxy. */
export interface ShapingProxy {
  /** `127.0.0.1:PORT`, to use in image references in place of the registry's. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  stats: ShapingStats;
  stop(): Promise<void>;
}

const now = (): number => performance.now();
const requestLine = /^(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP\/1\.[01]\r\n/;

/**
 * Pipe `from` into `to` through a link: each chunk is held until its arrival time, and `from` is paused
 * while more than `highWater` bytes are held (the sender's window is full). `count` sees every byte.
 */
function shape(from: Socket, to: Socket, link: ShapedLink, highWater: number, count: (bytes: number, chunk: Buffer) => void): void {
  const queue: { chunk: Buffer; at: number }[] = [];
  let held = 0;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;
  const deliver = (): void => {
    timer = undefined;
    const t = now();
    while (queue.length > 0 && (queue[0] as { at: number }).at <= t) {
      const { chunk } = queue.shift() as { chunk: Buffer };
      held -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    if (held <= highWater / 2 && from.isPaused()) from.resume();
    if (queue.length > 0) arm();
    else if (ended && !to.destroyed) to.end();
  };
  const arm = (): void => {
    if (timer !== undefined || queue.length === 0) return;
    timer = setTimeout(deliver, Math.max(0, (queue[0] as { at: number }).at - now()));
  };
  from.on("data", (chunk: Buffer) => {
    count(chunk.length, chunk);
    queue.push({ chunk, at: link.schedule(chunk.length, now()) });
    held += chunk.length;
    if (held > highWater) from.pause();
    arm();
  });
  from.on("end", () => {
    ended = true;
    if (queue.length === 0 && !to.destroyed) to.end();
  });
  to.on("close", () => {
    if (timer !== undefined) clearTimeout(timer);
    queue.length = 0;
  });
}

/**
 * Start a proxy on a free loopback port in front of `target` (`127.0.0.1:PORT`, loopback only). Each
 * accepted connection opens its own connection to the target; both are closed together.
 */
export async function startShapingProxy(target: string, options: ShapingOptions): Promise<ShapingProxy> {
  const colon = target.lastIndexOf(":");
  const targetHost = target.slice(0, colon);
  const targetPort = Number(target.slice(colon + 1));
  if (!(targetHost.startsWith("127.") || targetHost === "localhost") || !Number.isInteger(targetPort))
    throw new Error(`shaping proxy: ${target} is not a loopback host:port`);
  const stats: ShapingStats = { connections: 0, bytesUp: 0, bytesDown: 0 };
  const sockets = new Set<Socket>();
  // Enough held bytes for the link to stay busy through one round trip, with room for socket-sized chunks.
  const highWater = Math.max(1 << 20, (options.bytesPerSecond * options.rttMs) / 1000 + (256 << 10));
  // Half-open sockets: a client's end is passed on only once what it sent before has been delivered.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const connection = ++stats.connections;
    const opened = now();
    const upstream = connect({ port: targetPort, host: targetHost, allowHalfOpen: true });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.setNoDelay(true);
      socket.on("close", () => sockets.delete(socket));
    }
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    // The handshake: the client's first byte reaches the registry a round trip and a half after its connect.
    shape(client, upstream, new ShapedLink(options, opened + options.rttMs), highWater, (n, chunk) => {
      stats.bytesUp += n;
      const line = options.onRequest && requestLine.exec(chunk.subarray(0, 2048).toString("latin1"));
      if (line) options.onRequest?.(connection, line[1] as string, line[2] as string);
    });
    shape(upstream, client, new ShapedLink(options, opened), highWater, (n) => {
      stats.bytesDown += n;
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    stats,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
