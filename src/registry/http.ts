/**
 * The only place ocify sends HTTP: Node's own http/https clients with keep-alive agents (loaded when the
 * first request is sent: ~10 ms, where undici took 100-160 ms of every registry command's start), TLS
 * verification except for registries the user marked insecure, redirects followed here so that the
 * Authorization header never leaves the registry's origin, retries of idempotent reads, and network
 * failures turned into one-line errors that name the host (URLs in messages have their query redacted).
 */

import type { ClientRequest, Agent as HttpAgent, IncomingHttpHeaders, IncomingMessage } from "node:http";
import type { Agent as HttpsAgent } from "node:https";
import { isIP } from "node:net";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { readBounded } from "../bounded.js";
import { OcifyError } from "../errors.js";
import { RegistryError, RegistryUnreachableError } from "./errors.js";
import { isRetryableError, parseRetryAfter, RetryBudget, retryableStatuses, retryReason, timeoutPolicy } from "./retry.js";

interface Clients {
  http: typeof import("node:http");
  https: typeof import("node:https");
  tls: typeof import("node:tls");
  proxy: typeof import("./proxy.js");
  certs: typeof import("./certs-d.js");
  settings: typeof import("./settings.js");
  plain: HttpAgent;
  verified: HttpsAgent;
  unverified: HttpsAgent;
  /** Agents for a proxy, certs.d material or the system's CAs, by what makes them differ. */
  special: Map<string, HttpsAgent>;
}

let clients: Promise<Clients> | undefined;
// Origins (`https://host:port`) whose certificate is not verified: registries listed as insecure.
const unverifiedOrigins = new Set<string>();
// Origins whose certificate did not verify against Node's CAs and NODE_EXTRA_CA_CERTS: the system's bundle is added.
const systemCaOrigins = new Set<string>();
/** Idle keep-alive sockets are closed after this long (or sooner when the server's Keep-Alive hint says so). */
const keepAliveMs = 30_000;
const agentOptions = { keepAlive: true, timeout: keepAliveMs, scheduling: "lifo" as const };

/** The default User-Agent header. */
export const defaultUserAgent = "ocify/0.1";

/**
 * The process-wide agents: plain HTTP, verified HTTPS, and unverified HTTPS for insecure registries, plus
 * one per proxy / certs.d directory / system-CA origin when those are needed. Idle sockets are kept alive
 * and unref'd by Node (they never hold the process open). Sockets per origin are not capped: concurrency
 * is bounded by `jobs` in copy.ts, and a registry-to-registry copy holds a GET and a PUT per job on one
 * origin, so a cap below 2×jobs could deadlock. The default agents pass no `ca`, so Node's default store,
 * including NODE_EXTRA_CA_CERTS read at startup, verifies certificates.
 */
function getClients(): Promise<Clients> {
  clients ??= Promise.all([
    import("node:http"),
    import("node:https"),
    import("node:tls"),
    import("./proxy.js"),
    import("./certs-d.js"),
    import("./settings.js"),
  ]).then(([http, https, tls, proxy, certs, settings]) => ({
    http,
    https,
    tls,
    proxy,
    certs,
    settings,
    plain: new http.Agent(agentOptions),
    verified: new https.Agent(agentOptions),
    unverified: new https.Agent({ ...agentOptions, rejectUnauthorized: false }),
    special: new Map(),
  }));
  return clients;
}

/** The proxy a request goes through: the registry's own setting, else the environment's (curl's rules). */
function proxyFor(clients: Clients, url: URL, registry: string): URL | undefined {
  const setting = clients.settings.registrySettings(registry).proxy;
  if (setting === "direct") return undefined;
  return setting ?? clients.proxy.environmentProxy(url);
}

