#!/usr/bin/env node
// `npm run bench`: ocify against the tools a user would pick instead, on the same jobs, against a real
// registry on loopback. Scenarios run in interleaved rounds (every tool once per round, the order rotated),
// and each peer is compared with ocify round by round (paired ratios), because single timings on a shared
// 2-core machine swing several-fold. See docs/benchmarks.md.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { startLoad } from "./load.mjs";
import {
  BIG_TREE_SIZES,
  EDITED_LAYER,
  ensureBigLayerDir,
  ensureLayerTrees,
  ensureTree,
  LAYER_SIZES,
  TREE_SIZES,
  writeSmallDir,
} from "./tree.mjs";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const OCIFY = join(REPO, "bin", "ocify.js");
const TIME = "/usr/bin/time";

const HELP = `Usage: npm run bench -- [OPTIONS]

Times ocify and its peers on the same jobs against a local docker-registry, in interleaved rounds.

  --rounds N      rounds (default 3; 1 with --quick)
  --quick         small trees (~30 MiB, ~500 files; 10 layers of ~7 MiB; 5,000 files), 1 round, peers
                  only with --peers: a smoke test
  --scenarios L   which groups, comma-separated (default all): tree (cold, rebuild, rebuild-small, pull of
                  the 1 GiB tree), fresh (the tree built on a machine with an empty cache, from the
                  registry cache; runs in the tree's rounds), remote (a 10-layer image behind the shaping
                  proxy: cold, rebuild, pull), big (300,000 small files: cold, rebuild)
  --load          run a CPU hog at a lower priority during every measured command (ocify's and the peers')
  --load-hogs N   how many hogs (default 1), each spinning on one core
  --load-nice N   their niceness (default 10)
  --rtt MS        the shaping proxy's added round-trip time (default 40)
  --bandwidth MB  its bandwidth per connection and direction, in MB/s (10^6 bytes; default 20)
  --peers         with --quick: measure the peers too
  --tools LIST    only these, comma-separated: ocify, umoci (skopeo+umoci), buildah, containerify,
                  skopeo (the pull peer), pigz, curl (the machine's yardsticks)
  --json FILE     write every measurement (and the summary) to FILE
  --seed N        tree seed (default 1)
  --tree-dir DIR  where the generated tree is kept between runs (default .bench/tree-full or tree-quick)
  --big-layer GIB also build + push one layer of a GIB GiB file once, cold, for its peak RSS (kept in
                  .bench/big-GIBg; needs ~2.5x GIB of free disk while it runs)
  -h, --help

Exit status: 1 when an ocify command failed, or (not with --quick) a target was missed.`;

const ALL_TOOLS = ["ocify", "umoci", "buildah", "containerify", "skopeo", "pigz", "curl"];
const LABEL = {
  ocify: "ocify",
  umoci: "skopeo + umoci",
  buildah: "buildah (vfs)",
  containerify: "containerify",
  skopeo: "skopeo",
  pigz: "yardstick: tar, pigz -p2 -6, sha256sum",
  curl: "yardstick: curl upload, POST + PUT",
};

// ---------------------------------------------------------------------------------------------- options

