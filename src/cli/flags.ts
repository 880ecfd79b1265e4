/** Flag parsing shared by the commands (node:util parseArgs; no dependency, fast to load). */
import { writeFile } from "node:fs/promises";
import { type ParseArgsConfig, parseArgs } from "node:util";
import {
  type BuildOptions,
  boundCacheAfterBuild,
  type Compression,
  type ConfigEdits,
  defaultCacheDir,
  defaultRetryPolicy,
  defaultTimeouts,
  type GzipEngine,
  type ManifestFormat,
  onRetry,
  type Platform,
  parseCommand,
  parseKeyValue,
  parsePlatform,
  parseSize,
  setDecompressionLimits,
  setRetryPolicy,
  setTimeouts,
  type TransportOptions,
  UsageError,
} from "../index.js";
import { createProgressView } from "./progress-view.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Options every command that moves images accepts. */
export const transportFlags = {
  "insecure-registry": { type: "string", multiple: true },
  "registry-mirror": { type: "string", multiple: true },
  jobs: { type: "string", short: "j" },
  quiet: { type: "boolean", short: "q" },
  "cache-dir": { type: "string" },
  "digest-file": { type: "string" },
  "max-expansion-ratio": { type: "string" },
  "max-expanded-size": { type: "string" },
  retry: { type: "string" },
  "retry-max-time": { type: "string" },
  "connect-timeout": { type: "string" },
  "idle-timeout": { type: "string" },
  "chunk-size": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

/** The help lines of the network flags every command that moves images takes. */
export const networkHelp = `Network:
  --retry N                 tries after the first for what is safe to repeat (default ${defaultRetryPolicy.retries})
  --retry-max-time S        seconds one operation may take, retries and waits included (default ${defaultRetryPolicy.maxTimeMs / 1000})
  --connect-timeout S       seconds to open a connection (default ${defaultTimeouts.connectMs / 1000})
  --idle-timeout S          seconds a connection may stay silent (default ${defaultTimeouts.idleMs / 1000})
  --chunk-size SIZE         blobs larger than this upload in chunks of it, resumable (default 512M)`;

/** The config flags `build` and `import` share. */
export const configFlags = {
  entrypoint: { type: "string" },
  cmd: { type: "string" },
  env: { type: "string", multiple: true, short: "e" },
  workdir: { type: "string", short: "w" },
  user: { type: "string", short: "u" },
  expose: { type: "string", multiple: true },
  volume: { type: "string", multiple: true },
  label: { type: "string", multiple: true, short: "l" },
  "stop-signal": { type: "string" },
  author: { type: "string" },
} as const satisfies Options;

/** The config edits the config flags ask for. */
export function configEdits(values: {
  entrypoint?: string | undefined;
  cmd?: string | undefined;
  env?: string[] | undefined;
  workdir?: string | undefined;
  user?: string | undefined;
  expose?: string[] | undefined;
  volume?: string[] | undefined;
  label?: string[] | undefined;
  "stop-signal"?: string | undefined;
  author?: string | undefined;
}): ConfigEdits {
  const config: ConfigEdits = {};
  if (values.entrypoint !== undefined) config.entrypoint = parseCommand(values.entrypoint, "--entrypoint");
  if (values.cmd !== undefined) config.cmd = parseCommand(values.cmd, "--cmd");
  if (values.env) config.env = values.env;
  if (values.workdir !== undefined) config.workdir = values.workdir;
  if (values.user !== undefined) config.user = values.user;
  if (values.expose) config.expose = values.expose;
  if (values.volume) config.volumes = values.volume;
  const labels = keyValues(values.label, "--label");
  if (labels) config.labels = labels;
  if (values["stop-signal"] !== undefined) config.stopSignal = values["stop-signal"];
  if (values.author !== undefined) config.author = values.author;
  return config;
}

/** Parse argv against `options`; an unknown flag, a missing or unwanted value is a usage error in ocify's words. */
export function parseFlags<T extends Options>(
  argv: string[],
  options: T,
  allowPositionals = true,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: boolean; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (error) {
    throw flagError(error, argv, options) ?? error;
  }
}

/** The usage error for what node:util's parser refused, found again among the arguments' tokens. */
function flagError(error: unknown, argv: string[], options: Options): UsageError | undefined {
  const code = (error as { code?: unknown }).code;
  const { tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  for (const token of tokens) {
    if (token.kind === "positional" && code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
      return new UsageError(`unexpected argument "${token.value}"`, { hint: "see --help" });
    }
    if (token.kind !== "option") continue;
    const option = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (!option) {
      const closest = token.rawName.startsWith("--") ? closestFlag(token.name, Object.keys(options)) : undefined;
      return new UsageError(`unknown option ${token.rawName}`, { hint: closest ? `did you mean --${closest}?` : "see --help" });
    }
    const { value, inlineValue } = token;
    if (option.type === "string" && (value === undefined || (!inlineValue && value.startsWith("-")))) {
      const example = value === undefined ? "" : `; a value starting with '-' is written --${token.name}=${value}`;
      return new UsageError(`${token.rawName} needs a value`, { hint: `see --help${example}` });
    }
    if (option.type === "boolean" && value !== undefined) return new UsageError(`${token.rawName} takes no value`, { hint: "see --help" });
  }
  return undefined;
}

/** The known flag a mistyped one most likely meant: one or two edits away (more for long names), or one it begins. */
export function closestFlag(typed: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.min(3, Math.floor(typed.length / 3)));
  for (const name of known) {
    const distance = editDistance(typed, name);
    if (distance < bestDistance || (distance === bestDistance && best === undefined)) {
      best = name;
      bestDistance = distance;
    }
  }
  if (best !== undefined || typed.length < 3) return best;
  const extended = known.filter((name) => name.startsWith(typed));
  return extended.length === 1 ? extended[0] : undefined;
}

/** Edits (insert, delete, replace, swap two neighbours) that turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => (rows[i] as number[])[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) distance = Math.min(distance, at(i - 2, j - 2) + 1);
      (rows[i] as number[])[j] = distance;
    }
  }
  return at(a.length, b.length);
}

/** A positive integer flag. */
export function intFlag(value: string | undefined, flag: string, min = 1, max = 1 << 20): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} ${value}: expected a whole number from ${min} to ${max}`);
  return n;
}

/** KEY=VALUE flags collected into a record. */
export function keyValues(values: readonly string[] | undefined, flag: string): Record<string, string> | undefined {
  if (!values?.length) return undefined;
  return Object.fromEntries(values.map((v) => parseKeyValue(v, flag)));
}

/** --platform os/arch[/variant]. */
export function platformFlag(value: string | undefined): Platform | undefined {
  if (value === undefined) return undefined;
  try {
    return parsePlatform(value);
  } catch (error) {
    throw new UsageError(`--platform ${value}: expected OS/ARCH[/VARIANT], e.g. linux/arm64`, { cause: error });
  }
}

/** --format oci|docker. */
export function formatFlag(value: string | undefined): ManifestFormat | undefined {
  if (value === undefined || value === "oci" || value === "docker") return value;
  throw new UsageError(`--format ${value}: expected oci or docker`);
}

/** --compression gzip|zstd|none. */
export function compressionFlag(value: string | undefined): Compression | undefined {
  if (value === undefined || value === "gzip" || value === "zstd" || value === "none") return value;
  throw new UsageError(`--compression ${value}: expected gzip, zstd or none`);
}

/** OCIFY_GZIP=zlib (or libdeflate): the deflate gzip layers are made with (docs/compression.md). */
export function gzipEngine(env: NodeJS.ProcessEnv = process.env): GzipEngine | undefined {
  const value = env.OCIFY_GZIP;
  return value === "zlib" || value === "libdeflate" ? value : undefined;
}

/** SOURCE_DATE_EPOCH from the environment, validated. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === "") return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`SOURCE_DATE_EPOCH=${value}: expected whole seconds since 1970`);
  return Number(value);
}

/** The transport options and progress view from the shared flags. */
export function transportOptions(
  values: {
    "insecure-registry"?: string[] | undefined;
    "registry-mirror"?: string[] | undefined;
    jobs?: string | undefined;
    quiet?: boolean | undefined;
    "cache-dir"?: string | undefined;
    "max-expansion-ratio"?: string | undefined;
    "max-expanded-size"?: string | undefined;
  } & NetworkValues,
  signal: AbortSignal,
): { options: TransportOptions; finish(): void } {
  decompressionFlags(values);
  const view = createProgressView(process.stderr, values.quiet ?? false);
  const options: TransportOptions = { progress: view.sink, signal, insecureRegistries: values["insecure-registry"] ?? [] };
  const chunkSize = networkFlags(values);
  if (chunkSize !== undefined) options.uploadChunkSize = chunkSize;
  // Every retry is said, on the progress lines (nothing with --quiet).
  onRetry((event) =>
    view.sink({
      phase: "retry",
      kind: event.what,
      id: "",
      bytes: 0,
      reason: `${event.reason}; try ${event.attempt} in ${(event.delayMs / 1000).toFixed(1)} s`,
    }),
  );
  const jobs = intFlag(values.jobs, "--jobs", 1, 64);
  if (jobs !== undefined) options.jobs = jobs;
  if (values["cache-dir"] !== undefined) options.cacheDir = values["cache-dir"];
  if (values["registry-mirror"]?.length) options.registryMirrors = values["registry-mirror"];
  return { options, finish: view.finish };
}

/** The network flags' values. */
export interface NetworkValues {
  retry?: string | undefined;
  "retry-max-time"?: string | undefined;
  "connect-timeout"?: string | undefined;
  "idle-timeout"?: string | undefined;
  "chunk-size"?: string | undefined;
}

/** Seconds, whole or not, from `min` up. */
function secondsFlag(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || seconds < min || seconds > 86_400) {
    throw new UsageError(`${flag} ${value}: expected seconds from ${min} to 86400`);
  }
  return seconds * 1000;
}

/** --retry, --retry-max-time, --connect-timeout, --idle-timeout set this process's policies; returns --chunk-size. */
export function networkFlags(values: NetworkValues): number | undefined {
  const retries = intFlag(values.retry, "--retry", 0, 100);
  setRetryPolicy({ retries, maxTimeMs: secondsFlag(values["retry-max-time"], "--retry-max-time", 0) });
  setTimeouts({
    connectMs: secondsFlag(values["connect-timeout"], "--connect-timeout", 0.1),
    idleMs: secondsFlag(values["idle-timeout"], "--idle-timeout", 0.1),
  });
  const chunk = values["chunk-size"];
  const size = chunk === undefined ? undefined : parseSize(chunk, "--chunk-size");
  if (size !== undefined && size < 64 << 10) throw new UsageError(`--chunk-size ${chunk}: expected at least 64K`);
  return size;
}

/** --max-expansion-ratio N and --max-expanded-size SIZE: the bounds of decompression.ts for this run. */
function decompressionFlags(values: { "max-expansion-ratio"?: string | undefined; "max-expanded-size"?: string | undefined }): void {
  const ratio = intFlag(values["max-expansion-ratio"], "--max-expansion-ratio", 1, 1 << 30);
  const size = values["max-expanded-size"];
  const maxSize = size === undefined ? undefined : parseSize(size, "--max-expanded-size");
  if (ratio !== undefined || maxSize !== undefined) setDecompressionLimits({ ratio, maxSize });
}

/** Write the digest to --digest-file when asked. */
export async function writeDigestFile(path: string | undefined, digest: string): Promise<void> {
  if (path !== undefined) await writeFile(path, `${digest}\n`);
}

/** Run a build, then print one `DIGEST DESTINATION` line per destination and write --digest-file. */
export async function buildAndReport(options: BuildOptions, finish: () => void, digestFile: string | undefined): Promise<void> {
  const { build } = await import("../index.js");
  const result = await build({ warn: (message) => process.stderr.write(`ocify: warning: ${message}\n`), ...options });
  finish();
  for (const written of result.written) process.stdout.write(`${written.digest} ${written.destination}\n`);
  await writeDigestFile(digestFile, result.digest);
  // The image is written: now (at most once an hour) the cache is brought within its bound.
  await boundCacheAfterBuild(options.cacheDir ?? defaultCacheDir());
}

/** Print help and return true when --help was given. */
export function helpRequested(values: { help?: boolean | undefined }, text: string): boolean {
  if (!values.help) return false;
  process.stdout.write(`${text}\n`);
  return true;
}
