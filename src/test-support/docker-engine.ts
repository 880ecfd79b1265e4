/**
 * A private Docker engine for tests: Debian's containerd and dockerd started on sockets and data roots in a
 * temp dir (vfs storage, no iptables, no bridge), so `docker load` / `docker run` / `docker save` can check
 * what ocify writes and reads. Needs root; when it cannot start, startDockerEngine() returns undefined and
 * dockerEngineUnavailableReason() says why.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The result of one docker command. */
export interface DockerResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** A running private engine. */
export interface DockerEngine {
  /** `unix:///…/docker.sock`. */
  readonly host: string;
  /** Run the docker CLI against this engine. */
  docker(args: string[], input?: string | Buffer): Promise<DockerResult>;
  /** Stop dockerd and containerd and remove every directory they used. */
  stop(): Promise<void>;
}

let unavailableReason: string | undefined;

/** Why the last startDockerEngine() returned undefined. */
export function dockerEngineUnavailableReason(): string | undefined {
  return unavailableReason;
}

/**
 * The engine a test needs, or undefined with the test marked skipped. In CI (`CI=true`) a missing engine
 * is a failure, not a skip: CI installs everything the tests need, so an engine that cannot start there
 * is a defect to see, not a test to pass over.
 */
export function engineOrSkip(
  t: { skip(message?: string): void },
  engine: DockerEngine | undefined,
  needs = "the Docker engine",
): DockerEngine | undefined {
  if (engine) return engine;
  const why = `${needs} could not start: ${unavailableReason ?? "unknown reason"}`;
  if (process.env.CI === "true") throw new Error(`${why} (CI=true: a test that needs it fails rather than skips)`);
  t.skip(why);
  return undefined;
}

function which(command: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/local/sbin"];
  return dirs.map((d) => join(d, command)).find((p) => existsSync(p));
}

function logTail(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-3).join(" | ");
  } catch {
    return "";
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, input?: string | Buffer): Promise<DockerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), code: code ?? 1 }),
    );
    child.stdin.on("error", () => {}); // a command that does not read stdin closes it early
    child.stdin.end(input);
  });
}

async function terminate(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timedOut = await Promise.race([exited.then(() => false), sleep(timeoutMs, undefined, { ref: false }).then(() => true)]);
  if (timedOut) {
    child.kill("SIGKILL");
    await exited;
  }
}

function unmountUnder(dir: string): void {
  // Network namespaces and the like bind-mounted under exec-root must go before the directory can.
  let mounts: string[] = [];
  try {
    mounts = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((line) => line.split(" ")[4] ?? "")
      .filter((point) => point.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length);
  } catch {
    return;
  }
  for (const point of mounts) {
    try {
      execFileSync("umount", ["-l", point], { stdio: "ignore" });
    } catch {
      // already gone
    }
  }
}

/**
 * Start containerd and dockerd privately (temp sockets, data and exec roots, vfs storage, no iptables or
 * bridge) and wait until `docker version` answers; undefined (with dockerEngineUnavailableReason()) if not possible.
 */
export async function startDockerEngine(options: { timeoutMs?: number } = {}): Promise<DockerEngine | undefined> {
  unavailableReason = undefined;
  const fail = (reason: string): undefined => {
    unavailableReason = reason;
    return undefined;
  };
  const binaries = { containerd: which("containerd"), dockerd: which("dockerd"), docker: which("docker") };
  const missing = Object.entries(binaries)
    .filter(([, path]) => path === undefined)
    .map(([name]) => name);
  if (missing.length) return fail(`not installed: ${missing.join(", ")}`);
  if (process.getuid?.() !== 0) return fail("dockerd needs root and this process is not root");

  // Unix socket paths are limited to 108 bytes: keep the directory short.
  const dir = await mkdtemp(join(tmpdir(), "ocify-dk-"));
  const containerdSocket = join(dir, "containerd.sock");
  const dockerSocket = join(dir, "docker.sock");
  const host = `unix://${dockerSocket}`;
  await mkdir(join(dir, "cli"));
  await writeFile(
    join(dir, "containerd.toml"),
    `version = 2\nroot = "${dir}/containerd-root"\nstate = "${dir}/containerd-state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${containerdSocket}"\n`,
  );
  await writeFile(join(dir, "daemon.json"), "{}\n");
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: join(dir, "cli") };
  delete env.DOCKER_CONTEXT;

  const children: ChildProcess[] = [];
  const cleanupOnExit = () => {
    for (const child of children) child.kill("SIGKILL");
  };
  process.once("exit", cleanupOnExit);
  const stop = async (): Promise<void> => {
    process.removeListener("exit", cleanupOnExit);
    for (const child of [...children].reverse()) await terminate(child, 20_000);
    unmountUnder(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };

  const containerdLog = join(dir, "containerd.log");
  const dockerdLog = join(dir, "dockerd.log");
  const containerdFd = openSync(containerdLog, "a");
  const containerd = spawn(binaries.containerd!, ["--config", join(dir, "containerd.toml")], {
    stdio: ["ignore", containerdFd, containerdFd],
  });
  closeSync(containerdFd);
  children.push(containerd);
  const dockerdFd = openSync(dockerdLog, "a");
  const dockerd = spawn(
    binaries.dockerd!,
    [
      "--host",
      host,
      "--containerd",
      containerdSocket,
      "--data-root",
      join(dir, "data"),
      "--exec-root",
      join(dir, "exec"),
      "--pidfile",
      join(dir, "docker.pid"),
      "--config-file",
      join(dir, "daemon.json"),
      "--storage-driver=vfs",
      "--iptables=false",
      "--ip6tables=false",
      "--bridge=none",
    ],
    { stdio: ["ignore", dockerdFd, dockerdFd] },
  );
  closeSync(dockerdFd);
  children.push(dockerd);
  const spawnError = new Promise<string>((resolve) => {
    for (const child of children) child.once("error", (error) => resolve(error.message));
  });

  const docker = (args: string[], input?: string | Buffer) => run(binaries.docker!, ["-H", host, ...args], env, input);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const early = await Promise.race([spawnError, sleep(250).then(() => undefined)]);
    const exited = children.find((c) => c.exitCode !== null || c.signalCode !== null);
    if (early !== undefined || exited) {
      const reason = early ?? `${exited === containerd ? "containerd" : "dockerd"} exited (${exited?.exitCode ?? exited?.signalCode})`;
      const log = logTail(exited === containerd ? containerdLog : dockerdLog);
      await stop();
      return fail(`${reason}${log ? `: ${log}` : ""}`);
    }
    const probe = await docker(["version", "--format", "{{.Server.Version}}"]).catch(() => undefined);
    if (probe?.code === 0) break;
    if (Date.now() > deadline) {
      const log = logTail(dockerdLog);
      await stop();
      return fail(`dockerd did not answer within ${options.timeoutMs ?? 60_000} ms${log ? `: ${log}` : ""}`);
    }
  }
  return { host, docker, stop };
}