let options;
try {
  options = parseArgs({
    options: {
      rounds: { type: "string" },
      quick: { type: "boolean", default: false },
      peers: { type: "boolean", default: false },
      tools: { type: "string" },
      json: { type: "string" },
      seed: { type: "string", default: "1" },
      "tree-dir": { type: "string" },
      "big-layer": { type: "string" },
      scenarios: { type: "string", default: "tree,fresh,remote,big" },
      load: { type: "boolean", default: false },
      "load-hogs": { type: "string", default: "1" },
      "load-nice": { type: "string", default: "10" },
      rtt: { type: "string", default: "40" },
      bandwidth: { type: "string", default: "20" },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
} catch (error) {
  console.error(`bench: ${error.message}\n\n${HELP}`);
  process.exit(2);
}
if (options.help) {
  console.log(HELP);
  process.exit(0);
}
const quick = options.quick;
const rounds = Number(options.rounds ?? (quick ? 1 : 3));
const seed = Number(options.seed);
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(seed)) {
  console.error("bench: --rounds and --seed take whole numbers (rounds ≥ 1)");
  process.exit(2);
}
const tools = options.tools
  ? options.tools.split(",").map((t) => t.trim())
  : quick && !options.peers
    ? ["ocify", "pigz", "curl"]
    : ALL_TOOLS;
for (const tool of tools) {
  if (!ALL_TOOLS.includes(tool)) {
    console.error(`bench: unknown tool '${tool}' (known: ${ALL_TOOLS.join(", ")})`);
    process.exit(2);
  }
}
const bigLayerGiB = options["big-layer"] === undefined ? 0 : Number(options["big-layer"]);
if (!Number.isInteger(bigLayerGiB) || bigLayerGiB < 0) {
  console.error("bench: --big-layer takes a whole number of GiB");
  process.exit(2);
}
const commandTimeoutMs = (quick ? 180 : 1800) * 1000;
const GROUPS = ["tree", "fresh", "remote", "big"];
const groups = options.scenarios.split(",").map((g) => g.trim());
for (const group of groups) {
  if (!GROUPS.includes(group)) {
    console.error(`bench: unknown scenario group '${group}' (known: ${GROUPS.join(", ")})`);
    process.exit(2);
  }
}
if (groups.includes("fresh") && !groups.includes("tree")) {
  console.error("bench: --scenarios fresh runs in the tree's rounds: add tree");
  process.exit(2);
}
const load = { hogs: options.load ? Number(options["load-hogs"]) : 0, nice: Number(options["load-nice"]) };
const shaping = { rttMs: Number(options.rtt), bytesPerSecond: Number(options.bandwidth) * 1e6 };
if (
  !Number.isInteger(load.hogs) ||
  load.hogs < 0 ||
  !Number.isInteger(load.nice) ||
  load.nice < -20 ||
  load.nice > 19 ||
  !(shaping.rttMs >= 0) ||
  !(shaping.bytesPerSecond >= 0)
) {
  console.error("bench: --load-hogs takes a count, --load-nice -20..19, --rtt and --bandwidth numbers ≥ 0");
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------- logging

const started = Date.now();
function log(message) {
  const seconds = ((Date.now() - started) / 1000).toFixed(0).padStart(5);
  process.stderr.write(`[${seconds} s] ${message}\n`);
}

function which(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).status === 0;
}

function versionOf(command, args) {
  const result = spawnSync(command, args, { encoding: "utf8", timeout: 20_000 });
  return `${result.stdout ?? ""}${result.stderr ?? ""}`.trim().split("\n")[0] ?? "";
}

// ---------------------------------------------------------------------------------------------- cleanup

const cleanups = [];
const children = new Set();
let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    for (const child of children) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }
    while (cleanups.length > 0) {
      try {
        await cleanups.pop()();
      } catch (error) {
        log(`cleanup: ${error.message}`);
      }
    }
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(signal, () => {
    log(`${signal}: stopping, cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------------- measuring

const haveTime = existsSync(TIME);

/**
 * Run one process under /usr/bin/time and return its wall seconds (measured here), user and sys CPU seconds,
 * peak RSS in KiB and the bytes it read from disk rather than from the page cache (the kernel's accounting
 * of it and every descendant it waited for).
 */
function measure(command, args, { env = {}, cwd = REPO, timeoutMs = commandTimeoutMs } = {}) {
  return new Promise((resolve) => {
    const timeFile = join(work, `time-${process.hrtime.bigint()}`);
    const argv = haveTime ? [TIME, "-f", "%e %U %S %M %I", "-o", timeFile, command, ...args] : [command, ...args];
    const begin = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), {
      cwd,
      env: { ...process.env, TMPDIR: join(work, "tmp"), ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group, so Ctrl-C or a timeout ends the whole pipeline
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout = (stdout + d).slice(-65536);
    });
    child.stderr.on("data", (d) => {
      stderr = (stderr + d).slice(-65536);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }, timeoutMs);
    const finish = (code, spawnError) => {
      clearTimeout(timer);
      children.delete(child);
      const wall = Number(process.hrtime.bigint() - begin) / 1e9;
      let user = null;
      let sys = null;
      let rssKiB = null;
      let diskReadMiB = null;
      if (haveTime && existsSync(timeFile)) {
        const lines = readFileSync(timeFile, "utf8").trim().split("\n");
        const fields = (lines.at(-1) ?? "").split(" ").map(Number);
        if (fields.length === 5 && fields.every(Number.isFinite)) {
          [, user, sys, rssKiB] = fields;
          diskReadMiB = (fields[4] * 512) / 1048576; // %I counts 512-byte blocks
        }
        // time(1) reports the command's own exit status as "Command exited with non-zero status N".
        rmSync(timeFile, { force: true });
      }
      const ok = code === 0 && !timedOut && !spawnError;
      const reason = spawnError ? spawnError.message : timedOut ? `timed out after ${timeoutMs / 1000} s` : `exit ${code}`;
      resolve({ ok, code, wall, user, sys, rssKiB, diskReadMiB, stdout, stderr, reason, command: [command, ...args].join(" ") });
    };
    child.once("error", (error) => finish(-1, error));
    child.once("close", (code) => finish(code ?? 128));
  });
}

class StepError extends Error {}

/** A tool's job as a sequence of processes: times add up, peak RSS is the largest of them. */
function newJob() {
  const job = { ok: true, wall: 0, user: 0, sys: 0, rssKiB: 0, diskReadMiB: 0, cpuKnown: haveTime, steps: [] };
  job.step = async (command, args, opts) => {
    const r = await measure(command, args, opts);
    job.steps.push({ command: r.command, ok: r.ok, wall: r.wall, user: r.user, sys: r.sys, rssKiB: r.rssKiB, diskReadMiB: r.diskReadMiB });
    job.wall += r.wall;
    if (r.user === null) job.cpuKnown = false;
    job.user += r.user ?? 0;
    job.sys += r.sys ?? 0;
    job.rssKiB = Math.max(job.rssKiB, r.rssKiB ?? 0);
    job.diskReadMiB += r.diskReadMiB ?? 0;
    if (!r.ok) {
      const tail = (r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ").slice(0, 400);
      throw new StepError(`${basename(command)} ${args[0] ?? ""}: ${r.reason}: ${tail}`);
    }
    return r;
  };
  return job;
}

const results = [];

/**
 * Run `fn(job)` as one measured attempt of `tool` in `scenario`, record and print it. The disks are made
 * quiet first (`sync`, not measured): what the previous tool wrote and the kernel has not yet written
 * out must not be written during this one's time.
 */
async function attempt(round, scenario, tool, fn) {
  spawnSync("sync");
  const job = newJob();
  let error;
  const stopLoad = await startLoad(load, children);
  try {
    const extra = await fn(job);
    Object.assign(job, extra ?? {});
  } catch (e) {
    job.ok = false;
    error = e instanceof StepError ? e.message : String(e?.stack ?? e);
  } finally {
    await stopLoad();
  }
  const record = {
    round,
    scenario,
    tool,
    ok: job.ok,
    wall: job.wall,
    cpu: job.cpuKnown ? job.user + job.sys : null,
    user: job.cpuKnown ? job.user : null,
    sys: job.cpuKnown ? job.sys : null,
    rssMiB: job.cpuKnown ? job.rssKiB / 1024 : null,
    // What a run had to read back from disk (inputs paged out): a cause to rule in or out when a time stands apart.
    diskReadMiB: job.cpuKnown ? job.diskReadMiB : null,
    steps: job.steps,
    ...(error ? { error } : {}),
    ...(job.pushed ? { pushed: job.pushed } : {}),
    ...(job.digest ? { digest: job.digest } : {}),
  };
  results.push(record);
  const figures = record.ok
    ? `${record.wall.toFixed(2).padStart(7)} s  cpu ${fmt(record.cpu, 1).padStart(6)} s  rss ${fmt(record.rssMiB, 0).padStart(4)} MiB${
        !record.pushed
          ? ""
          : record.pushed.layers === null
            ? `  archive ${(record.pushed.bytes / 1048576).toFixed(0)} MiB`
            : `  pushed ${(record.pushed.bytes / 1048576).toFixed(0)} MiB in ${record.pushed.layers} layer(s)`
      }${record.diskReadMiB >= 1 ? `  read ${record.diskReadMiB.toFixed(0)} MiB from disk` : ""}`
    : `FAILED: ${error}`;
  log(`round ${round}/${rounds} ${scenario.padEnd(14)} ${LABEL[tool].padEnd(40)} ${figures}`);
  return record;
}

function fmt(value, digits) {
  return value === null || value === undefined || Number.isNaN(value) ? "?" : value.toFixed(digits);
}

// ---------------------------------------------------------------------------------------------- setup

const work = mkdtempSync(join(tmpdir(), "ocify-bench-"));
cleanups.push(() => rmSync(work, { recursive: true, force: true }));
mkdirSync(join(work, "tmp"));

/** What every scenario shares: the registry starter, the base image, the peers' state, the yardstick's blob. */
const env = { unavailable: {}, versions: {} };

/** Check the tools, load the test support, make the base image, install containerify. */
async function setup() {
  const missing = [];
  if (!haveTime) missing.push("time (CPU and RSS are not measured without /usr/bin/time)");
  for (const [command, needed] of [
    ["docker-registry", true],
    ["skopeo", true],
    ["umoci", tools.includes("umoci")],
    ["buildah", tools.includes("buildah")],
    ["pigz", tools.includes("pigz") || tools.includes("curl")],
    ["curl", tools.includes("curl")],
  ]) {
    if (needed && !which(command)) missing.push(command);
  }
  if (missing.length > 0)
    log(`missing: ${missing.join(", ")}; install with: apt-get install -y ${missing.map((m) => m.split(" ")[0]).join(" ")}`);
  for (const command of ["docker-registry", "skopeo"]) {
    if (!which(command)) throw new Error(`${command} is required (apt-get install -y ${command})`);
  }
  for (const [tool, command] of [
    ["umoci", "umoci"],
    ["buildah", "buildah"],
    ["pigz", "pigz"],
    ["curl", "curl"],
  ]) {
    if (tools.includes(tool) && !which(command)) env.unavailable[tool] = `${command} is not installed`;
  }
  if (tools.includes("curl") && !which("pigz")) env.unavailable.curl = "pigz (to make the blob) is not installed";

  const testSupport = join(REPO, "dist", "test-support");
  if (!existsSync(join(testSupport, "base-image.js"))) throw new Error("dist/test-support/base-image.js is missing: run `npm run build`");
  const { writeBaseImageLayout } = await import(pathToFileURL(join(testSupport, "base-image.js")).href);
  env.startRegistry = existsSync(join(testSupport, "registry.js"))
    ? (await import(pathToFileURL(join(testSupport, "registry.js")).href)).startRegistry
    : (await import("./registry.mjs")).startRegistry;
  if (groups.includes("remote")) {
    if (!existsSync(join(testSupport, "shaping-proxy.js")))
      throw new Error("dist/test-support/shaping-proxy.js is missing: run `npm run build`");
    env.startShapingProxy = (await import(pathToFileURL(join(testSupport, "shaping-proxy.js")).href)).startShapingProxy;
  }
  // Base image (generated), pushed to each round's fresh registry.
  env.baseLayout = join(work, "base");
  writeBaseImageLayout(env.baseLayout, "latest");
  await installContainerify();
  env.cacheRepo = spawnSync(process.execPath, [OCIFY, "build", "--help"], { encoding: "utf8" }).stdout?.includes("--cache-repo") ?? false;
  if (groups.includes("fresh") && !env.cacheRepo) log("fresh machine: not measured: this ocify has no `build --cache-repo`");
}

/** containerify, installed into a temp prefix with npm's ordinary client. */
async function installContainerify() {
  if (!tools.includes("containerify")) return;
  const prefix = join(work, "containerify");
  log("installing containerify into a temp dir (npm install --prefix)");
  const r = await measure("npm", ["install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", "containerify"], {
    timeoutMs: 300_000,
  });
  const pkgPath = join(prefix, "node_modules", "containerify", "package.json");
  if (r.ok && existsSync(pkgPath)) {
    const pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
    const bin = typeof pkg.bin === "string" ? pkg.bin : pkg.bin?.containerify;
    env.containerifyBin = join(prefix, "node_modules", "containerify", bin);
    env.versions.containerify = `${pkg.version} (engines: node ${pkg.engines?.node ?? "any"})`;
  } else {
    env.unavailable.containerify = `npm install failed: ${(r.stderr || r.stdout).trim().split("\n").slice(-2).join(" ")}`;
  }
}

/** The upload yardstick's blob: as large as the tree gzipped (tar | pigz), uploaded as one PUT. */
async function makeYardstickBlob(treeDir, treeBytes) {
  if (!tools.includes("curl") || env.unavailable.curl) return;
  log("making the upload yardstick's blob (tar | pigz -6)");
  const path = join(work, "blob.gz");
  const r = await measure("sh", ["-c", 'tar -C "$1" -cf - . | pigz -p2 -6 > "$2"', "sh", treeDir, path]);
  if (r.ok) env.blob = { path, size: statSync(path).size, digest: `sha256:${await sha256File(path)}` };
  else env.unavailable.curl = `making the blob failed: ${r.stderr.trim()}`;
  if (env.blob) log(`blob: ${(env.blob.size / 1048576).toFixed(0)} MiB (tree gzip ratio ${(env.blob.size / treeBytes).toFixed(3)})`);
}

function recordVersions(machine) {
  for (const [tool, command, args] of [
    ["skopeo", "skopeo", ["--version"]],
    ["umoci", "umoci", ["--version"]],
    ["buildah", "buildah", ["--version"]],
    ["pigz", "pigz", ["--version"]],
    ["curl", "curl", ["--version"]],
    ["docker-registry", "docker-registry", ["--version"]],
  ]) {
    if (which(command)) machine.versions[tool] = versionOf(command, args);
  }
  Object.assign(machine.versions, env.versions);
  machine.versions.ocify = versionOf(process.execPath, [OCIFY, "--version"]);
}

/** A fresh registry holding only the base image; `stopRegistry` also stops it (and is a cleanup until then). */
async function registryWithBase() {
  const registry = await env.startRegistry();
  const stopRegistry = async () => {
    const at = cleanups.indexOf(stopRegistry);
    if (at >= 0) cleanups.splice(at, 1);
    await registry.stop();
  };
  cleanups.push(stopRegistry);
  const H = registry.host;
  const base = `${H}/base:latest`;
  const push = await measure("skopeo", [
    "--insecure-policy",
    "copy",
    "--quiet",
    "--dest-tls-verify=false",
    `oci:${env.baseLayout}:latest`,
    `docker://${base}`,
  ]);
  if (!push.ok) throw new Error(`pushing the base image failed: ${push.stderr}`);
  return { registry, stopRegistry, H, base };
}

/** The tools of `list` to run this round, in an order rotated from round to round. */
function ordered(list, round) {
  const active = list.filter((t) => tools.includes(t) && !env.unavailable[t]);
  const shift = (round - 1) % Math.max(1, active.length);
  return [...active.slice(shift), ...active.slice(0, shift)];
}

/** Record the tools that cannot run as not measured in each of their scenarios. */
function recordUnavailable() {
  for (const tool of Object.keys(env.unavailable)) {
    for (const [scenario, list] of Object.entries(scenarioTools)) {
      if (list.includes(tool)) results.push({ round: 0, scenario, tool, ok: false, skipped: true, error: env.unavailable[tool] });
    }
    log(`${LABEL[tool]}: not measured: ${env.unavailable[tool]}`);
  }
}

/** A round's context for the build jobs: one or more layer directories built onto the base, pushed to `repo`. */
function buildContext(round, where, roundDir, layers, repo, prefix) {
  return {
    round,
    H: where.H,
    url: where.url,
    base: where.base,
    layers,
    repo,
    prefix,
    roundDir,
    ocifyCache: join(roundDir, "ocify-cache"),
    buildah: ["--root", join(roundDir, "buildah-root"), "--runroot", join(roundDir, "buildah-run"), "--storage-driver", "vfs"],
  };
}

async function main() {
  const machine = machineInfo();
  log(`${machine.cpu}, ${machine.cpus} CPUs, ${machine.ramGiB} GiB RAM, Node ${machine.node}`);
  if (load.hogs > 0) log(`load: ${load.hogs} CPU hog(s) at nice ${load.nice} during every measured command`);
  await setup();
  recordVersions(machine);
  // `ocify --version`: whole-process start-up, median of 10 after a warm-up.
  if (tools.includes("ocify")) {
    await measure(process.execPath, [OCIFY, "--version"]);
    for (let i = 0; i < 10; i++) await attempt(0, "version", "ocify", (job) => job.step(process.execPath, [OCIFY, "--version"]));
  }
  recordUnavailable();
  const inputs = {};
  if (groups.includes("tree")) inputs.tree = await treeRounds();
  if (groups.includes("remote")) inputs.layers = await remoteRounds();
  if (groups.includes("big")) inputs.big = await bigTreeRounds();
  if (bigLayerGiB && tools.includes("ocify")) await bigLayerRun();

  const summary = summarize();
  const targets = checkTargets(summary);
  process.stdout.write(renderReport(machine, summary, targets, inputs));
  if (options.json) {
    const opts = { quick, rounds, seed, tools, groups, load, shaping };
    writeFileSync(
      options.json,
      `${JSON.stringify({ date: new Date().toISOString(), machine, options: opts, inputs, results, summary, targets }, null, 2)}\n`,
    );
    log(`wrote ${options.json}`);
  }
  if (results.some((r) => r.tool === "ocify" && !r.ok && !r.skipped)) {
    log("an ocify command failed (see FAILED lines above)");
    exitCode = 1;
  }
  if (!quick && targets.some((t) => t.status === "FAIL")) exitCode = 1;
}

/** The 1 GiB tree (one binary-like file and many text files) as one layer: cold, rebuild, small layer, fresh machine, pull. */
async function treeRounds() {
  // The tree, kept between runs (generating 1 GiB takes ~15 s); the edited file is reset on every start.
  const sizes = quick ? TREE_SIZES.quick : TREE_SIZES.full;
  const treeDir = options["tree-dir"] ?? join(REPO, ".bench", quick ? "tree-quick" : "tree-full");
  mkdirSync(dirname(treeDir), { recursive: true });
  const tree = ensureTree(treeDir, seed, sizes, log);
  cleanups.push(() => tree.restore());
  const small = { dir: join(work, "etc") };
  small.edited = writeSmallDir(small.dir, seed);
  small.original = readFileSync(small.edited);
  const treeBytes = sizes.bigBytes + sizes.smallBytes;
  log(`tree ${treeDir}: ${(treeBytes / 1048576).toFixed(0)} MiB, 1 binary-like file + ${sizes.smallFiles} small files`);
  await makeYardstickBlob(treeDir, treeBytes);
  for (let round = 1; round <= rounds; round++) {
    tree.restore();
    writeFileSync(small.edited, small.original);
    await treeRound(round, tree, small);
  }
  tree.restore();
  return { treeBytes, ...sizes, blobBytes: env.blob?.size };
}

async function treeRound(round, tree, small) {
  const roundDir = join(work, `round${round}`);
  mkdirSync(roundDir);
  const { registry, stopRegistry, H, base } = await registryWithBase();
  log(`round ${round}/${rounds}: registry ${H} holds ${base}`);
  const ctx = buildContext(round, { H, url: registry.url, base }, roundDir, [[tree.dir, "/app"]], "app", "");
  Object.assign(ctx, { containerifyBin: env.containerifyBin, blob: env.blob });
  for (const tool of ordered(scenarioTools.cold, round)) await attempt(round, "cold", tool, (job) => jobs.cold[tool](job, ctx));

  // One small file of the tree edited: content and size change.
  writeFileSync(tree.editedFile, `${readFileSync(tree.editedFile, "utf8")}edited in round ${round}\n`);
  for (const tool of ordered(scenarioTools.rebuild, round)) await attempt(round, "rebuild", tool, (job) => jobs.rebuild[tool](job, ctx));
  if (tools.includes("ocify")) await smallLayerRebuild(ctx, tree, small);
  if (tools.includes("ocify") && groups.includes("fresh") && env.cacheRepo) await freshMachine(ctx);
  // After the fresh machine, which must give the rebuild's digest: this edits the tree once more.
  if (tools.includes("ocify")) await splitTreeRebuild(ctx, tree);

  // Pull what ocify pushed (or, without ocify, what skopeo + umoci pushed) into a docker-archive.
  ctx.pullRepo = tools.includes("ocify") ? "app" : "app-umoci";
  for (const tool of ordered(scenarioTools.pull, round)) await attempt(round, "pull", tool, (job) => jobs.pull[tool](job, ctx));
  await stopRegistry();
  rmSync(roundDir, { recursive: true, force: true });
}

/**
 * The tree split into layers by `--split-layer` (one per entry two levels down: bin/x and each lib/pkgNN):
 * first the split image (not counted), then one more edit of the same file, which rebuilds and uploads the
 * one small layer that holds it.
 */
async function splitTreeRebuild(ctx, tree) {
  const { round, H } = ctx;
  const split = ["--split-layer", `${tree.dir}:/app`];
  const env = { OCIFY_CACHE_DIR: ctx.ocifyCache };
  const setupRun = await measure(process.execPath, ocifyBuildArgs(ctx, split, `${H}/app-parts:latest`), { env });
  if (!setupRun.ok) log(`round ${round}: the split build before the split rebuild failed: ${setupRun.stderr.trim()}`);
  writeFileSync(tree.editedFile, `${readFileSync(tree.editedFile, "utf8")}edited again in round ${round}\n`);
  await attempt(round, "rebuild-split", "ocify", async (job) => {
    await job.step(process.execPath, ocifyBuildArgs(ctx, split, `${H}/app-parts:latest`), { env });
    return { pushed: await pushedSize(ctx.url, "app-parts") };
  });
}

/** The edited file in a small layer of its own: first the two-layer image (not counted), then the edit. */
async function smallLayerRebuild(ctx, tree, small) {
  const { round, H } = ctx;
  const split = ["--layer", `${tree.dir}:/app`, "--layer", `${small.dir}:/app/etc`];
  const setupRun = await measure(process.execPath, ocifyBuildArgs(ctx, split, `${H}/app-split:latest`), {
    env: { OCIFY_CACHE_DIR: ctx.ocifyCache },
  });
  if (!setupRun.ok) log(`round ${round}: the two-layer build before the small-layer rebuild failed: ${setupRun.stderr.trim()}`);
  writeFileSync(small.edited, `${small.original}edited in round ${round}\n`);
  await attempt(round, "rebuild-small", "ocify", async (job) => {
    await job.step(process.execPath, ocifyBuildArgs(ctx, split, `${H}/app-split:latest`), { env: { OCIFY_CACHE_DIR: ctx.ocifyCache } });
    return { pushed: await pushedSize(ctx.url, "app-split") };
  });
}

/**
 * A CI machine that starts with an empty cache, building the tree the previous run built, with the registry
 * cache the previous run left (`--cache-repo`). The previous run is the rebuild's tree built once more with
 * the round's local cache and `--cache-repo` (measured on its own: what exporting costs when nothing
 * changed). The fresh build must give the rebuild's digest.
 */
async function freshMachine(ctx) {
  const { round, H } = ctx;
  const cacheRepo = ["--cache-repo", `${H}/app-cache`];
  const args = [...ocifyBuildArgs(ctx, ["--layer", `${ctx.layers[0][0]}:/app`], `${H}/app:latest`), ...cacheRepo];
  const rebuilt = results.find((r) => r.scenario === "rebuild" && r.tool === "ocify" && r.round === round && r.ok);
  await attempt(round, "cache-export", "ocify", async (job) => {
    await job.step(process.execPath, args, { env: { OCIFY_CACHE_DIR: ctx.ocifyCache } });
  });
  const freshCache = join(ctx.roundDir, "ocify-fresh-cache");
  rmSync(freshCache, { recursive: true, force: true });
  try {
    await attempt(round, "fresh", "ocify", async (job) => {
      const r = await job.step(process.execPath, args, { env: { OCIFY_CACHE_DIR: freshCache } });
      const digest = r.stdout.trim().split(/\s+/)[0];
      if (rebuilt?.digest && rebuilt.digest !== digest)
        throw new StepError(`the fresh machine's build gave ${digest}, the rebuild of the same tree ${rebuilt.digest}`);
      return { digest, pushed: await pushedSize(ctx.url, "app") };
    });
  } finally {
    rmSync(freshCache, { recursive: true, force: true });
  }
}

/** A 10-layer image behind the shaping proxy: cold build + push, a one-file rebuild + push, a pull. */
async function remoteRounds() {
  const sizes = quick ? LAYER_SIZES.quick : LAYER_SIZES.full;
  const dir = join(REPO, ".bench", quick ? "layers-quick" : "layers-full");
  const trees = ensureLayerTrees(dir, seed, sizes, log);
  const restore = () => {
    for (const t of trees) t.restore();
  };
  cleanups.push(restore);
  const bytes = sizes.reduce((sum, [big, , small]) => sum + big + small, 0);
  const mbps = shaping.bytesPerSecond / 1e6;
  log(
    `remote: 10 layers, ${(bytes / 1048576).toFixed(0)} MiB in ${dir}; proxy: +${shaping.rttMs} ms RTT, ${mbps || "∞"} MB/s per connection`,
  );
  for (let round = 1; round <= rounds; round++) {
    restore();
    await remoteRound(round, trees);
  }
  restore();
  return { layerBytes: bytes, layers: sizes.length, rttMs: shaping.rttMs, bytesPerSecond: shaping.bytesPerSecond };
}

async function remoteRound(round, trees) {
  const roundDir = join(work, `remote${round}`);
  mkdirSync(roundDir);
  const { registry, stopRegistry } = await registryWithBase();
  const proxy = await env.startShapingProxy(registry.host, shaping);
  const stopProxy = () => proxy.stop();
  cleanups.push(stopProxy);
  try {
    const where = { H: proxy.host, url: registry.url, base: `${proxy.host}/base:latest` };
    const layers = trees.map((t, i) => [t.dir, `/app/l${i}`]);
    const ctx = buildContext(round, where, roundDir, layers, "multi", "remote-");
    log(`remote round ${round}/${rounds}: registry ${registry.host} behind ${proxy.host}`);
    for (const tool of ordered(scenarioTools["remote-cold"], round))
      await attempt(round, "remote-cold", tool, (job) => jobs.cold[tool](job, ctx));
    const edited = trees[EDITED_LAYER].editedFile;
    writeFileSync(edited, `${readFileSync(edited, "utf8")}edited in round ${round}\n`);
    for (const tool of ordered(scenarioTools["remote-rebuild"], round))
      await attempt(round, "remote-rebuild", tool, (job) => jobs.rebuild[tool](job, ctx));
    ctx.pullRepo = tools.includes("ocify") ? "multi" : "multi-umoci";
    for (const tool of ordered(scenarioTools["remote-pull"], round))
      await attempt(round, "remote-pull", tool, (job) => jobs.pull[tool](job, ctx));
    log(`remote round ${round}: ${proxy.stats.connections} connections through the proxy`);
  } finally {
    cleanups.splice(cleanups.indexOf(stopProxy), 1);
    await proxy.stop();
    await stopRegistry();
    rmSync(roundDir, { recursive: true, force: true });
  }
}

/** 300,000 small files (a node_modules, an SDK sysroot) as one layer: cold and a one-file rebuild. */
async function bigTreeRounds() {
  const sizes = quick ? BIG_TREE_SIZES.quick : BIG_TREE_SIZES.full;
  const dir = join(REPO, ".bench", quick ? "files-quick" : "files-300k");
  const tree = ensureTree(dir, seed, sizes, log);
  cleanups.push(() => tree.restore());
  log(`big tree ${dir}: ${sizes.smallFiles} files, ${(sizes.smallBytes / 1048576).toFixed(0)} MiB`);
  for (let round = 1; round <= rounds; round++) {
    tree.restore();
    // Every tool reads the whole tree: whichever went first would otherwise pay for the disk reads the
    // earlier groups' work caused (seen: ocify read 839 MiB from disk in round 1, the peer 115).
    log(`big tree: read into the page cache (${readWhole(tree.dir)} files)`);
    const roundDir = join(work, `files${round}`);
    mkdirSync(roundDir);
    const { registry, stopRegistry, H, base } = await registryWithBase();
    const ctx = buildContext(round, { H, url: registry.url, base }, roundDir, [[tree.dir, "/app"]], "files", "big-");
    ctx.containerifyBin = env.containerifyBin;
    for (const tool of ordered(scenarioTools["big-cold"], round))
      await attempt(round, "big-cold", tool, (job) => jobs.cold[tool](job, ctx));
    writeFileSync(tree.editedFile, `${readFileSync(tree.editedFile, "utf8")}edited in round ${round}\n`);
    for (const tool of ordered(scenarioTools["big-rebuild"], round)) {
      const record = await attempt(round, "big-rebuild", tool, (job) => jobs.rebuild[tool](job, ctx));
      if (tool === "ocify" && record.ok) record.statIndexBytes = statIndexBytes(ctx.ocifyCache);
    }
    await stopRegistry();
    rmSync(roundDir, { recursive: true, force: true });
  }
  tree.restore();
  return { files: sizes.smallFiles, bytes: sizes.smallBytes };
}

/** Read every file under `dir` once (into the page cache); returns how many there were. */
function readWhole(dir) {
  let files = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    readFileSync(join(entry.parentPath ?? entry.path, entry.name));
    files++;
  }
  return files;
}

