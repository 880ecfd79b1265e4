/**
 * Registry credentials from Docker's config file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
 * Lookup goes through a chain of CredentialProviders; today the chain holds the file's `auths`, and a
 * provider for `credHelpers` / `credsStore` (docker-credential-* programs) slots in ahead of it, in Docker's order.
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { dockerHub } from "../reference.js";

/** What a registry accepts as proof of identity. */
export interface Credential {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token realm for access tokens. */
  identityToken?: string;
  /** A bearer token sent as is (`registrytoken`). */
  registryToken?: string;
  /** Where the credential came from, for messages (`/home/me/.docker/config.json`). */
  source: string;
}

/** One place credentials can come from (the config file's `auths`, a credential helper, …). */
export interface CredentialProvider {
  /** The credential for a registry host (`docker.io`, `127.0.0.1:5000`), or undefined when this provider has none. */
  get(registry: string): Promise<Credential | undefined>;
}

/** One entry of `auths` in config.json. */
export interface DockerAuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** The parts of Docker's config.json that concern registries. */
export interface DockerConfigFile {
  auths?: Record<string, DockerAuthEntry>;
  /** Default credential helper (`docker-credential-<name>`). */
  credsStore?: string;
  /** Credential helper per registry host. */
  credHelpers?: Record<string, string>;
}

/** The config.json path: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(homedir(), ".docker"), "config.json");
}

/** Read a config.json; undefined when it does not exist, InputError when it is not valid JSON. */
export async function readDockerConfig(path: string): Promise<DockerConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new InputError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const json = JSON.parse(text) as unknown;
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new Error("not a JSON object");
    return json as DockerConfigFile;
  } catch (error) {
    throw new InputError(`${path} is not valid JSON`, { hint: "fix or remove the file", cause: error });
  }
}

// Docker Hub's credentials are stored under its v1 index URL by `docker login`.
const dockerHubKeys = ["https://index.docker.io/v1/", "index.docker.io", dockerHub, "registry-1.docker.io"];

/** A config key reduced to its host: scheme and path dropped (Docker's convertToHostname). */
export function configKeyHost(key: string): string {
  const withoutScheme = key.replace(/^[a-z]+:\/\//i, "");
  const slash = withoutScheme.indexOf("/");
  return (slash < 0 ? withoutScheme : withoutScheme.slice(0, slash)).toLowerCase();
}

/** The `auths` entry for a registry host: an exact key first, then a key whose host part matches. */
export function findAuthEntry(auths: Record<string, DockerAuthEntry>, registry: string): [string, DockerAuthEntry] | undefined {
  const hosts = registry === dockerHub ? dockerHubKeys : [registry.toLowerCase()];
  for (const host of hosts) {
    const entry = auths[host];
    if (entry && hasSecret(entry)) return [host, entry];
  }
  const wanted = new Set(hosts.map(configKeyHost));
  for (const [key, entry] of Object.entries(auths)) {
    if (wanted.has(configKeyHost(key)) && hasSecret(entry)) return [key, entry];
  }
  return undefined;
}

function hasSecret(entry: DockerAuthEntry): boolean {
  return Boolean(entry.auth || entry.username || entry.identitytoken || entry.registrytoken);
}

/** Decode an `auths` entry into a credential; InputError when `auth` is not base64 of `user:password`. */
export function decodeAuthEntry(entry: DockerAuthEntry, source: string, key: string): Credential {
  const credential: Credential = { source };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0)
      throw new InputError(`${source}: auths["${key}"].auth is not base64 of USER:PASSWORD`, { hint: "run docker login again" });
    credential.username = decoded.slice(0, colon);
    credential.password = decoded.slice(colon + 1);
  }
  if (entry.username) credential.username = entry.username;
  if (entry.password) credential.password = entry.password;
  if (entry.identitytoken) credential.identityToken = entry.identitytoken;
  if (entry.registrytoken) credential.registryToken = entry.registrytoken;
  return credential;
}

/** Credentials stored in the `auths` section of a config.json. */
export class ConfigAuthsProvider implements CredentialProvider {
  constructor(
    private readonly auths: Record<string, DockerAuthEntry>,
    private readonly source: string,
  ) {}

  async get(registry: string): Promise<Credential | undefined> {
    const found = findAuthEntry(this.auths, registry);
    return found ? decodeAuthEntry(found[1], this.source, found[0]) : undefined;
  }
}

/**
 * The providers for a config file, in the order Docker consults them. Docker asks `credHelpers[host]`, then
 * `credsStore`, then `auths`; a helper-backed provider is added to the front of this list when supported.
 */
export function configProviders(config: DockerConfigFile | undefined, source: string): CredentialProvider[] {
  return config?.auths ? [new ConfigAuthsProvider(config.auths, source)] : [];
}

/** The first credential any provider has for the registry, or undefined (anonymous access). */
export async function resolveCredential(registry: string, providers: readonly CredentialProvider[]): Promise<Credential | undefined> {
  for (const provider of providers) {
    const credential = await provider.get(registry);
    if (credential) return credential;
  }
  return undefined;
}

/** The default provider chain, read from the environment's config.json. */
export async function defaultCredentialProviders(env: NodeJS.ProcessEnv = process.env): Promise<CredentialProvider[]> {
  const path = dockerConfigPath(env);
  return configProviders(await readDockerConfig(path), path);
}
