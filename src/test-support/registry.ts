/**
 * A real registry for tests and the bench: Debian's `docker-registry` (CNCF distribution 2.8) on 127.0.0.1
 * with a free port, a temp config and temp storage, optionally behind htpasswd (bcrypt) or token auth;
 * and `pushOciLayout`, which seeds it with skopeo.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { runOk } from "./cli.js";

/** The registry binary. */
export const registryBinary = "/usr/bin/docker-registry";

/** Options of a test registry. */
export interface StartRegistryOptions {
  /** Require HTTP Basic authentication with these credentials (htpasswd, bcrypt). */
  htpasswd?: { username: string; password: string };
  /** Allow DELETE of manifests and blobs (default true, as distribution's storage.delete.enabled). */
  deletes?: boolean;
  /** Require Bearer tokens from a token service (distribution `auth.token`). */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Serve HTTPS with this certificate and key (PEM files); `url` is then https://. With `clientCas`, require client certificates they sign. */
  tls?: { certificate: string; key: string; clientCas?: string[] };
  /** Refuse every write, as a mirror or a registry in maintenance does (`storage.maintenance.readonly`). */
  readOnly?: boolean;
  /** Accept Docker schema 1 pushes (`compatibility.schema1`; the registry signs what it serves with a key it generates). */
  schema1?: boolean;
  /** Accept manifests whose layers name external `urls` (foreign, non-distributable layers); off by default. */
  layerUrls?: boolean;
}

