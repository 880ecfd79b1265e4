/**
 * Pull mirrors, tried in order before the registry itself (which is always tried last): `--registry-mirror`
 * (`MIRROR` for Docker Hub, `REGISTRY=MIRROR` for another), the ocify config's `mirrors`, containers'
 * registries.conf `[[registry]]` / `[[registry.mirror]]` entries, and docker's `registry-mirrors` (Docker
 * Hub only) from daemon.json. A mirror is `HOST[:PORT][/NAMESPACE]`; `http://` marks it plain HTTP.
 */
import { readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { InputError } from "../errors.js";
import { dockerHub, type Reference } from "../reference.js";
import { registrySettings } from "./settings.js";

/** One place to try a pull: a registry and the repository there. */
export interface PullEndpoint {
  registry: string;
  repository: string;
  /** Plain HTTP / unverified TLS allowed (registries.conf `insecure`, or an http:// mirror). */
  insecure: boolean;
}

/** One `[[registry]]` of registries.conf, with what this reader uses. */
export interface RegistriesConfEntry {
  prefix: string;
  mirrors: { location: string; insecure: boolean; pullFromMirror?: string }[];
  /** `mirror-by-digest-only` of the registry, or `pull-from-mirror` of a mirror. */
  digestOnly: boolean;
}

function unquote(value: string, where: string): string | boolean | undefined {
  const text = value.replace(/\s+#.*$/, "").trim();
  if (text === "true" || text === "false") return text === "true";
  const match = /^"((?:[^"\\]|\\.)*)"$|^'([^']*)'$/.exec(text);
  if (match) return match[1] !== undefined ? JSON.parse(`"${match[1]}"`) : match[2];
  if (text.startsWith("[") || text.startsWith("{") || /^[\d.+-]/.test(text)) return undefined; // arrays, tables, numbers: not used here
  throw new InputError(`${where}: cannot read the value ${text}`, { hint: "registries.conf values are quoted strings or true/false" });
}

/** Parse the parts of a registries.conf (TOML, version 2) that name mirrors. */
export function parseRegistriesConf(text: string, path: string): RegistriesConfEntry[] {
  const entries: RegistriesConfEntry[] = [];
  let table: "registry" | "mirror" | "other" = "other";
  let inArray = false;
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (inArray) {
      if (line.includes("]")) inArray = false;
      continue;
    }
    if (!line || line.startsWith("#")) continue;
    if (line.startsWith("[")) {
      const name = line.replace(/#.*$/, "").trim();
      table = name === "[[registry]]" ? "registry" : name === "[[registry.mirror]]" ? "mirror" : "other";
      if (table === "registry") entries.push({ prefix: "", mirrors: [], digestOnly: false });
      if (table === "mirror" && entries.length === 0)
        throw new InputError(`${path}:${index + 1}: [[registry.mirror]] before any [[registry]]`);
      if (table === "mirror") entries.at(-1)?.mirrors.push({ location: "", insecure: false });
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 0 || table === "other") continue;
    const key = line.slice(0, eq).trim().replace(/^"|"$/g, "");
    const valueText = line.slice(eq + 1).trim();
    if (valueText.startsWith("[") && !valueText.includes("]")) inArray = true;
    const value = unquote(valueText, `${path}:${index + 1}`);
    const entry = entries.at(-1) as RegistriesConfEntry;
    if (table === "registry") {
      if ((key === "prefix" || (key === "location" && !entry.prefix)) && typeof value === "string") entry.prefix = value;
      if (key === "mirror-by-digest-only") entry.digestOnly = value === true;
    } else {
      const mirror = entry.mirrors.at(-1) as RegistriesConfEntry["mirrors"][number];
      if (key === "location" && typeof value === "string") mirror.location = value;
      if (key === "insecure") mirror.insecure = value === true;
      if (key === "pull-from-mirror" && typeof value === "string") mirror.pullFromMirror = value;
    }
  }
  return entries.filter((entry) => entry.prefix);
}

/** The registries.conf files read, in order: `$CONTAINERS_REGISTRIES_CONF`, else the user's, else the system's; plus its `.d` directory. */
export function registriesConfPaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const user = join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "containers", "registries.conf");
  const main = env.CONTAINERS_REGISTRIES_CONF || (readable(user) ? user : "/etc/containers/registries.conf");
  const dropIns = join(dirname(main), "registries.conf.d");
  let extra: string[] = [];
  try {
    extra = readdirSync(dropIns)
      .filter((name) => name.endsWith(".conf"))
      .sort()
      .map((name) => join(dropIns, name));
  } catch {}
  return [main, ...extra];
}