/** The agent for a request: the shared ones, or one with a tunnel, certs.d material or the system's CAs. */
function agentFor(clients: Clients, url: URL, proxy: URL | undefined): HttpAgent {
  if (url.protocol !== "https:") return clients.plain;
  const verify = !unverifiedOrigins.has(url.origin);
  const host = clients.certs.hostTls(url.host);
  const system = verify && systemCaOrigins.has(url.origin);
  if (!proxy && !host && !system) return verify ? clients.verified : clients.unverified;
  const key = JSON.stringify([proxy?.href, verify, host?.dir, system]);
  let agent = clients.special.get(key);
  if (!agent) {
    const ca = host?.ca.length || system ? [...clients.certs.defaultCertificates(), ...(host?.ca ?? [])] : undefined;
    const systemPem = system ? clients.certs.systemCertificates() : undefined;
    if (ca && systemPem) ca.push(systemPem);
    // A secure context made once: `ca`, `cert` and `key` as agent options would be part of every request's pool key.
    const secureContext = clients.tls.createSecureContext({
      ...(ca ? { ca } : {}),
      ...(host?.cert ? { cert: host.cert, key: host.key } : {}),
    });
    const options = { ...agentOptions, secureContext, rejectUnauthorized: verify };
    agent = proxy ? new clients.proxy.TunnelingAgent(proxy, options) : new clients.https.Agent(options);
    clients.special.set(key, agent);
  }
  return agent;
}

/** Whether a host (with or without port) is loopback: `localhost`, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(host: string): boolean {
  const name = hostName(host).toLowerCase();
  if (name === "localhost") return true;
  if (isIP(name) === 4) return name.startsWith("127.");
  if (isIP(name) === 6) return name === "::1" || name === "0:0:0:0:0:0:0:1";
  return false;
}

/** The host part of `host[:port]` or `[v6]:port`. */
export function hostName(host: string): string {
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]"));
  const colon = host.indexOf(":");
  return colon >= 0 && host.indexOf(":", colon + 1) < 0 ? host.slice(0, colon) : host;
}

/** How a registry host may be reached. */
export interface TransportPolicy {
  /** Schemes to try, in order (HTTPS first, as Docker does). */
  schemes: readonly ("https" | "http")[];
  /** Whether an HTTPS certificate must be valid. */
  verifyTls: boolean;
}

/**
 * HTTPS with verification, except: loopback hosts may fall back to plain HTTP, and hosts listed in
 * `insecureRegistries` (HOST[:PORT]) may fall back to plain HTTP and skip certificate verification.
 */
export function transportPolicy(host: string, insecureRegistries: readonly string[] = []): TransportPolicy {
  const insecure = insecureRegistries.some(
    (entry) =>
      entry
        .replace(/^[a-z]+:\/\//i, "")
        .replace(/\/+$/, "")
        .toLowerCase() === host.toLowerCase(),
  );
  if (insecure) return { schemes: ["https", "http"], verifyTls: false };
  if (isLoopbackHost(host)) return { schemes: ["https", "http"], verifyTls: true };
  return { schemes: ["https"], verifyTls: true };
}

/** Mark an HTTPS origin as one whose certificate is not verified (call before the first request to it). */
export function allowUnverifiedTls(origin: string): void {
  unverifiedOrigins.add(new URL(origin).origin);
}

/** A URL fit for messages: the query (signatures, upload state) is replaced by `?…`. */
export function redactUrl(url: URL | string): string {
  const parsed = typeof url === "string" ? new URL(url) : url;
  return `${parsed.origin}${parsed.pathname}${parsed.search ? "?…" : ""}`;
}

/** One HTTP request. */
export interface HttpRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: URL;
  headers?: Record<string, string>;
  /** Sent as the Authorization header, but only to `authOrigin`, never after a redirect to another origin. */
  authorization?: string | undefined;
  /** The origin credentials belong to (the registry's); default `url`'s origin. */
  authOrigin?: string | undefined;
  /** A Buffer, or a stream sent with backpressure (never buffered). Streams make the request non-retryable. */
  body?: Buffer | Readable | undefined;
  signal?: AbortSignal | undefined;
  /** Follow redirects (GET and HEAD only; blob downloads go to storage this way). */
  followRedirects?: boolean;
  /** The registry host, for messages. */
  registry: string;
  userAgent?: string | undefined;
  /** Retry transient failures of idempotent reads (default true). */
  retry?: boolean;
}

/** A response; its body must be consumed or dumped. */
export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
  /** The URL that answered (after redirects). */
  url: URL;
  /** A header's value, the first when repeated. */
  header(name: string): string | undefined;
  /** A header's values, one per occurrence. */
  headerValues(name: string): string[];
}

const redirectStatuses = new Set([301, 302, 303, 307, 308]);
const maxRedirects = 10;

