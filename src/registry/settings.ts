/**
 * ocify's own per-registry settings: `$OCIFY_CONFIG`, else `$XDG_CONFIG_HOME/ocify/config.json`
 * (`~/.config/ocify/config.json`), read once:
 *
 *   { "registries": { "registry.cn-hangzhou.aliyuncs.com": { "proxy": "http://proxy-a:3128" },
 *                     "docker.io": { "mirrors": ["mirror.example.com"] },
 *                     "registry.internal": { "proxy": "direct" } } }
 *
 * A registry's `proxy` carries all its traffic (token realm and blob storage included) instead of the
 * environment's; `direct` connects without one. `mirrors` are tried before the registry for pulls.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { InputError } from "../errors.js";
import { parseProxy } from "./proxy.js";

/** The settings of one registry. */
export interface RegistrySettings {
  /** The proxy for everything sent on this registry's behalf; `direct` for none (the environment's is ignored). */
  proxy?: URL | "direct";
  /** Mirrors tried first when pulling (`HOST[:PORT][/NAMESPACE]`). */
  mirrors?: string[];
}

/** The settings file's path. */
export function settingsPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.OCIFY_CONFIG || join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "ocify", "config.json");
}

/** Parse the settings file's text; InputError naming the file and key for anything malformed. */
export function parseSettings(text: string, path: string): Map<string, RegistrySettings> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path} is not valid JSON`, { hint: "fix or remove the file", cause: error });
  }
  const registries = (json as { registries?: unknown } | null)?.registries ?? {};
  if (typeof registries !== "object" || registries === null || Array.isArray(registries)) {
    throw new InputError(`${path}: "registries" must be an object of registry hosts`);
  }
  const settings = new Map<string, RegistrySettings>();
  for (const [host, value] of Object.entries(registries as Record<string, unknown>)) {
    const entry = (value ?? {}) as { proxy?: unknown; mirrors?: unknown };
    const parsed: RegistrySettings = {};
    if (entry.proxy !== undefined) {
      if (typeof entry.proxy !== "string") throw new InputError(`${path}: registries["${host}"].proxy must be a string`);
      parsed.proxy = entry.proxy === "direct" ? "direct" : parseProxy(entry.proxy, `${path}: registries["${host}"].proxy`);
    }
    if (entry.mirrors !== undefined) {
      if (!Array.isArray(entry.mirrors) || !entry.mirrors.every((m) => typeof m === "string")) {
        throw new InputError(`${path}: registries["${host}"].mirrors must be a list of hosts`);
      }
      parsed.mirrors = entry.mirrors as string[];
    }
    settings.set(host.toLowerCase(), parsed);
  }
  return settings;
}

const loaded = new Map<string, Map<string, RegistrySettings>>();

/** The settings of a registry (empty when the file does not exist or does not name it). */
export function registrySettings(registry: string, env: NodeJS.ProcessEnv = process.env): RegistrySettings {
  const path = settingsPath(env);
  let settings = loaded.get(path);
  if (!settings) {
    let text: string | undefined;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR")
        throw new InputError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
    }
    settings = text === undefined ? new Map() : parseSettings(text, path);
    loaded.set(path, settings);
  }
  return settings.get(registry.toLowerCase()) ?? {};
}
