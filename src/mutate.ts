/** Edits of an image's execution config (entrypoint, env, ports…), as `build` and `import` take them, and the parsing of their values. */
import { UsageError } from "./errors.js";
import type { ExecutionConfig } from "./image/config.js";

export { emptyConfig } from "./image/config.js";

/** Config changes requested by the user; absent fields leave the base's values alone. */
export interface ConfigEdits {
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  /** `KEY=VALUE` entries: each replaces the base's entry with the same KEY, the rest are kept. */
  env?: string[];
  workdir?: string;
  user?: string;
  /** `PORT[/tcp|udp|sctp]` or `FROM-TO[/proto]`. */
  expose?: string[];
  volumes?: string[];
  labels?: Record<string, string>;
  stopSignal?: string;
}

/** The `created` timestamp for SOURCE_DATE_EPOCH seconds (epoch 0 when unset), as RFC 3339 in UTC. */
export function createdTimestamp(sourceDateEpoch: number | undefined): string {
  return new Date((sourceDateEpoch ?? 0) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * Parse an `--entrypoint`/`--cmd` value: a JSON array of strings (exec form), or a plain string split on
 * whitespace into arguments (no shell is involved; use JSON for arguments with spaces). An empty string
 * clears the value.
 */
export function parseCommand(value: string, flag: string): string[] | null {
  const trimmed = value.trim();
  if (trimmed === "") return null;
  if (trimmed.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new UsageError(`${flag} ${value}: not a valid JSON array`, { hint: `write e.g. ${flag} '["/app/server","--port","8080"]'` });
    }
    if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === "string")) {
      throw new UsageError(`${flag} ${value}: must be a JSON array of strings`);
    }
    return parsed;
  }
  return trimmed.split(/\s+/);
}

/** Parse `KEY=VALUE` (for --env, --label, --annotation); throws a UsageError naming the flag. */
export function parseKeyValue(text: string, flag: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new UsageError(`${flag} ${text}: expected KEY=VALUE`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** Expand `--expose` values to ExposedPorts keys (`8080/tcp`). */
export function parsePorts(values: readonly string[]): string[] {
  const ports: string[] = [];
  for (const value of values) {
    const match = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(value.trim());
    const from = Number(match?.[1]);
    const to = match?.[2] === undefined ? from : Number(match[2]);
    if (!match || from < 1 || to > 65535 || to < from || to - from > 4096) {
      throw new UsageError(`\`config.expose\` ${value}: not a port`, {
        hint: "write PORT[/tcp|udp|sctp] or FROM-TO[/proto], ports 1-65535",
      });
    }
    const proto = (match[3] ?? "tcp").toLowerCase();
    for (let port = from; port <= to; port++) ports.push(`${port}/${proto}`);
  }
  return ports;
}

function setOrDelete<K extends keyof ExecutionConfig>(config: ExecutionConfig, key: K, value: ExecutionConfig[K] | null): void {
  if (value === null) delete config[key];
  else config[key] = value;
}

/** Apply edits to an execution config, returning a new object (the input is not changed). */
export function applyConfigEdits(base: ExecutionConfig | undefined, edits: ConfigEdits): ExecutionConfig {
  const config: ExecutionConfig = structuredClone(base ?? {});
  if (edits.entrypoint !== undefined) {
    setOrDelete(config, "Entrypoint", edits.entrypoint);
    // As in a Dockerfile: a new ENTRYPOINT drops the base's CMD unless a CMD is given too.
    if (edits.cmd === undefined) delete config.Cmd;
  }
  if (edits.cmd !== undefined) setOrDelete(config, "Cmd", edits.cmd);
  if (edits.env?.length) {
    const env = [...(config.Env ?? [])];
    for (const entry of edits.env) {
      const [key] = parseKeyValue(entry, "`config.env`");
      const at = env.findIndex((e) => e === key || e.startsWith(`${key}=`));
      if (at >= 0) env[at] = entry;
      else env.push(entry);
    }
    config.Env = env;
  }
  if (edits.workdir !== undefined) {
    if (!edits.workdir.startsWith("/")) throw new UsageError(`\`config.workdir\` ${edits.workdir}: must be an absolute path`);
    config.WorkingDir = edits.workdir;
  }
  if (edits.user !== undefined) config.User = edits.user;
  if (edits.expose?.length) {
    config.ExposedPorts = { ...(config.ExposedPorts ?? {}) };
    for (const port of parsePorts(edits.expose)) config.ExposedPorts[port] = {};
  }
  if (edits.volumes?.length) {
    config.Volumes = { ...(config.Volumes ?? {}) };
    for (const volume of edits.volumes) {
      if (!volume.startsWith("/")) throw new UsageError(`\`config.volumes\` ${volume}: must be an absolute path`);
      config.Volumes[volume] = {};
    }
  }
  if (edits.labels && Object.keys(edits.labels).length) config.Labels = { ...(config.Labels ?? {}), ...edits.labels };
  if (edits.stopSignal !== undefined) config.StopSignal = edits.stopSignal;
  return config;
}