/**
 * Send a request, following redirects when asked. A request whose body can be sent again (none, or a
 * Buffer) is retried on what retry.ts calls transient (a reset, a timeout, 408/429/5xx), with backoff and
 * within the retry budget; a streamed body is the caller's to resend (upload.ts).
 */
export async function httpRequest(request: HttpRequest): Promise<HttpResponse> {
  const replayable = request.retry !== false && !(request.body instanceof Readable);
  const budget = new RetryBudget(`${request.method} ${redactUrl(request.url)}`, request.signal);
  for (;;) {
    let response: HttpResponse;
    try {
      response = await sendFollowing(request);
    } catch (error) {
      if (replayable && isRetryableError(error) && (await budget.next(retryReason(error)))) continue;
      throw error;
    }
    if (!replayable || !retryableStatuses.has(response.status)) return response;
    const delayMs = budget.delayFor(parseRetryAfter(response.header("retry-after")));
    if (delayMs === undefined) return response; // the caller reads the error body
    response.body.resume();
    await budget.wait(delayMs, `HTTP ${response.status}`);
  }
}

async function sendFollowing(request: HttpRequest): Promise<HttpResponse> {
  const authOrigin = request.authOrigin ?? request.url.origin;
  let url = request.url;
  for (let hop = 0; ; hop++) {
    const authorization = url.origin === authOrigin ? request.authorization : undefined;
    const response = await sendOnce(request, url, authorization).catch(async (error: unknown) => {
      if (!(await trySystemCas(error, url, request))) throw error;
      return sendOnce(request, url, authorization);
    });
    if (!request.followRedirects || !redirectStatuses.has(response.status)) return response;
    const location = response.header("location");
    response.body.resume();
    if (!location) return response;
    if (hop >= maxRedirects) {
      throw new RegistryError("TOO_MANY_REDIRECTS", `${request.registry}: too many redirects fetching ${redactUrl(request.url)}`);
    }
    const next = new URL(location, url);
    if (url.protocol === "https:" && next.protocol !== "https:") {
      throw new RegistryError("INSECURE_REDIRECT", `${request.registry}: refusing a redirect from HTTPS to ${redactUrl(next)}`, {
        hint: "the registry's storage must be served over HTTPS",
      });
    }
    url = next;
  }
}

/**
 * Whether to send a request again with the system's CA bundle added: its certificate did not verify against
 * Node's CAs, the origin has not been tried with the system's yet, the body can be sent again, and there is a
 * system bundle. (Loading the bundle only then keeps the common case from parsing it.)
 */
async function trySystemCas(error: unknown, url: URL, request: HttpRequest): Promise<boolean> {
  if (!isCertificateError(error) || url.protocol !== "https:" || unverifiedOrigins.has(url.origin) || systemCaOrigins.has(url.origin)) {
    return false;
  }
  if (request.body instanceof Readable || (request.signal?.aborted ?? false)) return false;
  if ((await getClients()).certs.systemCertificates() === undefined) return false;
  systemCaOrigins.add(url.origin);
  return true;
}

/** The connect and idle timeouts in force (retry.ts timeoutPolicy) on one request. */
function applyTimeouts(req: ClientRequest, request: HttpRequest, url: URL): void {
  const { connectMs, idleMs } = timeoutPolicy();
  req.once("socket", (socket) => {
    if (!socket.connecting) return; // a kept-alive socket
    const timer = setTimeout(() => req.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), connectMs);
    const done = (): void => clearTimeout(timer);
    socket.once("connect", done);
    socket.once("close", done);
  });
  // No byte in either direction for this long (the registry may hash and move a big blob after the last
  // byte of an upload), before the answer or while its body streams, is a dead connection.
  req.setTimeout(idleMs, () =>
    req.destroy(
      new RegistryUnreachableError(`${request.registry} sent nothing for ${idleMs / 1000} s (${request.method} ${redactUrl(url)})`, {
        hint: "the registry or the network stalled; `timeouts.idleMs` changes how long ocify waits",
        cause: Object.assign(new Error("idle"), { code: "IDLE_TIMEOUT" }),
      }),
    ),
  );
}

