/**
 * A real registry for tests and the bench: Debian's `docker-registry` (CNCF distribution 2.8) on 127.0.0.1
 * with a free port, a temp config and temp storage, optionally behind htpasswd (bcrypt) or token auth;
 * and `pushOciLayout`, which seeds it with skopeo.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
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
  /** Require Bearer tokens from a token service (distribution `auth.token`). */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
}

/** A running test registry. */
export interface TestRegistry {
  /** `127.0.0.1:PORT`, as used in image references. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
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
    const req = request(url, { method: "GET", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on("error", () => resolve(undefined));
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
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: host, secret: randomBytes(16).toString("hex") },
      ...(auth ? { auth } : {}),
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
    const url = `http://${host}`;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`docker-registry exited (${exited}) before it answered: ${output}`);
      const status = await probe(`${url}/v2/`);
      if (status === 200 || status === 401) break;
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${host} within 20 s: ${output}`);
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

/** Push an OCI layout's tagged image to a registry with skopeo: `target` is `HOST/REPO:TAG`. */
export async function pushOciLayout(layoutDir: string, tag: string, target: string, options: { creds?: string } = {}): Promise<void> {
  const args = ["copy", "--quiet", "--insecure-policy", "--dest-tls-verify=false"];
  if (options.creds) args.push("--dest-creds", options.creds);
  await runOk("skopeo", [...args, `oci:${layoutDir}:${tag}`, `docker://${target}`]);
}
