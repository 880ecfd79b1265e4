/** Run the real `ocify` CLI in a child process, as users do, and report its exit code, output and peak RSS. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";

/** The repository root (dist/test-support/../..). */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const ocifyBin = join(repoRoot, "bin", "ocify.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Peak resident set size of the ocify process, in MiB. */
  maxRssMiB: number;
}

let rssHook: string | undefined;
function rssHookPath(): string {
  if (!rssHook) {
    const dir = mkdtempSync(join(tmpdir(), "ocify-rss-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    rssHook = join(dir, "rss-hook.mjs");
    // Preloaded into the child: on exit, write the process's peak RSS (KiB) where the parent asked.
    writeFileSync(
      rssHook,
      'import { writeFileSync } from "node:fs";\nprocess.on("exit", () => { if (process.env.OCIFY_RSS_FILE) writeFileSync(process.env.OCIFY_RSS_FILE, String(process.resourceUsage().maxRSS)); });\n',
    );
  }
  return rssHook;
}

/**
 * Run `ocify ARGS` with extra environment; never throws on an ordinary non-zero exit. An internal error
 * (exit 70: an error ocify did not expect, a promise rejected with no handler, an exception nothing
 * caught) is a defect whatever the test checks, so it throws, unless `allowInternalError` is set.
 */
export async function runOcify(
  args: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    timeoutMs?: number;
    allowInternalError?: boolean;
    input?: string;
    stdin?: Readable;
  } = {},
): Promise<CliResult> {
  const result = await runOcifyProcess(args, options);
  if (!options.allowInternalError && (result.code === 70 || /^ocify: internal error/m.test(result.stderr))) {
    throw new Error(`ocify ${args.join(" ")}: internal error (exit ${result.code}):\n${result.stderr}`);
  }
  return result;
}

async function runOcifyProcess(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string; stdin?: Readable },
): Promise<CliResult> {
  const rssDir = mkdtempSync(join(tmpdir(), "ocify-rss-out-"));
  const rssFile = join(rssDir, "rss");
  try {
    const child = spawn(process.execPath, ["--import", rssHookPath(), ocifyBin, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env, OCIFY_RSS_FILE: rssFile },
      stdio: ["pipe", "pipe", "pipe"],
    });
    // What the child does not read (it failed first) is dropped: its exit code and stderr tell.
    child.stdin.on("error", () => {});
    if (options.stdin) pipeline(options.stdin, child.stdin).catch(() => options.stdin?.destroy());
    else child.stdin.end(options.input);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 300_000);
    const code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 128)));
    clearTimeout(timer);
    let maxRssMiB = Number.NaN;
    try {
      maxRssMiB = Number(readFileSync(rssFile, "utf8")) / 1024;
    } catch {}
    return { code, stdout, stderr, maxRssMiB };
  } finally {
    rmSync(rssDir, { recursive: true, force: true });
  }
}

/** Run a command and capture its output (for skopeo, umoci, docker); never throws on a non-zero exit. */
export async function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(command, args, { env: { ...process.env, ...options.env }, cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c) => resolve(c ?? 128));
  });
  return { code, stdout, stderr };
}

/** Like run(), but throws with the command's stderr when it fails. */
export async function runOk(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** Words that tell a reader something went wrong; progress lines never contain them. */
const alarming = /error|fail|reject|exception|warn|internal|unhandled|^\s+at |node\.js v/i;

/** Exactly one error line, the last one, matching `pattern`; exit `code`; no other line reads as an error. */
export function assertOneErrorLine(result: CliResult, pattern: RegExp, label: string, code = 1): void {
  const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
  const errors = lines.filter((line) => line.startsWith("ocify:"));
  assert.equal(result.code, code, `${label}: exit ${result.code}, expected ${code}:\n${result.stderr}`);
  assert.equal(errors.length, 1, `${label}: one error line:\n${result.stderr}`);
  assert.equal(lines.at(-1), errors[0], `${label}: the error line comes last:\n${result.stderr}`);
  assert.match(errors[0] as string, pattern, label);
  const others = lines.slice(0, -1).filter((line) => alarming.test(line));
  assert.deepEqual(others, [], `${label}: nothing else reads as an error:\n${result.stderr}`);
  assert.equal(result.stdout, "", `${label}: no digest printed`);
}