/** The size of the stat indexes (`*.stat`) in an ocify cache: what a rebuild of the tree reads and holds. */
function statIndexBytes(cacheDir) {
  let total = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".stat")) total += statSync(path).size;
    }
  };
  if (existsSync(cacheDir)) walk(cacheDir);
  return total;
}

/** One layer of a big file, cold, once: its peak RSS must not grow with the layer. */
async function bigLayerRun() {
  const bigDir = ensureBigLayerDir(join(REPO, ".bench", `big-${bigLayerGiB}g`), seed, bigLayerGiB, log);
  const { registry, stopRegistry, H, base } = await registryWithBase();
  const cacheDir = join(work, "big-layer-cache");
  log(`big layer: ${bigLayerGiB} GiB to ${H}`);
  await attempt(1, "big-layer", "ocify", async (job) => {
    await job.step(process.execPath, [OCIFY, "build", "--from", base, "--layer", `${bigDir}:/data`, "-t", `${H}/big:latest`], {
      env: { OCIFY_CACHE_DIR: cacheDir },
    });
    return { pushed: await pushedSize(registry.url, "big") };
  });
  await stopRegistry();
  rmSync(cacheDir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------- the jobs

const scenarioTools = {
  cold: ["ocify", "umoci", "buildah", "containerify", "pigz", "curl"],
  rebuild: ["ocify", "umoci", "buildah", "containerify"],
  "rebuild-small": ["ocify"],
  "rebuild-split": ["ocify"],
  "cache-export": ["ocify"],
  fresh: ["ocify"],
  pull: ["ocify", "skopeo"],
  // Peers that make the same 10-layer image (buildah commits one layer, containerify takes one folder).
  "remote-cold": ["ocify", "umoci"],
  "remote-rebuild": ["ocify", "umoci"],
  "remote-pull": ["ocify", "skopeo"],
  "big-cold": ["ocify", "umoci", "buildah", "containerify"],
  "big-rebuild": ["ocify", "umoci", "buildah", "containerify"],
};

/** `--layer DIR:DEST` for each of the context's layers. */
function layerArgs(ctx) {
  return ctx.layers.flatMap(([dir, dest]) => ["--layer", `${dir}:${dest}`]);
}

function ocifyBuildArgs(ctx, layers, target) {
  return [OCIFY, "build", "--from", ctx.base, ...layers, "--entrypoint", '["/app/bin/x"]', "-t", target];
}

async function ocifyBuild(job, ctx) {
  const r = await job.step(process.execPath, ocifyBuildArgs(ctx, layerArgs(ctx), `${ctx.H}/${ctx.repo}:latest`), {
    env: { OCIFY_CACHE_DIR: ctx.ocifyCache },
  });
  return { digest: r.stdout.trim().split(/\s+/)[0], pushed: await pushedSize(ctx.url, ctx.repo) };
}

/** skopeo + umoci: pull the base into an OCI layout, add each directory as a layer, set the entrypoint, push. */
async function umociBuild(job, ctx) {
  const layout = join(ctx.roundDir, "umoci-layout");
  rmSync(layout, { recursive: true, force: true });
  try {
    await job.step("skopeo", [
      "--insecure-policy",
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      `docker://${ctx.base}`,
      `oci:${layout}:base`,
    ]);
    for (const [dir, dest] of ctx.layers) await job.step("umoci", ["insert", "--image", `${layout}:base`, dir, dest]);
    await job.step("umoci", ["config", "--image", `${layout}:base`, "--config.entrypoint", "/app/bin/x", "--tag", "app"]);
    await job.step("skopeo", [
      "--insecure-policy",
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      `oci:${layout}:app`,
      `docker://${ctx.H}/${ctx.repo}-umoci:latest`,
    ]);
  } finally {
    rmSync(layout, { recursive: true, force: true });
  }
  return { pushed: await pushedSize(ctx.url, `${ctx.repo}-umoci`) };
}

/** buildah with the vfs driver and its own storage: from, copy, config, commit, push. */
async function buildahBuild(job, ctx) {
  const b = ctx.buildah;
  const from = await job.step("buildah", [...b, "from", "--quiet", "--tls-verify=false", ctx.base]);
  const container = from.stdout.trim().split("\n").at(-1);
  try {
    for (const [dir, dest] of ctx.layers) await job.step("buildah", [...b, "copy", "--quiet", container, dir, dest]);
    await job.step("buildah", [...b, "config", "--entrypoint", '["/app/bin/x"]', container]);
    await job.step("buildah", [...b, "commit", "--quiet", container, `${ctx.repo}-buildah`]);
    await job.step("buildah", [
      ...b,
      "push",
      "--quiet",
      "--tls-verify=false",
      `${ctx.repo}-buildah`,
      `docker://${ctx.H}/${ctx.repo}-buildah:latest`,
    ]);
  } finally {
    await measure("buildah", [...b, "rm", container]); // not counted: housekeeping
  }
  return { pushed: await pushedSize(ctx.url, `${ctx.repo}-buildah`) };
}

/** containerify: base from the registry, the tree as custom content at /app, pushed back. */
async function containerifyBuild(job, ctx) {
  const [tree] = ctx.layers[0];
  const buildFolder = join(ctx.roundDir, "containerify-build");
  rmSync(buildFolder, { recursive: true, force: true });
  try {
    await job.step(process.execPath, [
      ctx.containerifyBin,
      "--registry",
      `${ctx.url}/v2/`,
      "--fromImage",
      "base:latest",
      "--toImage",
      `${ctx.repo}-containerify:latest`,
      "--folder",
      dirname(tree),
      "--customContent",
      `${basename(tree)}:/app`,
      "--entrypoint",
      "/app/bin/x",
      "--allowInsecureRegistries",
      "--allowNoPushAuth",
      "--buildFolder",
      buildFolder,
    ]);
  } finally {
    rmSync(buildFolder, { recursive: true, force: true });
  }
  return { pushed: await pushedSize(ctx.url, `${ctx.repo}-containerify`) };
}

const jobs = {
  cold: {
    ocify: async (job, ctx) => {
      rmSync(ctx.ocifyCache, { recursive: true, force: true });
      return ocifyBuild(job, ctx);
    },
    umoci: umociBuild,
    buildah: buildahBuild,
    containerify: containerifyBuild,
    pigz: async (job, ctx) => {
      await job.step("sh", ["-c", 'tar -C "$1" -cf - . | pigz -p2 -6 | sha256sum', "sh", ctx.layers[0][0]]);
    },
    curl: async (job, ctx) => {
      // POST opens an upload; one monolithic PUT with the digest closes it (distribution-spec end-4a, end-6).
      const script = `set -e
loc=$(curl -sSf -X POST -o /dev/null -D - "$1/v2/yardstick/blobs/uploads/" | tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')
case "$loc" in /*) loc="$1$loc";; esac
case "$loc" in *\\?*) sep='&';; *) sep='?';; esac
curl -sSf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$2" "$loc\${sep}digest=$3"`;
      await job.step("sh", ["-c", script, "sh", ctx.url, ctx.blob.path, ctx.blob.digest]);
      const head = await fetch(`${ctx.url}/v2/yardstick/blobs/${ctx.blob.digest}`, { method: "HEAD" });
      if (head.status !== 200) throw new StepError(`the uploaded blob is not in the registry (HEAD ${head.status})`);
      return { pushed: { layers: 1, bytes: ctx.blob.size } };
    },
  },
  rebuild: {
    ocify: async (job, ctx) => {
      const built = await ocifyBuild(job, ctx);
      const cold = results.find((r) => r.scenario === `${ctx.prefix}cold` && r.tool === "ocify" && r.round === ctx.round && r.ok);
      if (cold?.digest && cold.digest === built.digest)
        throw new StepError(`the rebuild gave the cold build's digest ${built.digest}: the edit was not picked up`);
      return built;
    },
    umoci: umociBuild,
    buildah: buildahBuild,
    containerify: containerifyBuild,
  },
  pull: {
    ocify: async (job, ctx) => {
      const out = join(ctx.roundDir, "pull-ocify.tar");
      const cache = join(ctx.roundDir, "ocify-pull-cache");
      try {
        await job.step(process.execPath, [OCIFY, "copy", `docker://${ctx.H}/${ctx.pullRepo}:latest`, `docker-archive:${out}:app:latest`], {
          env: { OCIFY_CACHE_DIR: cache },
        });
        return { pushed: { layers: null, bytes: statSync(out).size } };
      } finally {
        rmSync(out, { force: true });
        rmSync(cache, { recursive: true, force: true });
      }
    },
    skopeo: async (job, ctx) => {
      const out = join(ctx.roundDir, "pull-skopeo.tar");
      try {
        await job.step("skopeo", [
          "--insecure-policy",
          "copy",
          "--quiet",
          "--src-tls-verify=false",
          `docker://${ctx.H}/${ctx.pullRepo}:latest`,
          `docker-archive:${out}:app:latest`,
        ]);
        return { pushed: { layers: null, bytes: statSync(out).size } };
      } finally {
        rmSync(out, { force: true });
      }
    },
  },
};

/** Layers and bytes (layers + config) of what a tool pushed, read back from the registry. */
async function pushedSize(url, repository) {
  const response = await fetch(`${url}/v2/${repository}/manifests/latest`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" },
  });
  if (!response.ok) throw new StepError(`${repository}:latest is not in the registry after the push (HTTP ${response.status})`);
  const manifest = await response.json();
  const layers = manifest.layers ?? [];
  return { layers: layers.length, bytes: layers.reduce((sum, l) => sum + l.size, 0) + (manifest.config?.size ?? 0) };
}

function sha256File(path) {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on("data", (d) => hash.update(d))
      .on("end", () => resolve(hash.digest("hex")))
      .on("error", reject);
  });
}

