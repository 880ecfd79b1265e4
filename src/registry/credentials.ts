/**
 * Registry credentials where docker, podman, skopeo and crane users already keep them. The chain, first
 * match wins: credentials given on the command line; containers' auth.json (`$REGISTRY_AUTH_FILE`, else
 * `$XDG_RUNTIME_DIR/containers/auth.json`; then `$XDG_CONFIG_HOME/containers/auth.json`); docker's
 * config.json (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`). Within one file, Docker's
 * order: a `credHelpers` entry for the host, then `credsStore`, then `auths`, whose keys may name a
 * namespace (`host/org`) as well as a host (the most specific key wins).
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { dockerHub } from "../reference.js";
import type { Credential } from "./credential.js";
import { CredentialHelper, helperCredential } from "./credential-helper.js";

export type { Credential } from "./credential.js";

/** One place credentials can come from (a config file, a credential helper, a command-line flag). */
export interface CredentialProvider {
  /**
   * The credential for a registry host (`docker.io`, `127.0.0.1:5000`) and, when known, the repository
   * asked for (`team/app`, for namespace entries), or undefined when this provider has none.
   */
  get(registry: string, repository?: string): Promise<Credential | undefined>;
}

/** One entry of `auths` in config.json or auth.json. */
export interface DockerAuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** The parts of docker's config.json (and containers' auth.json, the same shape) that concern registries. */
export interface DockerConfigFile {
  auths?: Record<string, DockerAuthEntry>;
  /** Default credential helper (`docker-credential-<name>`). */
  credsStore?: string;
  /** Credential helper per registry host. */
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

/** The config.json path: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(homedir(), ".docker"), "config.json");
}

/**
 * The containers auth.json files, in the order podman, buildah and skopeo read them: `$REGISTRY_AUTH_FILE`
 * (else `$XDG_RUNTIME_DIR/containers/auth.json`), then `$XDG_CONFIG_HOME/containers/auth.json`
 * (`~/.config/containers/auth.json`).
 */
export function containersAuthPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  else if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  paths.push(join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "containers", "auth.json"));
  return paths;
}

/** Read a config.json or auth.json; undefined when it does not exist, InputError when it is not a JSON object. */
export async function readDockerConfig(path: string): Promise<DockerConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
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

/** The key `docker login` stores Docker Hub's credentials under. */
export const dockerHubConfigKey = "https://index.docker.io/v1/";
// Docker Hub's credentials may also be found under these names.
const dockerHubKeys = [dockerHubConfigKey, "index.docker.io", dockerHub, "registry-1.docker.io"];

/** The key a registry's credentials are stored under by `docker login` (Docker Hub: its v1 index URL). */
export function configKeyFor(registry: string): string {
  return registry === dockerHub ? dockerHubConfigKey : registry;
}