async function sendOnce(request: HttpRequest, url: URL, authorization: string | undefined): Promise<HttpResponse> {
  const clients = await getClients();
  const headers: Record<string, string> = { "user-agent": request.userAgent ?? defaultUserAgent, ...request.headers };
  if (authorization) headers.authorization = authorization;
  const { body, signal } = request;
  const streamed = body instanceof Readable;
  if (Buffer.isBuffer(body) && headers["content-length"] === undefined) headers["content-length"] = String(body.length);
  if (signal?.aborted) throw signal.reason;
  const secure = url.protocol === "https:";
  const proxy = proxyFor(clients, url, request.registry);
  const agent = agentFor(clients, url, proxy);
  // Plain HTTP through a proxy: the absolute URI goes to the proxy (HTTPS tunnels through it in the agent).
  const viaProxy: Record<string, unknown> = {};
  if (proxy && !secure) {
    Object.assign(viaProxy, {
      host: proxy.hostname,
      hostname: proxy.hostname.replace(/^\[|\]$/g, ""),
      port: Number(proxy.port || 80),
      path: url.href,
    });
    headers.host = url.host;
    const proxyAuth = clients.proxy.proxyAuthorization(proxy);
    if (proxyAuth) headers["proxy-authorization"] = proxyAuth;
  }
  const req = (secure ? clients.https : clients.http).request(url, { method: request.method, headers, agent, ...viaProxy });
  applyTimeouts(req, request, url);
  const onAbort = (): void => {
    req.destroy(signal?.reason);
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
      if (streamed) {
        // The registry may answer before it read everything (an error): the answer wins then.
        const declared = headers["content-length"];
        const stages = declared === undefined ? [body, req] : [body, exactly(Number(declared)), req];
        pipeline(stages).catch((error: unknown) => reject(body.errored ?? error));
      } else req.end(body);
    });
    req.removeAllListeners("error");
    req.on("error", () => {}); // after the answer, a failure shows on the response body
    const distinct = response.headersDistinct;
    return {
      status: response.statusCode ?? 0,
      headers: response.headers,
      body: response,
      url,
      header(name) {
        return distinct[name.toLowerCase()]?.[0];
      },
      headerValues(name) {
        return distinct[name.toLowerCase()] ?? [];
      },
    };
  } catch (error) {
    req.destroy();
    if (signal?.aborted && signal.reason !== undefined) throw signal.reason;
    if (error instanceof OcifyError) throw error;
    // The body stream's own failure (a source that broke, a verifier that caught a mismatch) is not a network error.
    const bodyError = streamed ? body.errored : null;
    if (bodyError) throw bodyError;
    throw networkError(error, request.registry, url, proxy && (!secure || (error as { proxy?: string }).proxy) ? proxy : undefined);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Passes exactly `length` bytes, failing (before the request sends a wrong body) on more or fewer. */
function exactly(length: number): Transform {
  let seen = 0;
  const wrongLength = (): RegistryError =>
    new RegistryError("SIZE_INVALID", "the content is not as long as its descriptor says", { hint: "the source changed or is corrupt" });
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      callback(seen > length ? wrongLength() : null, chunk);
    },
    flush(callback) {
      callback(seen === length ? null : wrongLength());
    },
  });
}

/** The first `code` on an error or its chain of causes. */
export function errorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && code !== "REGISTRY_UNREACHABLE") return code;
  }
  return undefined;
}

const certificateCodes = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REVOKED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Whether a failure is a certificate that did not verify. */
export function isCertificateError(error: unknown): boolean {
  return certificateCodes.has(errorCode(error) ?? "");
}

/** Whether the server refused the handshake for want of a (valid) client certificate: mutual TLS. */
export function isClientCertificateError(error: unknown): boolean {
  return /CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|HANDSHAKE_FAILURE/.test(errorCode(error) ?? "");
}

/** Whether a failure means the server did not speak TLS (a plain HTTP registry reached over HTTPS). */
export function isNotTlsError(error: unknown): boolean {
  const code = errorCode(error) ?? "";
  const text = String((error as Error)?.message ?? "") + String(((error as { cause?: Error })?.cause as Error | undefined)?.message ?? "");
  return code === "EPROTO" || code.startsWith("ERR_SSL_") || /wrong version number|packet length too long|http request/i.test(text);
}