// ---------------------------------------------------------------------------------------------- report

function median(values) {
  const sorted = values.filter((v) => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const SCENARIOS = [
  "version",
  "cold",
  "rebuild",
  "rebuild-small",
  "rebuild-split",
  "cache-export",
  "fresh",
  "pull",
  "remote-cold",
  "remote-rebuild",
  "remote-pull",
  "big-cold",
  "big-rebuild",
  "big-layer",
];

function summarize() {
  const rows = [];
  for (const scenario of SCENARIOS) {
    for (const tool of ALL_TOOLS) {
      const all = results.filter((r) => r.scenario === scenario && r.tool === tool);
      if (all.length === 0) continue;
      const ok = all.filter((r) => r.ok);
      const walls = ok.map((r) => r.wall);
      const ratios = [];
      for (const r of ok) {
        const ocify = results.find((o) => o.scenario === scenario && o.tool === "ocify" && o.round === r.round && o.ok);
        if (ocify && tool !== "ocify") ratios.push(r.wall / ocify.wall);
      }
      const pushed = median(ok.map((r) => r.pushed?.bytes ?? null));
      rows.push({
        scenario,
        tool,
        runs: all.filter((r) => !r.skipped).length,
        ok: ok.length,
        wallMedian: median(walls),
        wallMin: walls.length ? Math.min(...walls) : null,
        wallMax: walls.length ? Math.max(...walls) : null,
        cpuMedian: median(ok.map((r) => r.cpu)),
        rssPeakMiB: ok.some((r) => r.rssMiB !== null) ? Math.max(...ok.map((r) => r.rssMiB ?? 0)) : null,
        ratioToOcify: median(ratios),
        outputMiB: pushed === null ? null : pushed / 1048576,
        failure: ok.length < all.length ? (all.find((r) => !r.ok)?.error ?? "failed") : undefined,
      });
    }
  }
  return rows;
}

/** The median over rounds of ocify's wall time in `scenario` divided by `peer`'s in `peerScenario`, same round. */
function pairedRatio(scenario, peer, peerScenario = scenario) {
  const ratios = [];
  for (const ours of results.filter((r) => r.scenario === scenario && r.tool === "ocify" && r.ok)) {
    const theirs = results.find((r) => r.scenario === peerScenario && r.tool === peer && r.round === ours.round && r.ok);
    if (theirs) ratios.push(ours.wall / theirs.wall);
  }
  return median(ratios);
}

/** Of `peers`, the one measured in `scenario` with the lowest median wall time. */
function bestPeer(summary, scenario, peers) {
  const rows = summary.filter((r) => r.scenario === scenario && peers.includes(r.tool) && r.ok > 0 && r.wallMedian !== null);
  rows.sort((a, b) => a.wallMedian - b.wallMedian);
  return rows[0]?.tool;
}

/** A target on ocify's time relative to a peer's (or the best of several), paired by round. */
function relativeTarget(summary, targets, { scenario, peers, limit, name, peerScenario = scenario }) {
  const peer = bestPeer(summary, peerScenario, peers);
  const ratio = peer ? pairedRatio(scenario, peer, peerScenario) : null;
  if (ratio === null) {
    targets.push({
      name,
      status: "SKIP",
      detail: `needs ocify and ${peers.map((p) => LABEL[p]).join(" or ")} measured in the same rounds`,
    });
    return;
  }
  const against = peers.length > 1 ? `the best peer, ${LABEL[peer]}` : LABEL[peer];
  const of = peerScenario === scenario ? "" : ` (its ${peerScenario})`;
  targets.push({
    name,
    status: ratio <= limit ? "PASS" : "FAIL",
    value: ratio,
    detail: `ocify / ${against}${of} = ${ratio.toFixed(2)} (target ≤ ${limit})`,
  });
}

function checkTargets(summary) {
  const row = (scenario, tool) => summary.find((r) => r.scenario === scenario && r.tool === tool);
  const targets = [];
  const builders = ["umoci", "buildah", "containerify"];
  if (groups.includes("tree")) {
    relativeTarget(summary, targets, { scenario: "cold", peers: ["umoci"], limit: 0.8, name: "cold build + push" });
    relativeTarget(summary, targets, { scenario: "rebuild", peers: ["umoci"], limit: 0.2, name: "1-file rebuild, one layer" });
    registryShare(targets);
    splitShare(targets);
    const small = row("rebuild-small", "ocify");
    if (small?.wallMedian != null) {
      targets.push({
        name: "1-file rebuild, small own layer",
        status: small.wallMedian <= 0.5 ? "PASS" : "FAIL",
        value: small.wallMedian,
        detail: `median ${small.wallMedian.toFixed(2)} s (target ≤ 0.5 s)`,
      });
    } else targets.push({ name: "1-file rebuild, small own layer", status: "SKIP", detail: "not measured" });
    relativeTarget(summary, targets, { scenario: "pull", peers: ["skopeo"], limit: 0.7, name: "pull to docker-archive" });
  }
  if (groups.includes("fresh")) {
    if (!env.cacheRepo) targets.push({ name: "fresh machine, registry cache", status: "SKIP", detail: "this ocify has no --cache-repo" });
    else
      relativeTarget(summary, targets, {
        scenario: "fresh",
        peers: ["umoci"],
        peerScenario: "rebuild",
        limit: 0.25,
        name: "fresh machine, registry cache",
      });
  }
  if (groups.includes("remote")) {
    const shape = `+${shaping.rttMs} ms, ${shaping.bytesPerSecond / 1e6 || "∞"} MB/s`;
    relativeTarget(summary, targets, {
      scenario: "remote-cold",
      peers: ["umoci"],
      limit: 0.6,
      name: `remote (${shape}) cold push, 10 layers`,
    });
    relativeTarget(summary, targets, { scenario: "remote-rebuild", peers: ["umoci"], limit: 0.6, name: "remote rebuild push" });
    relativeTarget(summary, targets, { scenario: "remote-pull", peers: ["skopeo"], limit: 0.6, name: "remote pull" });
  }
  if (groups.includes("big")) {
    relativeTarget(summary, targets, { scenario: "big-cold", peers: builders, limit: 0.8, name: "big tree cold" });
    relativeTarget(summary, targets, { scenario: "big-rebuild", peers: builders, limit: 0.2, name: "big tree 1-file rebuild" });
    statIndexInfo(targets);
  }
  rssTarget(targets);
  const version = row("version", "ocify");
  if (version?.wallMedian != null) {
    targets.push({
      name: "ocify --version",
      status: version.wallMedian < 0.15 ? "PASS" : "FAIL",
      value: version.wallMedian,
      detail: `median ${(version.wallMedian * 1000).toFixed(0)} ms of 10 (target < 150 ms)`,
    });
  } else targets.push({ name: "ocify --version", status: "SKIP", detail: "not measured" });
  return targets;
}

/**
 * Not a target: how much of the one-layer rebuild's budget the registry takes by itself. A one-layer rebuild
 * uploads the whole layer again, and the curl yardstick is that upload with nothing else (same registry, same size).
 */
function registryShare(targets) {
  const floors = [];
  for (const upload of results.filter((r) => r.scenario === "cold" && r.tool === "curl" && r.ok)) {
    const peer = results.find((r) => r.scenario === "rebuild" && r.tool === "umoci" && r.round === upload.round && r.ok);
    if (peer) floors.push(upload.wall / peer.wall);
  }
  const floor = median(floors);
  if (floor === null) return;
  targets.push({
    name: "registry's share",
    status: "INFO",
    value: floor,
    detail: `a bare upload of the gzipped tree (curl) takes ${floor.toFixed(2)}× skopeo + umoci's rebuild (paired): the part of the one-layer rebuild's budget no client can save`,
  });
}

/** Not a target: the one-file rebuild when the user splits the tree (`--split-layer`), against skopeo + umoci's rebuild. */
function splitShare(targets) {
  const ratio = pairedRatio("rebuild-split", "umoci", "rebuild");
  if (ratio === null) return;
  targets.push({
    name: "1-file rebuild, tree split into layers",
    status: "INFO",
    value: ratio,
    detail: `with --split-layer: ocify / skopeo + umoci (its rebuild) = ${ratio.toFixed(2)} (paired)`,
  });
}

/** The stat index of the big tree: its size on disk per path, and the peak RSS of the rebuild that reads it. */
function statIndexInfo(targets) {
  const runs = results.filter((r) => r.scenario === "big-rebuild" && r.tool === "ocify" && r.ok && r.statIndexBytes);
  if (runs.length === 0) return;
  const files = (quick ? BIG_TREE_SIZES.quick : BIG_TREE_SIZES.full).smallFiles;
  const bytes = median(runs.map((r) => r.statIndexBytes));
  const rss = Math.max(...runs.map((r) => r.rssMiB ?? 0));
  targets.push({
    name: "big tree's stat index",
    status: rss < 200 ? "PASS" : "FAIL",
    value: bytes,
    detail: `${(bytes / 1048576).toFixed(1)} MiB on disk for ${files} files (${(bytes / files).toFixed(0)} bytes a file); the rebuild reading it peaked at ${rss.toFixed(0)} MiB RSS (target < 200 MiB)`,
  });
}

function rssTarget(targets) {
  const ocifyRuns = results.filter((r) => r.tool === "ocify" && r.ok && r.rssMiB !== null && r.rssMiB !== undefined);
  if (ocifyRuns.length === 0) {
    targets.push({ name: "peak RSS", status: "SKIP", detail: "no ocify run measured (needs /usr/bin/time)" });
    return;
  }
  const peak = Math.max(...ocifyRuns.map((r) => r.rssMiB));
  const where = ocifyRuns.find((r) => r.rssMiB === peak)?.scenario;
  const big = ocifyRuns.find((r) => r.scenario === "big-layer");
  targets.push({
    name: "peak RSS",
    status: peak < 200 ? "PASS" : "FAIL",
    value: peak,
    detail: `largest ocify process ${peak.toFixed(0)} MiB, in ${where}${
      big ? `; ${bigLayerGiB} GiB layer: ${big.rssMiB.toFixed(0)} MiB` : "; no big layer measured (--big-layer 4)"
    } (target < 200 MiB)`,
  });
}

function machineInfo() {
  let cpu = cpus()[0]?.model ?? "unknown CPU";
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpu;
  } catch {}
  const nproc = spawnSync("nproc", { encoding: "utf8" }).stdout?.trim();
  return { cpu, cpus: Number(nproc) || cpus().length, ramGiB: (totalmem() / 2 ** 30).toFixed(1), node: process.version, versions: {} };
}

function renderReport(machine, summary, targets, { tree, layers, big }) {
  const lines = [];
  const mib = (bytes) => (bytes / 1048576).toFixed(0);
  lines.push("");
  lines.push(`ocify benchmark, ${new Date().toISOString().slice(0, 10)}${quick ? " (--quick)" : ""}: ${rounds} round(s)`);
  lines.push(`machine: ${machine.cpu}, ${machine.cpus} CPUs, ${machine.ramGiB} GiB RAM, Node ${machine.node}`);
  if (load.hogs > 0) lines.push(`load: ${load.hogs} CPU hog(s) at nice ${load.nice} during every measured command`);
  if (tree)
    lines.push(
      `tree: ${mib(tree.treeBytes)} MiB (bin/x ${mib(tree.bigBytes)} MiB binary-like + ${tree.smallFiles} text files)${
        tree.blobBytes ? `, gzip -6 of its tar ${mib(tree.blobBytes)} MiB` : ""
      }`,
    );
  if (layers)
    lines.push(
      `remote: ${layers.layers} layers, ${mib(layers.layerBytes)} MiB, behind a proxy adding ${layers.rttMs} ms RTT and ${layers.bytesPerSecond / 1e6 || "no"} MB/s a connection`,
    );
  if (big) lines.push(`big tree: ${big.files} files, ${mib(big.bytes)} MiB`);
  lines.push("");
  lines.push("| scenario | tool | wall s, median (min–max) | CPU s | peak RSS MiB | × ocify (paired) | output MiB |");
  lines.push("| --- | --- | --- | --- | --- | --- | --- |");
  for (const r of summary) {
    const label = LABEL[r.tool];
    if (r.ok === 0) {
      lines.push(
        `| ${r.scenario} | ${label} | ${r.failure ? `not measured: ${r.failure.replace(/\|/g, "/").slice(0, 160)}` : "—"} | | | | |`,
      );
      continue;
    }
    const digits = r.wallMedian < 1 ? 3 : r.wallMedian < 10 ? 2 : 1;
    const wall = `${r.wallMedian.toFixed(digits)} (${r.wallMin.toFixed(digits)}–${r.wallMax.toFixed(digits)})${r.ok < r.runs ? ` ${r.runs - r.ok} failed` : ""}`;
    const ratio = r.tool === "ocify" ? "1" : r.ratioToOcify === null ? "—" : `${r.ratioToOcify.toFixed(2)}×`;
    lines.push(
      `| ${r.scenario} | ${label} | ${wall} | ${fmt(r.cpuMedian, 2)} | ${fmt(r.rssPeakMiB, 0)} | ${ratio} | ${r.outputMiB === null ? "" : r.outputMiB.toFixed(0)} |`,
    );
  }
  lines.push("");
  lines.push("× ocify: the peer's wall time divided by ocify's in the same round, median over rounds (2× = twice as long).");
  lines.push("output MiB: what was pushed (layers + config) for builds, the archive's size for pulls.");
  lines.push("");
  for (const t of targets)
    lines.push(
      `${t.status.padEnd(4)} ${t.name}: ${t.detail}${quick && (t.status === "PASS" || t.status === "FAIL") ? " (quick mode: not enforced)" : ""}`,
    );
  lines.push("");
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------- run

let exitCode = 0;
try {
  await main();
} catch (error) {
  log(`bench failed: ${error?.stack ?? error}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