/** A config key reduced to its host: scheme and path dropped (Docker's convertToHostname). */
export function configKeyHost(key: string): string {
  const withoutScheme = key.replace(/^[a-z]+:\/\//i, "");
  const slash = withoutScheme.indexOf("/");
  return (slash < 0 ? withoutScheme : withoutScheme.slice(0, slash)).toLowerCase();
}

/** The host names a registry's credentials may be stored under (several for Docker Hub). */
export function registryHosts(registry: string): string[] {
  return registry === dockerHub ? dockerHubKeys.map(configKeyHost) : [registry.toLowerCase()];
}

/**
 * The `auths` entry for a registry host and repository: a key naming the repository or one of its
 * namespaces (`host/org/app`, `host/org`; the longest wins), then the exact host key, then a key whose
 * host part matches (`https://host/v2/`).
 */
export function findAuthEntry(
  auths: Record<string, DockerAuthEntry>,
  registry: string,
  repository?: string,
): [string, DockerAuthEntry] | undefined {
  const hosts = registryHosts(registry);
  if (repository) {
    const parts = repository.split("/");
    for (let n = parts.length; n > 0; n--) {
      for (const host of hosts) {
        const key = `${host}/${parts.slice(0, n).join("/")}`;
        const entry = auths[key];
        if (entry && hasSecret(entry)) return [key, entry];
      }
    }
  }
  const exact = registry === dockerHub ? dockerHubKeys : [registry.toLowerCase()];
  for (const host of exact) {
    const entry = auths[host];
    if (entry && hasSecret(entry)) return [host, entry];
  }
  const wanted = new Set(hosts);
  for (const [key, entry] of Object.entries(auths)) {
    const isHostKey = !key.replace(/^[a-z]+:\/\//i, "").includes("/") || /^[a-z]+:\/\//i.test(key);
    if (isHostKey && wanted.has(configKeyHost(key)) && hasSecret(entry)) return [key, entry];
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
      throw new InputError(`${source}: auths["${key}"].auth is not base64 of USER:PASSWORD`, { hint: `run ocify login ${key} again` });
    credential.username = decoded.slice(0, colon);
    credential.password = decoded.slice(colon + 1);
  }
  if (entry.username) credential.username = entry.username;
  if (entry.password) credential.password = entry.password;
  if (entry.identitytoken) credential.identityToken = entry.identitytoken;
  if (entry.registrytoken) credential.registryToken = entry.registrytoken;
  return credential;
}

/** The credential helper a config file names for a registry: `credHelpers[host]`, else `credsStore`. */
export function helperFor(config: DockerConfigFile, registry: string): { name: string; perHost: boolean } | undefined {
  const helpers = config.credHelpers ?? {};
  for (const host of registryHosts(registry)) {
    const name = helpers[host] ?? Object.entries(helpers).find(([key]) => configKeyHost(key) === host)?.[1];
    if (typeof name === "string" && name) return { name, perHost: true };
  }
  return typeof config.credsStore === "string" && config.credsStore ? { name: config.credsStore, perHost: false } : undefined;
}

/**
 * The credentials of one config file (docker's config.json or containers' auth.json), in Docker's order: a
 * `credHelpers` entry for the host (and nothing else when it has none), then `credsStore`, then `auths`.
 */
export class ConfigFileProvider implements CredentialProvider {
  constructor(
    private readonly config: DockerConfigFile,
    private readonly source: string,
  ) {}

  async get(registry: string, repository?: string): Promise<Credential | undefined> {
    const helper = helperFor(this.config, registry);
    if (helper) {
      const found = await helperCredential(new CredentialHelper(helper.name, this.source), configKeyFor(registry));
      if (found || helper.perHost) return found;
    }
    const entry = findAuthEntry(this.config.auths ?? {}, registry, repository);
    return entry ? decodeAuthEntry(entry[1], this.source, entry[0]) : undefined;
  }
}

/** The providers for a config file (none when the file is absent). */
export function configProviders(config: DockerConfigFile | undefined, source: string): CredentialProvider[] {
  return config ? [new ConfigFileProvider(config, source)] : [];
}

/** One credential given explicitly (`--creds`), for the listed registry hosts only. */
export class ExplicitCredentialProvider implements CredentialProvider {
  readonly #registries: Set<string>;

  constructor(
    private readonly credential: Credential,
    registries: Iterable<string>,
  ) {
    this.#registries = new Set([...registries].map((r) => r.toLowerCase()));
  }

  async get(registry: string): Promise<Credential | undefined> {
    return this.#registries.has(registry.toLowerCase()) ? this.credential : undefined;
  }
}

/** Parse `USER[:PASSWORD]` (the password may contain colons); the password may come from elsewhere. */
export function parseCredentialFlag(value: string, flag: string): { username: string; password?: string } {
  const colon = value.indexOf(":");
  const username = colon < 0 ? value : value.slice(0, colon);
  if (!username) throw new InputError(`${flag}: expected USER[:PASSWORD]`, { hint: "give a user name before the colon" });
  return colon < 0 ? { username } : { username, password: value.slice(colon + 1) };
}

/** The first credential any provider has for the registry (and repository), or undefined (anonymous access). */
export async function resolveCredential(
  registry: string,
  providers: readonly CredentialProvider[],
  repository?: string,
): Promise<Credential | undefined> {
  for (const provider of providers) {
    const credential = await provider.get(registry, repository);
    if (credential) return credential;
  }
  return undefined;
}

/** The default chain, read from the environment's files: containers' auth.json files, then docker's config.json. */
export async function defaultCredentialProviders(env: NodeJS.ProcessEnv = process.env): Promise<CredentialProvider[]> {
  const paths = [...containersAuthPaths(env), dockerConfigPath(env)];
  const configs = await Promise.all(paths.map((path) => readDockerConfig(path)));
  return configs.flatMap((config, i) => configProviders(config, paths[i] as string));
}

/** The default chain as one provider that reads the files on first use (once per provider). */
export function defaultCredentials(env: NodeJS.ProcessEnv = process.env): CredentialProvider {
  let chain: Promise<CredentialProvider[]> | undefined;
  return {
    async get(registry, repository) {
      chain ??= defaultCredentialProviders(env);
      return resolveCredential(registry, await chain, repository);
    },
  };
}