/** A running test registry. */
export interface TestRegistry {
  /** `127.0.0.1:PORT`, as used in image references. */
  host: string;
  /** `http://127.0.0.1:PORT` (https:// with `tls`). */
  url: string;
  /** The temp directory holding config and storage. */
  dir: string;
  /** Stop the registry and remove its directory. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

function probe(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    // The registry's own certificate is not checked here: this only waits for it to answer.
    const send = url.startsWith("https:") ? httpsRequest : request;
    const req = send(url, { method: "GET", timeout: 1000, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    // A registry that wants a client certificate answers the handshake with an alert: it is up (0).
    req.on("error", (error: NodeJS.ErrnoException) => resolve(error.code?.startsWith("ERR_SSL_") ? 0 : undefined));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** Start `docker-registry serve` on a free loopback port and wait until /v2/ answers. */
export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "ocify-registry-"));
  let child: ChildProcess | undefined;
  const killOnExit = () => child?.kill("SIGKILL");
  try {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    let auth: Record<string, unknown> | undefined;
    if (options.htpasswd) {
      const path = join(dir, "htpasswd");
      // distribution accepts bcrypt entries only.
      writeFileSync(path, `${options.htpasswd.username}:${bcrypt.hashSync(options.htpasswd.password, 5)}\n`);
      auth = { htpasswd: { realm: "ocify-test", path } };
    } else if (options.token) {
      const { realm, service, issuer, rootCertBundle } = options.token;
      auth = { token: { realm, service, issuer, rootcertbundle: rootCertBundle } };
    }
    // JSON is YAML: no quoting pitfalls. No cache section (no redis); deletes allowed for tests.
    const config = {
      version: "0.1",
      log: { level: "error", accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: join(dir, "data") },
        delete: { enabled: options.deletes ?? true },
        maintenance: { uploadpurging: { enabled: false }, ...(options.readOnly ? { readonly: { enabled: true } } : {}) },
      },
      http: {
        addr: host,
        secret: randomBytes(16).toString("hex"),
        ...(options.tls
          ? {
              tls: {
                certificate: options.tls.certificate,
                key: options.tls.key,
                ...(options.tls.clientCas ? { clientcas: options.tls.clientCas } : {}),
              },
            }
          : {}),
      },
      ...(auth ? { auth } : {}),
      ...(options.schema1 ? { compatibility: { schema1: { enabled: true } } } : {}),
      ...(options.layerUrls ? { validation: { manifests: { urls: { allow: ["^https?://"] } } } } : {}),
    };
    const configPath = join(dir, "config.yml");
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("REGISTRY_")));
    const spawned = spawn(registryBinary, ["serve", configPath], { stdio: ["ignore", "pipe", "pipe"], env });
    child = spawned;
    process.once("exit", killOnExit);
    let output = "";
    const keep = (data: Buffer) => {
      output = (output + data.toString()).slice(-65536);
    };
    spawned.stdout?.on("data", keep);
    spawned.stderr?.on("data", keep);
    let exited: number | null | undefined;
    const exit = new Promise<void>((resolve) => {
      spawned.once("exit", (code) => {
        exited = code;
        resolve();
      });
    });
    spawned.once("error", (error) => {
      output += String(error);
      exited = -1;
    });
    const url = `${options.tls ? "https" : "http"}://${host}`;
    // Only a registry that will never answer takes this long; a loaded machine's is slow, not absent.
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`docker-registry exited (${exited}) before it answered: ${output}`);
      const status = await probe(`${url}/v2/`);
      if (status === 200 || status === 401 || (status === 0 && options.tls?.clientCas)) break;
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${host} within 60 s: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    let stopped = false;
    return {
      host,
      url,
      dir,
      async stop() {
        if (stopped) return;
        stopped = true;
        process.off("exit", killOnExit);
        if (exited === undefined) {
          spawned.kill("SIGTERM");
          const timer = setTimeout(() => spawned.kill("SIGKILL"), 5000);
          await exit;
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    process.off("exit", killOnExit);
    child?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Push an OCI layout's tagged image to a registry with skopeo: `target` is `HOST/REPO:TAG`; `all` keeps a whole index. */
export async function pushOciLayout(
  layoutDir: string,
  tag: string,
  target: string,
  options: { creds?: string; all?: boolean } = {},
): Promise<void> {
  const args = ["copy", "--quiet", "--insecure-policy", "--dest-tls-verify=false"];
  if (options.creds) args.push("--dest-creds", options.creds);
  if (options.all) args.push("--all");
  await runOk("skopeo", [...args, `oci:${layoutDir}:${tag}`, `docker://${target}`]);
}

/**
 * Resolves once `condition()` holds (asked every 10 ms), or after `limitMs` (a minute) without it: a test
 * that waits on its proxy's traffic this way then fails on its own assertions rather than hanging.
 */
export async function eventually(condition: () => boolean, limitMs = 60_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!condition() && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** One request seen by a RegistryProxy. */
export interface ProxiedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** Request body bytes received (uploads). */
  bodyBytes: number;
  status?: number;
  /** When the request arrived and when its answer started (performance.now()). */
  at: number;
  answeredAt?: number;
}

/** What a RegistryProxy may do to traffic, for fault tests. */
export interface RegistryProxyOptions {
  /** Answer a request itself (return true) instead of forwarding it, e.g. with a redirect or an error. */
  intercept?(request: IncomingMessage, response: ServerResponse): boolean;
  /** Rewrite a chunk of a forwarded response body (e.g. flip a byte); `index` counts chunks of this response. */
  transformBody?(request: ProxiedRequest, chunk: Buffer, index: number): Buffer;
  /**
   * Hold a response before it is sent (a slow registry): for so many milliseconds, or until the promise
   * settles (a registry slow until something else has happened); 0 or undefined: none.
   */
  delay?(request: ProxiedRequest): number | Promise<unknown> | undefined;
}

/** A loopback HTTP proxy in front of a registry: records every request and can inject faults. */
export interface RegistryProxy {
  /** `127.0.0.1:PORT`: use it as the registry host in references. */
  host: string;
  requests: ProxiedRequest[];
  /** Request body bytes received by all requests so far. */
  uploadedBytes(): number;
  stop(): Promise<void>;
}

/** Start a RegistryProxy forwarding to `target` (`127.0.0.1:PORT`); the Host header is kept, so upload locations point back to the proxy. */
export async function startRegistryProxy(target: string, options: RegistryProxyOptions = {}): Promise<RegistryProxy> {
  const [targetHost, targetPort] = target.split(":") as [string, string];
  const requests: ProxiedRequest[] = [];
  const server = createHttpServer((req, res) => {
    const record: ProxiedRequest = {
      method: req.method ?? "GET",
      url: req.url ?? "/",
      headers: { ...req.headers },
      bodyBytes: 0,
      at: performance.now(),
    };
    requests.push(record);
    req.on("data", (chunk: Buffer) => {
      record.bodyBytes += chunk.length;
    });
    if (options.intercept?.(req, res)) {
      req.resume();
      return;
    }
    const upstream = request(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: req.headers },
      async (upstreamResponse) => {
        const hold = options.delay?.(record);
        // The body waits unread meanwhile.
        if (typeof hold === "number" && hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
        else if (hold instanceof Promise) await hold.catch(() => {});
        record.status = upstreamResponse.statusCode ?? 0;
        record.answeredAt = performance.now();
        res.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
        let index = 0;
        upstreamResponse.on("data", (chunk: Buffer) => {
          res.write(options.transformBody ? options.transformBody(record, chunk, index++) : chunk);
        });
        upstreamResponse.on("end", () => res.end());
        upstreamResponse.on("error", () => res.destroy());
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${address.port}`,
    requests,
    uploadedBytes: () => requests.reduce((sum, r) => sum + r.bodyBytes, 0),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
