/** Child processes for kill and concurrency tests: an ocify run that can be signalled, and a pid known to be dead. */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { ocifyBin, repoRoot } from "./cli.js";

/** A running `ocify` whose output is collected; `done` settles with its exit code (128 + n when killed by signal n). */
export interface RunningOcify {
  child: ChildProcess;
  done: Promise<{ code: number; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Start `ocify ARGS` without waiting for it. */
export function startOcify(args: string[], env: NodeJS.ProcessEnv = {}): RunningOcify {
  const child = spawn(process.execPath, [ocifyBin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<{ code: number; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    child.on("close", (code, signal) => resolve({ code: code ?? 128 + (signal === "SIGKILL" ? 9 : 0), signal, stdout, stderr }));
  });
  return { child, done };
}

/** The pid of a process that has exited (and been reaped): what a temp file of a killed run names. */
export function deadPid(): number {
  const result = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(result.stdout);
}

/** Resolve once `check` is true (polled every few ms), or reject after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
