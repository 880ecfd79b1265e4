/**
 * Running meta-ocify's tasks the way bitbake would, without bitbake: as a user who is not root, under a
 * fake root (Debian's pseudo, which bitbake itself uses, or fakeroot), with dash as /bin/sh and a PATH of
 * a few host tools plus ocify and node (bitbake's HOSTTOOLS directory: symlinks to the host's tools).
 */
import { spawn } from "node:child_process";
import { chownSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ExpandedClass, taskScript } from "./bitbake-class.js";
import { ocifyBin } from "./cli.js";

/** The unprivileged user tasks run as when the tests run as root. */
export const taskUser = { uid: 65534, gid: 65534 };

/** The host tools the class may use (oe-core's HOSTTOOLS has each), and ocify with node. */
export const hostTools = [
  "sh",
  "tar",
  "cat",
  "rm",
  "mkdir",
  "grep",
  "head",
  "wc",
  "expr",
  "find",
  "sort",
  "zstd",
  "cp",
  "ln",
  "chmod",
  "chown",
  "readlink",
];

function which(tool: string): string {
  const found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map((dir) => join(dir, tool)).find((path) => existsSync(path));
  if (!found) throw new Error(`host tool ${tool} not found`);
  return found;
}

/** A directory like bitbake's ${HOSTTOOLS_DIR}: sh is dash, plus the tools above, node and ocify. */
export function makeHostTools(dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const tool of hostTools) symlinkSync(tool === "sh" ? "/usr/bin/dash" : which(tool), join(dir, tool));
  symlinkSync(process.execPath, join(dir, "node"));
  symlinkSync(ocifyBin, join(dir, "ocify"));
  return dir;
}

/** Make `path` the task user's, when the tests run as root. */
export function giveToTaskUser(path: string): void {
  if (process.getuid?.() === 0) chownSync(path, taskUser.uid, taskUser.gid);
}

/** How a command gets its fake root. */
export type FakeRoot = { kind: "pseudo"; stateDir: string } | { kind: "fakeroot" };

/** The command line that runs `script` with dash under the fake root, as the task user. */
export function fakeRootCommand(fake: FakeRoot, script: string): { command: string; args: string[]; env: Record<string, string> } {
  const inner =
    fake.kind === "pseudo" ? ["/usr/bin/pseudo", "/usr/bin/dash", script] : ["/usr/bin/fakeroot", "--", "/usr/bin/dash", script];
  const env: Record<string, string> =
    fake.kind === "pseudo" ? { PSEUDO_PREFIX: "/usr", PSEUDO_LOCALSTATEDIR: fake.stateDir, PSEUDO_NOSYMLINKEXP: "1" } : {};
  if (process.getuid?.() !== 0) return { command: inner[0] as string, args: inner.slice(1), env };
  const asUser = ["--reuid", String(taskUser.uid), "--regid", String(taskUser.gid), "--clear-groups", "--"];
  return { command: "/usr/bin/setpriv", args: [...asUser, ...inner], env };
}

/** Run a shell script with dash under the fake root; resolves with its exit code and output. */
export async function runUnderFakeRoot(
  fake: FakeRoot,
  script: string,
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { command, args, env: fakeEnv } = fakeRootCommand(fake, script);
  // The fake root's own scripts get the host's PATH; the task script exports the task's (as bitbake's does).
  const child = spawn(command, args, {
    env: { ...env, PATH: process.env.PATH ?? "/usr/bin:/bin", ...fakeEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
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

/** Write the script of a task (the class's functions and `body`) to `path`, readable by the task user. */
export function writeTaskScript(
  path: string,
  expanded: ExpandedClass,
  task: string,
  body: string,
  cwd: string,
  exports: Record<string, string>,
): void {
  writeFileSync(path, taskScript(expanded, task, body, cwd, exports), { mode: 0o755 });
}
