/**
 * A forward HTTP proxy on loopback for tests: CONNECT tunnels (HTTPS) and absolute-URI requests (plain
 * HTTP), each logged; optionally asking for Proxy-Authorization. It only ever connects to loopback.
 */
import { createServer, type IncomingMessage, request } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";

/** One request the proxy saw: `CONNECT 127.0.0.1:PORT` or `GET http://…`. */
export interface ProxyLogEntry {
  method: string;
  target: string;
  /** Whether an Authorization header (the registry's credentials) passed through in the clear. */
  authorization: boolean;
}

/** A running test proxy. */
export interface TestHttpProxy {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  log: ProxyLogEntry[];
  stop(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "[::1]" || host === "::1";
}

/** Start the proxy; with `credentials` (`user:pass`) it answers 407 without them. */
export async function startHttpProxy(options: { credentials?: string } = {}): Promise<TestHttpProxy> {
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();
  const allowed = (req: IncomingMessage): boolean => {
    if (!options.credentials) return true;
    return req.headers["proxy-authorization"] === `Basic ${Buffer.from(options.credentials).toString("base64")}`;
  };
  const server = createServer((req, res) => {
    const target = req.url ?? "";
    log.push({ method: req.method ?? "", target, authorization: req.headers.authorization !== undefined });
    if (!allowed(req)) {
      res.writeHead(407, { "proxy-authenticate": 'Basic realm="test proxy"' }).end();
      return;
    }
    const url = new URL(target);
    if (!isLoopback(url.hostname)) {
      res.writeHead(403).end();
      return;
    }
    const headers = { ...req.headers };
    delete headers["proxy-authorization"];
    const upstream = request(
      { host: url.hostname, port: url.port, method: req.method, path: `${url.pathname}${url.search}`, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? "";
    log.push({ method: "CONNECT", target, authorization: false });
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    if (!allowed(req)) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test proxy"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const colon = target.lastIndexOf(":");
    const host = target.slice(0, colon).replace(/^\[|\]$/g, "");
    if (!isLoopback(host)) {
      client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const upstream = connect(Number(target.slice(colon + 1)), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    async stop() {
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
