/**
 * A seeded fault-injecting HTTP proxy for tests and the reliability figures: a Node server on loopback
 * between ocify and the real docker-registry. A chosen share of the requests gets one fault: the
 * connection reset while the request body is still arriving or while the answer's body is being sent, the
 * answer's body cut short, a 500/502/503 answer, a 429 with `Retry-After`, or a stall. Like nginx (and so
 * Harbor) by default, a request body is received whole before it is forwarded, so a request cut mid-body
 * never reaches the registry; `bufferRequests: false` forwards bytes as they arrive instead.
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { random } from "../layer/fixtures.test.js";

/** What the proxy can do to a request. */
export type FaultKind =
  | "reset-upload"
  | "reset-download"
  | "truncate"
  | "status-500"
  | "status-502"
  | "status-503"
  | "status-429"
  | "stall";

/** Every fault kind, in a fixed order (the seeded choice indexes it). */
export const faultKinds: readonly FaultKind[] = [
  "reset-upload",
  "reset-download",
  "truncate",
  "status-500",
  "status-502",
  "status-503",
  "status-429",
  "stall",
];

/** Options of a fault proxy. */
export interface FaultProxyOptions {
  /** Seeds the choice of faulted requests, their kind and where a body is cut. */
  seed: number;
  /** Share of requests (0…1) that get a fault. */
  rate: number;
  /** The kinds to choose from (default: all). */
  kinds?: readonly FaultKind[];
  /** Which requests may get a fault (default: every one). */
  eligible?(method: string, url: string): boolean;
  /** Receive a request body whole before forwarding it, as nginx does (default true). */
  bufferRequests?: boolean;
  /** How long a stalled request hangs before its connection is dropped (default 3000 ms). */
  stallMs?: number;
  /** The `Retry-After` of a 429, in seconds (default 1). */
  retryAfterSeconds?: number;
}

/** One request as the proxy saw it. */
export interface FaultRecord {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  fault?: FaultKind;
  /** Request body bytes received from the client. */
  receivedBytes: number;
  /** Request body bytes passed on to the registry. */
  forwardedBytes: number;
  /** The status the client got, when it got one. */
  status?: number;
}

/** A running fault proxy. */
export interface FaultProxy {
  /** `127.0.0.1:PORT`: the registry host to give ocify. */
  host: string;
  requests: FaultRecord[];
  /** Faults injected so far, by kind. */
  faults(): Record<FaultKind, number>;
  /** Request body bytes that reached the registry (what an upload really cost). */
  forwardedBytes(): number;
  /** Change the share of faulted requests from now on. */
  setRate(rate: number): void;
  /**
   * Once this many request body bytes have reached the registry, hold every new request unanswered (a
   * client frozen at a known byte count, to be killed there); undefined stops holding.
   */
  holdAfter(bytes: number | undefined): void;
  /** Requests held so far. */
  held(): number;
  stop(): Promise<void>;
}

/** The seeded generator the fixtures use (mulberry32): enough to make a fault sequence repeatable. */
export const seededRandom = random;

function hasBody(req: IncomingMessage): boolean {
  return Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined;
}

function applicable(kind: FaultKind, req: IncomingMessage): boolean {
  if (kind === "reset-upload") return hasBody(req);
  if (kind === "reset-download" || kind === "truncate") return req.method === "GET";
  return true;
}

/** Drop a connection with a reset (RST), not a clean close. */
function reset(socket: Socket | null | undefined): void {
  if (!socket) return;
  if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
  else socket.destroy();
}

