/**
 * `login` and `logout` as docker and podman do them: credentials are checked against the registry first,
 * then stored through the config file's credential helper (`credHelpers`, `credsStore`) when it names one,
 * else base64 in `auths`; the file is rewritten atomically with mode 0600 and its other entries untouched.
 * `authFile` writes a containers auth.json instead (podman's `--authfile`).
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { InputError } from "../errors.js";
import { dockerHub } from "../reference.js";
import { RegistryClient } from "./client.js";
import { CredentialHelper, forgetHelperCredentials } from "./credential-helper.js";
import {
  type Credential,
  configKeyFor,
  configKeyHost,
  type DockerConfigFile,
  dockerConfigPath,
  ExplicitCredentialProvider,
  helperFor,
  readDockerConfig,
  registryHosts,
} from "./credentials.js";
import { UnauthorizedError } from "./errors.js";

/** Where `login` stores and `logout` removes credentials. */
export interface LoginOptions {
  /** A containers auth.json to write instead of docker's config.json. */
  authFile?: string | undefined;
  /** docker's config.json; default `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
  dockerConfig?: string | undefined;
  insecureRegistries?: readonly string[] | undefined;
  userAgent?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** What `login` did. */
export interface LoginResult {
  /** The file written, or the helper that stored the secret (`docker-credential-pass`). */
  storedIn: string;
}

/**
 * The registry a login names, as `docker login` accepts it: `host[:port]`, a URL (`https://host/v1/`), or a
 * Docker Hub alias; with `namespaces` (auth.json), `host/org` too.
 */
export function loginTarget(input: string, namespaces = false): { registry: string; namespace?: string } {
  const withoutScheme = input.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "");
  const slash = withoutScheme.indexOf("/");
  const host = configKeyHost(withoutScheme);
  const registry = registryHosts(dockerHub).includes(host) ? dockerHub : host;
  const path = slash < 0 ? "" : withoutScheme.slice(slash + 1);
  if (!host || !/^[a-z0-9.-]+(:\d+)?$|^\[[0-9a-f:]+\](:\d+)?$/.test(host)) {
    throw new InputError(`"${input}" is not a registry host`, { hint: "give HOST[:PORT], e.g. ghcr.io or 127.0.0.1:5000" });
  }
  // A URL's path (https://index.docker.io/v1/) is not a namespace; a bare host/org is one, for auth.json.
  if (!path || /^[a-z]+:\/\//i.test(input) || /^v[12]$/.test(path)) return { registry };
  if (!namespaces)
    throw new InputError(`"${input}": docker's config.json stores credentials per host`, { hint: "log in to the host, or use --authfile" });
  return { registry, namespace: path };
}

/** Check a credential against the registry: a token (Bearer) or /v2/ (Basic) must be granted with it. */
export async function verifyCredential(registry: string, credential: Credential, options: LoginOptions = {}): Promise<void> {
  const client = new RegistryClient(registry, {
    credentials: [new ExplicitCredentialProvider(credential, [registry])],
    insecureRegistries: options.insecureRegistries,
    userAgent: options.userAgent,
  });
  const response = await client.request({
    method: "GET",
    target: "/v2/",
    scopes: [],
    signal: options.signal,
    ok: [200],
    context: { what: `logging in to ${registry}`, kind: "other" },
  });
  response.body.resume();
}

/** Verify, then store a user name and password for a registry (or an auth.json namespace). */
export async function login(target: string, username: string, password: string, options: LoginOptions = {}): Promise<LoginResult> {
  const { registry, namespace } = loginTarget(target, options.authFile !== undefined);
  try {
    await verifyCredential(registry, { username, password, source: "the credentials given" }, options);
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    throw new UnauthorizedError(`logging in to ${registry}: the registry refused the user name or password`, {
      hint: "check them; nothing was stored",
      cause: error,
    });
  }
  forgetHelperCredentials();
  const auth = Buffer.from(`${username}:${password}`).toString("base64");
  if (options.authFile !== undefined) {
    const config = (await readDockerConfig(options.authFile)) ?? {};
    config.auths = { ...config.auths, [namespace ? `${registry}/${namespace}` : registry]: { auth } };
    await writeConfig(options.authFile, config);
    return { storedIn: options.authFile };
  }
  const path = options.dockerConfig ?? dockerConfigPath();
  const config = (await readDockerConfig(path)) ?? {};
  const key = configKeyFor(registry);
  const helper = helperFor(config, registry);
  if (helper) {
    const program = new CredentialHelper(helper.name, path);
    await program.store(key, username, password);
    // As docker does: a credsStore login leaves an empty entry in auths (and no secret in the file).
    if (!helper.perHost) {
      config.auths = { ...config.auths, [key]: {} };
      await writeConfig(path, config);
    }
    return { storedIn: program.program };
  }
  config.auths = { ...config.auths, [key]: { auth } };
  await writeConfig(path, config);
  return { storedIn: path };
}

/** Remove a registry's credentials (through the helper when the file names one); false when there were none. */
export async function logout(target: string, options: LoginOptions = {}): Promise<boolean> {
  const { registry, namespace } = loginTarget(target, options.authFile !== undefined);
  forgetHelperCredentials();
  const path = options.authFile ?? options.dockerConfig ?? dockerConfigPath();
  const config = await readDockerConfig(path);
  let removed = false;
  const helper = config && options.authFile === undefined ? helperFor(config, registry) : undefined;
  if (helper) removed = await new CredentialHelper(helper.name, path).erase(configKeyFor(registry));
  if (!config?.auths) return removed;
  const hosts = new Set(registryHosts(registry));
  const matches = (key: string): boolean => {
    if (namespace) return key === `${registry}/${namespace}`;
    const bare = key.replace(/^[a-z]+:\/\//i, "");
    return hosts.has(configKeyHost(key)) && (!bare.includes("/") || /^[a-z]+:\/\//i.test(key));
  };
  const kept = Object.fromEntries(Object.entries(config.auths).filter(([key]) => !matches(key)));
  if (Object.keys(kept).length === Object.keys(config.auths).length) return removed;
  config.auths = kept;
  await writeConfig(path, config);
  return true;
}

/** Write a config file atomically (temp file beside it, then rename) with mode 0600; its directory 0700. */
async function writeConfig(path: string, config: DockerConfigFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await writeFile(temp, `${JSON.stringify(config, null, "\t")}\n`, { mode: 0o600 });
    await chmod(temp, 0o600);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw new InputError(`cannot write ${path}: ${(error as Error).message}`, { cause: error });
  }
}
