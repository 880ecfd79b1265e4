/**
 * TLS material per registry host, from the directories docker and podman read: `$OCIFY_CERTS_D` (a
 * colon-separated list, searched first, for jobs that cannot write /etc), `~/.config/containers/certs.d`,
 * `/etc/containers/certs.d`, `/etc/docker/certs.d`. The first root holding `HOST[:PORT]/` is used: its
 * `*.crt` files are CAs trusted for that host (on top of the usual ones), a `NAME.cert` with its `NAME.key`
 * is the client certificate for mutual TLS. And the CAs everything trusts: Node's, NODE_EXTRA_CA_CERTS,
 * and, when a certificate does not verify against those, the system's bundle (`SSL_CERT_FILE`, else the
 * distribution's file).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import * as tls from "node:tls";
import { InputError } from "../errors.js";

/** The TLS material certs.d gives one host. */
export interface HostTls {
  /** The directory it came from, for messages. */
  dir: string;
  /** CA certificates (PEM) trusted for this host, besides the usual ones. */
  ca: string[];
  /** The client certificate and key (PEM) for mutual TLS. */
  cert?: string;
  key?: string;
}

/** The certs.d roots, in the order they are searched. */
export function certsDirRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  const extra = (env.OCIFY_CERTS_D ?? "").split(delimiter).filter(Boolean);
  const config = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return [...extra, join(config, "containers", "certs.d"), "/etc/containers/certs.d", "/etc/docker/certs.d"];
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function readPem(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** Read one host's directory: CAs (`*.crt`), and a client `NAME.cert` with `NAME.key`. */
export function readHostDir(dir: string): HostTls {
  const names = readdirSync(dir).sort();
  const found: HostTls = { dir, ca: names.filter((n) => n.endsWith(".crt")).map((n) => readPem(join(dir, n))) };
  const certs = names.filter((n) => n.endsWith(".cert"));
  if (certs.length > 1) throw new InputError(`${dir} holds more than one client certificate (*.cert)`, { hint: "keep one" });
  for (const name of certs) {
    const keyName = `${name.slice(0, -".cert".length)}.key`;
    if (!names.includes(keyName)) {
      throw new InputError(`${join(dir, name)} has no key ${keyName} beside it`, { hint: "put the client certificate's key next to it" });
    }
    found.cert = readPem(join(dir, name));
    found.key = readPem(join(dir, keyName));
  }
  for (const name of names.filter((n) => n.endsWith(".key"))) {
    if (!names.includes(`${name.slice(0, -".key".length)}.cert`)) {
      throw new InputError(`${join(dir, name)} has no certificate ${name.slice(0, -4)}.cert beside it`, {
        hint: "name the client certificate NAME.cert beside NAME.key",
      });
    }
  }
  return found;
}

const hosts = new Map<string, HostTls | undefined>();

/** The certs.d material for `host[:port]`, read once per process; undefined when no root has a directory for it. */
export function hostTls(host: string, env: NodeJS.ProcessEnv = process.env): HostTls | undefined {
  if (hosts.has(host)) return hosts.get(host);
  let found: HostTls | undefined;
  for (const root of certsDirRoots(env)) {
    const dir = join(root, host.replace(/^\[(.*)\]/, "$1"));
    if (isDirectory(dir)) {
      found = readHostDir(dir);
      break;
    }
  }
  hosts.set(host, found);
  return found;
}

// Where distributions keep the system's CA bundle (as Go's crypto/x509 looks for it).
const systemBundles = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
  "/etc/ssl/cert.pem",
];

/** The system's CA bundle (PEM), `SSL_CERT_FILE` first; undefined when there is none. */
export function systemCertificates(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const path of env.SSL_CERT_FILE ? [env.SSL_CERT_FILE] : systemBundles) {
    try {
      return readFileSync(path, "utf8");
    } catch {}
  }
  return undefined;
}

/** The CAs Node trusts by default: its own, and NODE_EXTRA_CA_CERTS (which `ca` would otherwise replace). */
export function defaultCertificates(env: NodeJS.ProcessEnv = process.env): string[] {
  const getter = (tls as { getCACertificates?: (type: string) => string[] }).getCACertificates;
  if (getter) return getter("default");
  const extra = env.NODE_EXTRA_CA_CERTS ? safeRead(env.NODE_EXTRA_CA_CERTS) : undefined;
  return extra ? [...tls.rootCertificates, extra] : [...tls.rootCertificates];
}

function safeRead(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