/** Start a fault proxy in front of `target` (`127.0.0.1:PORT`); the Host header is kept, so upload locations point back here. */
export async function startFaultProxy(target: string, options: FaultProxyOptions): Promise<FaultProxy> {
  const [targetHost, targetPort] = target.split(":") as [string, string];
  const random = seededRandom(options.seed);
  let rate = options.rate;
  const kinds = options.kinds ?? faultKinds;
  const buffer = options.bufferRequests ?? true;
  const stallMs = options.stallMs ?? 3000;
  const spoolDir = mkdtempSync(join(tmpdir(), "ocify-fault-proxy-"));
  const requests: FaultRecord[] = [];
  const counts = Object.fromEntries(faultKinds.map((k) => [k, 0])) as Record<FaultKind, number>;
  const timers = new Set<NodeJS.Timeout>();
  let spools = 0;
  let holdAfter: number | undefined;
  let held = 0;
  const forwardedTotal = (): number => requests.reduce((sum, r) => sum + r.forwardedBytes, 0);

  const choose = (req: IncomingMessage): { fault?: FaultKind; fraction: number } => {
    // Three draws per request whatever happens, so that one request's fate does not shift the next one's.
    const [hit, pick, fraction] = [random(), random(), random()];
    if (hit >= rate || (options.eligible && !options.eligible(req.method ?? "GET", req.url ?? "/"))) return { fraction };
    const possible = kinds.filter((k) => applicable(k, req));
    const fault = possible[Math.floor(pick * possible.length)];
    return fault === undefined ? { fraction } : { fault, fraction };
  };

  const answer = (res: ServerResponse, record: FaultRecord, status: number, headers: Record<string, string> = {}): void => {
    record.status = status;
    const body = JSON.stringify({ errors: [{ code: status === 429 ? "TOOMANYREQUESTS" : "UNAVAILABLE", message: "injected fault" }] });
    res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  };

  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  /** Forward the request (its body from `body`, or streamed from req) and relay or damage the answer. */
  const forward = (req: IncomingMessage, res: ServerResponse, record: FaultRecord, fault: FaultKind | undefined, fraction: number) => {
    const upstream = request(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: req.headers },
      (up) => {
        const length = Number(up.headers["content-length"] ?? Number.NaN);
        if ((fault === "reset-download" || fault === "truncate") && !(length > 1)) {
          // Nothing to cut: drop the answer whole.
          up.resume();
          reset(res.socket);
          return;
        }
        record.status = up.statusCode ?? 0;
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (fault !== "reset-download" && fault !== "truncate") {
          up.pipe(res);
          return;
        }
        const cut = Math.max(1, Math.floor(length * fraction * 0.9));
        let sent = 0;
        up.on("data", (chunk: Buffer) => {
          if (sent >= cut) return;
          const part = chunk.subarray(0, cut - sent);
          sent += part.length;
          res.write(part);
          if (sent >= cut) {
            up.destroy();
            if (fault === "reset-download") reset(res.socket);
            else res.socket?.end();
          }
        });
      },
    );
    upstream.on("error", () => reset(res.socket));
    return upstream;
  };

  const server = createServer((req, res) => {
    const record: FaultRecord = {
      method: req.method ?? "GET",
      url: req.url ?? "/",
      headers: { ...req.headers },
      receivedBytes: 0,
      forwardedBytes: 0,
    };
    if (holdAfter !== undefined && forwardedTotal() >= holdAfter) {
      held++;
      req.resume(); // read and never answered, nor counted
      return;
    }
    requests.push(record);
    const { fault, fraction } = choose(req);
    if (fault) {
      record.fault = fault;
      counts[fault]++;
    }
    req.on("data", (chunk: Buffer) => {
      record.receivedBytes += chunk.length;
    });
    handle(req, res, record, fault, fraction).catch(() => reset(res.socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse, record: FaultRecord, fault: FaultKind | undefined, fraction: number) {
    if (fault === "reset-upload") {
      const declared = Number(req.headers["content-length"] ?? 4 << 20);
      const cut = Math.max(1, Math.floor(declared * fraction * 0.9));
      const upstream = buffer ? undefined : forward(req, res, record, undefined, fraction);
      req.on("data", (chunk: Buffer) => {
        if (upstream && record.forwardedBytes < cut) {
          const part = chunk.subarray(0, cut - record.forwardedBytes);
          record.forwardedBytes += part.length;
          upstream.write(part);
        }
        if (record.receivedBytes >= cut) {
          upstream?.destroy();
          reset(req.socket);
        }
      });
      // A body shorter than the cut: the connection drops at its end instead.
      req.on("end", () => {
        upstream?.destroy();
        reset(req.socket);
      });
      return;
    }
    if (fault?.startsWith("status-") || fault === "stall") {
      // The body is read and dropped, as a proxy answering for a failed upstream does.
      req.resume();
      await new Promise<void>((resolve) => req.once("end", resolve).once("close", resolve));
      if (fault === "stall") {
        later(stallMs, () => reset(res.socket));
        return;
      }
      const status = Number(fault.slice("status-".length));
      answer(res, record, status, status === 429 ? { "retry-after": String(options.retryAfterSeconds ?? 1) } : {});
      return;
    }
    if (!buffer || !hasBody(req)) {
      const upstream = forward(req, res, record, fault, fraction);
      req.on("data", (chunk: Buffer) => {
        record.forwardedBytes += chunk.length;
      });
      req.pipe(upstream);
      return;
    }
    // nginx's proxy_request_buffering: the whole body first (spooled to disk), then one request upstream.
    const spool = join(spoolDir, `body-${spools++}`);
    try {
      await pipeline(req, createWriteStream(spool));
      const upstream = forward(req, res, record, fault, fraction);
      const body = createReadStream(spool);
      body.on("data", (chunk) => {
        record.forwardedBytes += chunk.length;
      });
      await pipeline(body, upstream);
    } finally {
      rmSync(spool, { force: true });
    }
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${address.port}`,
    requests,
    faults: () => ({ ...counts }),
    forwardedBytes: forwardedTotal,
    setRate(next) {
      rate = next;
    },
    holdAfter(bytes) {
      holdAfter = bytes;
    },
    held: () => held,
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(spoolDir, { recursive: true, force: true });
    },
  };
}
