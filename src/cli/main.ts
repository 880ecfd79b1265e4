/** The `ocify` command: argv → command; expected failures → one line on stderr. Commands load lazily. */
import { readFileSync } from "node:fs";
import { fromSystemError, InterruptedError, OcifyError, removeLiveTempsSync, UsageError } from "../index.js";
import { endProgress } from "./progress-view.js";

const commands: Record<string, () => Promise<{ run(argv: string[], signal: AbortSignal): Promise<number> }>> = {
  build: () => import("./commands/build.js"),
  copy: () => import("./commands/copy.js"),
  inspect: () => import("./commands/inspect.js"),
  import: () => import("./commands/import.js"),
  login: () => import("./commands/login.js"),
  logout: () => import("./commands/logout.js"),
  ls: () => import("./commands/ls.js"),
  digest: () => import("./commands/digest.js"),
  tag: () => import("./commands/tag.js"),
  delete: () => import("./commands/delete.js"),
  attach: () => import("./commands/attach.js"),
  cache: () => import("./commands/cache.js"),
};

const usage = `Usage: ocify COMMAND [OPTIONS]

Build, push, pull and convert OCI / Docker images without a Docker daemon.

Commands:
  build     build an image from a base and local files; push it or write an archive
  import    make an image from a root filesystem (directory or tarball)
  copy      copy an image between registries, OCI layouts and archives
  inspect   show an image's manifest, platforms, config and layers
  login     check and store credentials for a registry (as docker login does)
  logout    remove a registry's stored credentials
  ls        list a repository's tags
  digest    print the manifest digest an image reference resolves to
  tag       put an image's manifest under another tag (no blob moves)
  delete    delete a manifest by digest, where the registry allows it
  attach    attach files (an SBOM) to an image as an OCI 1.1 referrer
  cache     show what the cache holds (info), or shrink it (prune)

Image references (skopeo's syntax):
  docker://HOST/REPO:TAG or HOST/REPO:TAG   a registry
  docker-archive:FILE[:NAME:TAG]            a docker save / docker load tarball
  oci:DIR[:TAG]                             an OCI image layout directory
  oci-archive:FILE[:TAG]                    a tarball of an OCI image layout

Run 'ocify COMMAND --help' for a command's options.
Options: --version, --help`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** Run the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-v" || name === "version") {
    process.stdout.write(`ocify ${version()}\n`);
    return 0;
  }
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${usage}\n`);
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => interrupt(controller, signal);
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    if (!load) throw new UsageError(`unknown command "${name}"`, { hint: "run ocify --help" });
    const command = await load();
    const code = await command.run(rest, controller.signal);
    // A signal the command did not notice (it was finishing) still ends the run as interrupted.
    return controller.signal.aborted ? report(controller.signal.reason) : code;
  } catch (error) {
    return report(controller.signal.aborted ? controller.signal.reason : error);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

/** How long a run stopped by a signal may take to clean up before it is made to exit. */
const cleanupGraceMs = 10_000;

/**
 * The first SIGINT/SIGTERM aborts the run (its writes stop, temp files go, upload sessions are
 * cancelled); a second one, or a cleanup taking longer than the grace period, exits at once after
 * removing this process's temp files.
 */
function interrupt(controller: AbortController, signal: NodeJS.Signals): void {
  const leave = (): void => {
    removeLiveTempsSync();
    process.exit(report(controller.signal.reason));
  };
  if (controller.signal.aborted) {
    leave();
    return;
  }
  controller.abort(new InterruptedError(signal));
  setTimeout(leave, cleanupGraceMs).unref();
}

/**
 * The flags that set the library's options. The library names an option in a message as `name` or
 * `name: value` (quoted with backticks); on the command line the user set a flag, so the message names it.
 */
const flagsOfOptions: Record<string, string> = {
  tags: "-t",
  layers: "--layer",
  platformLayers: "--layer-for",
  platforms: "--platform",
  platform: "--platform",
  format: "--format",
  annotations: "--annotation",
  compression: "--compression",
  compressionLevel: "--compression-level",
  chown: "--chown",
  cacheDir: "--cache-dir",
  jobs: "--jobs",
  all: "--all",
  fetchForeignLayers: "--fetch-foreign-layers",
  insecureRegistries: "--insecure-registry",
  credentials: "--creds USER --password-stdin",
  authFile: "--authfile",
  gzipEngine: "OCIFY_GZIP",
  "config.entrypoint": "--entrypoint",
  "config.cmd": "--cmd",
  "config.env": "--env",
  "config.workdir": "--workdir",
  "config.user": "--user",
  "config.expose": "--expose",
  "config.volumes": "--volume",
  "config.labels": "--label",
  uploadChunkSize: "--chunk-size",
  "decompression.maxSize": "--max-expanded-size",
  "decompression.ratio": "--max-expansion-ratio",
  "retry.retries": "--retry",
  "retry.maxTimeMs": "--retry-max-time",
  "timeouts.connectMs": "--connect-timeout",
  "timeouts.idleMs": "--idle-timeout",
};

/** A library message in the command line's words: each option it names becomes the flag that sets it. */
export function inFlagTerms(text: string): string {
  return text.replace(/`([A-Za-z.]+)(?:: ([^`]*))?`/g, (whole, name: string, value: string | undefined) => {
    const flag = flagsOfOptions[name];
    if (!flag) return whole;
    return value === undefined ? flag : `${flag} ${value}`;
  });
}

/** Print an error the way users see it: one line for expected failures, a stack for bugs. */
export function report(error: unknown): number {
  endProgress(); // the error line is the last one: work still winding down says nothing after it
  error = fromSystemError(error) ?? error;
  if (error instanceof InterruptedError) {
    process.stderr.write(`ocify: ${error.userMessage}\n`);
    return error.exitCode;
  }
  if (error instanceof OcifyError) {
    process.stderr.write(`ocify: ${inFlagTerms(error.userMessage)}\n`);
    if (process.env.OCIFY_DEBUG && error.cause) process.stderr.write(`${String((error.cause as Error).stack ?? error.cause)}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
  const parseError = error as { code?: string; message?: string };
  if (typeof parseError.code === "string" && parseError.code.startsWith("ERR_PARSE_ARGS")) {
    process.stderr.write(`ocify: ${parseError.message} (see --help)\n`);
    return 2;
  }
  process.stderr.write(`ocify: internal error, please report it with this output:\n${(error as Error)?.stack ?? String(error)}\n`);
  return 70;
}

/**
 * A promise that rejected with no handler, or an exception nothing caught, is a bug in ocify whatever the
 * error was (an expected failure is reported once, by main): say so as for any other bug and end at once
 * with exit 70, since the command's state is unknown. Node's default would print its own dump and exit 1,
 * which reads like an ordinary failure.
 */
function reportStray(what: string): (error: unknown) => void {
  return (error) => {
    process.stderr.write(
      `ocify: internal error (${what}), please report it with this output:\n${(error as Error)?.stack ?? String(error)}\n`,
    );
    process.exit(70);
  };
}
process.on("unhandledRejection", reportStray("a promise rejected with no handler"));
process.on("uncaughtException", reportStray("an exception nothing caught"));

/**
 * The event loop ran empty while the command had not finished: something awaited an event that can no
 * longer come. Node would end the process with exit 0 and nothing written (the entry is CommonJS, so
 * the pending top-level await below does not count), which reads as success: say it is a bug instead.
 */
function reportStalled(): void {
  if (settled) return;
  removeLiveTempsSync();
  endProgress();
  process.stderr.write("ocify: internal error (the command stopped unfinished, with nothing left to wait for), please report it\n");
  process.exit(70);
}

let settled = false;
process.on("beforeExit", reportStalled);
const code = await main(process.argv.slice(2));
settled = true;
process.exitCode = code;