// Connection failures that, through a proxy, are the proxy's.
const proxyConnectCodes = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "PROXY_AUTH",
  "PROXY_STATUS",
]);

/** A network failure as one line naming the host (or the proxy, when it was the proxy's) and what to do. */
export function networkError(error: unknown, registry: string, url: URL, proxy?: URL): RegistryUnreachableError {
  const code = errorCode(error) ?? "";
  const host = url.host;
  const about = host === registry || url.host === "" ? registry : `${host} (for ${registry})`;
  const options = { cause: error };
  if (proxy && proxyConnectCodes.has(code)) {
    const detail =
      code === "PROXY_AUTH" || code === "PROXY_STATUS"
        ? (error as Error).message
        : code === "ECONNREFUSED"
          ? "connection refused"
          : code === "ETIMEDOUT"
            ? "timed out"
            : "cannot connect";
    return new RegistryUnreachableError(`cannot reach ${about} through proxy ${proxy.host}: ${detail}`, {
      ...options,
      proxy: proxy.host,
      hint:
        code === "PROXY_AUTH"
          ? "the proxy wants credentials: put them in the proxy URL (http://USER:PASS@HOST:PORT)"
          : "check HTTPS_PROXY / HTTP_PROXY / NO_PROXY, or the registry's proxy in the ocify config file",
    });
  }
  if (isCertificateError(error)) {
    return new RegistryUnreachableError(`cannot reach ${about}: TLS certificate not trusted (${code})`, {
      ...options,
      hint: `if it is a private CA, put it in /etc/docker/certs.d/${host}/ca.crt (or a directory named in OCIFY_CERTS_D) or NODE_EXTRA_CA_CERTS; if you trust the network, use \`insecureRegistries: ${registry}\``,
    });
  }
  if (isClientCertificateError(error)) {
    return new RegistryUnreachableError(`cannot reach ${about}: the registry wants a client certificate (${code})`, {
      ...options,
      hint: `put client.cert and client.key in /etc/docker/certs.d/${host}/ (or ${host}/ in a directory named in OCIFY_CERTS_D)`,
    });
  }
  if (isNotTlsError(error)) {
    return new RegistryUnreachableError(`cannot reach ${about}: TLS handshake failed (${code || "protocol error"})`, {
      ...options,
      hint: `if the registry serves plain HTTP, use \`insecureRegistries: ${registry}\``,
    });
  }
  switch (code) {
    case "ECONNREFUSED":
      return new RegistryUnreachableError(`cannot reach ${about}: connection refused`, {
        ...options,
        hint: "check that the registry is running and the host and port are right",
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new RegistryUnreachableError(`cannot reach ${about}: host name not found`, {
        ...options,
        hint: "check the registry name and your DNS",
      });
    case "ETIMEDOUT":
      return new RegistryUnreachableError(`cannot reach ${about}: timed out`, {
        ...options,
        hint: "check the network or proxy settings and retry",
      });
    case "ECONNRESET":
    case "EPIPE":
      return new RegistryUnreachableError(`connection to ${about} was closed unexpectedly`, { ...options, hint: "retry" });
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new RegistryUnreachableError(`cannot reach ${about}: no route to host`, { ...options, hint: "check the network" });
  }
  const detail = (error as Error)?.message ?? String(error);
  return new RegistryUnreachableError(`cannot reach ${about}: ${detail.replace(/https?:\/\/\S+/g, (u) => safeRedact(u))}`, options);
}

function safeRedact(text: string): string {
  try {
    return redactUrl(text);
  } catch {
    return "(url)";
  }
}

/** Read a small response body whole, failing beyond `limit` bytes (error and token bodies: 1 MiB). */
export async function readBody(response: HttpResponse, limit: number, what: string): Promise<Buffer> {
  return readBounded(
    response.body,
    limit,
    what,
    () => new RegistryError("RESPONSE_TOO_LARGE", `${what}: the response is larger than ${limit} bytes`, { status: response.status }),
  );
}

/** Read at most `limit` bytes of a body, for error messages; never fails. */
export async function readErrorBody(response: HttpResponse, limit = 1 << 20): Promise<Buffer | undefined> {
  try {
    return await readBody(response, limit, "error body");
  } catch {
    return undefined;
  }
}