function readable(path: string): boolean {
  try {
    readFileSync(path);
    return true;
  } catch {
    return false;
  }
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") return undefined;
    throw new InputError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** docker's `registry-mirrors` from daemon.json (rootless `~/.config/docker/daemon.json`, else `/etc/docker/daemon.json`). */
export function dockerDaemonMirrors(env: NodeJS.ProcessEnv = process.env): string[] {
  const paths = [join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "docker", "daemon.json"), "/etc/docker/daemon.json"];
  for (const path of env.OCIFY_DOCKER_DAEMON_JSON ? [env.OCIFY_DOCKER_DAEMON_JSON] : paths) {
    const text = readOptional(path);
    if (text === undefined) continue;
    try {
      const mirrors = (JSON.parse(text) as { "registry-mirrors"?: unknown })["registry-mirrors"];
      return Array.isArray(mirrors) ? mirrors.filter((m): m is string => typeof m === "string") : [];
    } catch {
      return []; // docker's own file: docker reports it, a pull need not fail for it
    }
  }
  return [];
}

/** `HOST[:PORT][/NAMESPACE]` (a URL is accepted; http:// marks it insecure) as an endpoint for `repository`. */
export function mirrorEndpoint(mirror: string, repository: string, insecure = false): PullEndpoint {
  const plain = /^http:\/\//i.test(mirror);
  const text = mirror.replace(/^[a-z]+:\/\//i, "").replace(/\/+$/, "");
  const slash = text.indexOf("/");
  const registry = (slash < 0 ? text : text.slice(0, slash)).toLowerCase();
  const namespace = slash < 0 ? "" : text.slice(slash + 1).replace(/^v2\/?/, "");
  return { registry, repository: namespace ? `${namespace}/${repository}` : repository, insecure: insecure || plain };
}

function prefixMatches(prefix: string, name: string): boolean {
  return name === prefix || (name.startsWith(prefix) && "/:@".includes(name[prefix.length] ?? ""));
}

/** The registries.conf mirrors for a reference: the longest matching prefix's, with the prefix replaced. */
export function registriesConfMirrors(entries: readonly RegistriesConfEntry[], reference: Reference): PullEndpoint[] {
  const name = `${reference.registry}/${reference.repository}`;
  const match = entries.filter((e) => prefixMatches(e.prefix, name)).sort((a, b) => b.prefix.length - a.prefix.length)[0];
  if (!match) return [];
  const byDigest = reference.digest !== undefined;
  const rest = name.slice(match.prefix.length);
  return match.mirrors
    .filter((m) => m.location)
    .filter((m) => {
      const mode = m.pullFromMirror ?? (match.digestOnly ? "digest-only" : "all");
      return mode === "all" || (mode === "digest-only" ? byDigest : !byDigest);
    })
    .map((m) => {
      const target = `${m.location.replace(/\/+$/, "")}${rest}`;
      const slash = target.indexOf("/");
      return { registry: target.slice(0, slash).toLowerCase(), repository: target.slice(slash + 1), insecure: m.insecure };
    });
}

/** `--registry-mirror` values that apply to a registry: `MIRROR` (Docker Hub) or `REGISTRY=MIRROR`. */
export function flagMirrors(values: readonly string[], registry: string): string[] {
  return values.flatMap((value) => {
    const eq = value.indexOf("=");
    if (eq < 0) return registry === dockerHub ? [value] : [];
    return value.slice(0, eq).toLowerCase() === registry.toLowerCase() ? [value.slice(eq + 1)] : [];
  });
}

/** Every place to try a pull of `reference`, mirrors first, the registry itself last. */
export function pullEndpoints(
  reference: Reference,
  flagValues: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): PullEndpoint[] {
  const { registry, repository } = reference;
  const endpoints: PullEndpoint[] = [
    ...flagMirrors(flagValues, registry).map((m) => mirrorEndpoint(m, repository)),
    ...(registrySettings(registry, env).mirrors ?? []).map((m) => mirrorEndpoint(m, repository)),
  ];
  for (const path of registriesConfPaths(env)) {
    const text = readOptional(path);
    if (text !== undefined) endpoints.push(...registriesConfMirrors(parseRegistriesConf(text, path), reference));
  }
  if (registry === dockerHub) endpoints.push(...dockerDaemonMirrors(env).map((m) => mirrorEndpoint(m, repository)));
  const seen = new Set<string>([`${registry}/${repository}`]);
  const unique = endpoints.filter((e) => {
    const key = `${e.registry}/${e.repository}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return [...unique, { registry, repository, insecure: false }];
}
