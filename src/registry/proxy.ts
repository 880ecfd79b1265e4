/**
 * HTTP proxies as curl reads them: `https_proxy`/`HTTPS_PROXY` for HTTPS URLs, `http_proxy`/`HTTP_PROXY`
 * for plain ones, `all_proxy`/`ALL_PROXY` for both (the lower-case name first), and only `no_proxy`/
 * `NO_PROXY` exempts a host (loopback included). HTTPS goes through a CONNECT tunnel; plain HTTP is sent
 * to the proxy as absolute-URI requests. A per-registry setting (settings.ts) overrides the environment.
 */
import { request as httpRequest } from "node:http";
import { type AgentOptions, Agent as HttpsAgent } from "node:https";
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { InputError } from "../errors.js";

function firstSet(env: NodeJS.ProcessEnv, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value.trim() !== "") return value.trim();
  }
  return undefined;
}

/** Parse a proxy setting (`http://user:pass@host:port`, or `host:port` meaning http://); InputError when unusable. */
export function parseProxy(value: string, where: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    throw new InputError(`${where}: "${value}" is not a proxy URL`, { hint: "write http://HOST:PORT" });
  }
  if (url.protocol !== "http:") {
    throw new InputError(`${where}: ${url.protocol.slice(0, -1)} proxies are not supported`, { hint: "use an http:// proxy" });
  }
  return url;
}

/** Whether `NO_PROXY` exempts a host: `*`, a name or domain suffix (`.example.com`, `example.com`), an IP or CIDR, optionally `:port`. */
export function noProxyMatches(hostname: string, port: string, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = hostname
    .replace(/^\[|\]$/g, "")
    .toLowerCase()
    .replace(/\.$/, "");
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    if (entry === "*") return true;
    let entryPort: string | undefined;
    const portMatch = /^(.*[^:]):(\d+)$/.exec(entry);
    if (portMatch && !entry.startsWith("[") && isIP(entry) !== 6) {
      entry = portMatch[1] as string;
      entryPort = portMatch[2];
    }
    entry = entry.replace(/^\[|\]$/g, "");
    if (entryPort !== undefined && entryPort !== port) continue;
    if (entry.includes("/") && isIP(host) === 4 && inCidr(host, entry)) return true;
    const name = entry.replace(/^\*?\./, "");
    if (host === name || host.endsWith(`.${name}`)) return true;
  }
  return false;
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const bits = Number(bitsText);
  if (!base || isIP(base) !== 4 || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const toNumber = (text: string) => text.split(".").reduce((n, part) => n * 256 + Number(part), 0);
  const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
  return (toNumber(ip) & mask) >>> 0 === (toNumber(base) & mask) >>> 0;
}

/** The proxy the environment names for a URL, or undefined to connect directly. */
export function environmentProxy(url: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  const secure = url.protocol === "https:";
  const names = secure ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy", "HTTP_PROXY"];
  const value = firstSet(env, [...names, "all_proxy", "ALL_PROXY"]);
  if (!value) return undefined;
  const port = url.port || (secure ? "443" : "80");
  if (noProxyMatches(url.hostname, port, firstSet(env, ["no_proxy", "NO_PROXY"]))) return undefined;
  return parseProxy(value, secure ? "HTTPS_PROXY" : "HTTP_PROXY");
}

/** The `Proxy-Authorization` header for a proxy URL with credentials. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username) return undefined;
  const user = decodeURIComponent(proxy.username);
  const password = decodeURIComponent(proxy.password);
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** A failure of the proxy itself, marked so that messages name the proxy rather than the registry. */
export interface ProxyFailure extends Error {
  code: string;
  /** The proxy's `host:port`. */
  proxy: string;
}

/** Mark an error as the proxy's. */
export function proxyFailure(proxy: URL, error: Error & { code?: string }, code = error.code ?? "PROXY_FAILED"): ProxyFailure {
  return Object.assign(error, { code, proxy: proxy.host });
}

/** How long the proxy may take to open a tunnel. */
const tunnelTimeoutMs = 10_000;

/** An HTTPS agent whose connections are CONNECT tunnels through an HTTP proxy, then TLS to the registry. */
export class TunnelingAgent extends HttpsAgent {
  constructor(
    private readonly proxy: URL,
    options: AgentOptions,
  ) {
    super(options);
  }

  override createConnection(
    options: Parameters<HttpsAgent["createConnection"]>[0],
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const done = callback as (err: Error | null, stream?: Duplex) => void;
    const host = String(options.host ?? options.hostname ?? "").replace(/^\[|\]$/g, "");
    const target = `${isIP(host) === 6 ? `[${host}]` : host}:${options.port ?? 443}`;
    const headers: Record<string, string> = { host: target };
    const authorization = proxyAuthorization(this.proxy);
    if (authorization) headers["proxy-authorization"] = authorization;
    const connect = httpRequest({
      host: this.proxy.hostname.replace(/^\[|\]$/g, ""),
      port: Number(this.proxy.port || 80),
      method: "CONNECT",
      path: target,
      headers,
      agent: false,
    });
    const timer = setTimeout(
      () => connect.destroy(Object.assign(new Error("the proxy did not open a tunnel in time"), { code: "ETIMEDOUT" })),
      tunnelTimeoutMs,
    );
    connect.once("connect", (response, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      if (response.statusCode !== 200) {
        socket.destroy();
        const code = response.statusCode === 407 ? "PROXY_AUTH" : "PROXY_STATUS";
        done(proxyFailure(this.proxy, new Error(`the proxy answered ${response.statusCode} ${response.statusMessage ?? ""}`.trim()), code));
        return;
      }
      if (head.length) socket.unshift(head);
      const servername = isIP(host) ? undefined : host;
      done(null, tlsConnect({ ...(options as object), socket, ...(servername ? { servername } : {}) }));
    });
    connect.once("error", (error) => {
      clearTimeout(timer);
      done(proxyFailure(this.proxy, error));
    });
    connect.end();
    return undefined;
  }
}
