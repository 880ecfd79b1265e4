/** `ocify build [-f Dockerfile] … CONTEXT`: docker build's flags → DockerfileBuildOptions → buildDockerfile(). */
import { type DockerfileBuildOptions, type Platform, UsageError } from "../../index.js";
import { compressionFlag, intFlag, keyValues, platformFlag, sourceDateEpoch, transportOptions, writeDigestFile } from "../flags.js";
import { credentialChain, registriesOf } from "../registry-flags.js";

/** The flags only a Dockerfile build takes. */
export const dockerfileFlags = {
  file: { type: "string", short: "f" },
  "build-arg": { type: "string", multiple: true },
  target: { type: "string" },
  "skip-run": { type: "boolean" },
} as const;

/** The flag builds' options, which mean nothing with a Dockerfile. */
const flagBuildOnly = [
  "from",
  "layer",
  "layer-for",
  "chown",
  "entrypoint",
  "cmd",
  "env",
  "workdir",
  "user",
  "expose",
  "volume",
  "annotation",
  "format",
];

/** Parsed values the Dockerfile mode reads. */
export interface DockerfileValues {
  file?: string | undefined;
  "build-arg"?: string[] | undefined;
  target?: string | undefined;
  "skip-run"?: boolean | undefined;
  label?: string[] | undefined;
  platform?: string | undefined;
  tag?: string[] | undefined;
  compression?: string | undefined;
  "compression-level"?: string | undefined;
  "insecure-registry"?: string[] | undefined;
  jobs?: string | undefined;
  quiet?: boolean | undefined;
  "cache-dir"?: string | undefined;
  "digest-file"?: string | undefined;
  creds?: string | undefined;
  "password-stdin"?: boolean | undefined;
  [flag: string]: unknown;
}

/** `--build-arg KEY=VALUE`, or `--build-arg KEY` taking KEY's value from the environment, as docker does. */
function buildArgs(values: readonly string[] | undefined): Record<string, string> {
  const args: Record<string, string> = {};
  for (const text of values ?? []) {
    const eq = text.indexOf("=");
    if (eq === 0) throw new UsageError(`--build-arg ${text}: expected KEY=VALUE`);
    if (eq > 0) args[text.slice(0, eq)] = text.slice(eq + 1);
    else if (process.env[text] !== undefined) args[text] = process.env[text] as string;
  }
  return args;
}

/** Run a Dockerfile build of `context`; prints `DIGEST DESTINATION` per destination. */
export async function runDockerfileBuild(values: DockerfileValues, context: string, signal: AbortSignal): Promise<number> {
  const given = flagBuildOnly.find((flag) => values[flag] !== undefined);
  if (given) throw new UsageError(`--${given} is for builds without a Dockerfile`, { hint: "write it in the Dockerfile instead" });
  const { options: transport, finish } = transportOptions(values, signal);
  // --creds are for the destinations' registries only, never a base image's.
  const credentials = await credentialChain(values, registriesOf(values.tag ?? []));
  if (credentials) transport.credentials = credentials;
  const options: DockerfileBuildOptions = {
    ...transport,
    context,
    buildArgs: buildArgs(values["build-arg"]),
    tags: values.tag ?? [],
  };
  if (values.file !== undefined) options.dockerfile = values.file;
  if (values.target !== undefined) options.target = values.target;
  if (values["skip-run"]) options.skipRun = true;
  const labels = keyValues(values.label, "--label");
  if (labels) options.labels = labels;
  if (values.platform !== undefined) options.platforms = values.platform.split(",").map((p) => platformFlag(p.trim()) as Platform);
  const compression = compressionFlag(values.compression);
  if (compression) options.compression = compression;
  const level = intFlag(values["compression-level"], "--compression-level", 0, 22);
  if (level !== undefined) options.compressionLevel = level;
  const epoch = sourceDateEpoch();
  if (epoch !== undefined) options.sourceDateEpoch = epoch;
  const { buildDockerfile } = await import("../../index.js");
  const result = await buildDockerfile(options);
  finish();
  for (const written of result.written) process.stdout.write(`${written.digest} ${written.destination}\n`);
  await writeDigestFile(values["digest-file"], result.digest);
  return 0;
}
