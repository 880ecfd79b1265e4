/**
 * Kill tests on the real CLI: SIGINT and SIGTERM at any point end a run with one line and 130/143 and
 * leave no output and no temp file; kill -9 leaves a temp file that the next run removes; a build killed
 * while it fills the cache, run again, makes the same image a clean build makes. Signal times are
 * seeded; a process is frozen (SIGSTOP) where a test needs it to be at a given step, so that no outcome
 * depends on the machine's speed.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { seededRandom } from "../test-support/fault-proxy.js";
import { recordFigures } from "../test-support/figures.js";
import { type RunningOcify, startOcify, waitFor } from "../test-support/process.js";
import { writeSeededFile } from "../test-support/seeded.js";
import { openSource, parseTransportReference } from "../transport/transport.js";
import { type ImageSummary, validateImage } from "../validate.js";

const bigFile = 24 << 20;

async function validate(ref: string): Promise<ImageSummary> {
  const source = await openSource(parseTransportReference(ref));
  try {
    return (await validateImage(source)) as ImageSummary;
  } finally {
    await source.close();
  }
}

/** The temp files in a directory (hidden, ending in .tmp). */
function temps(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith(".") && n.endsWith(".tmp")) : [];
}

/** The bytes of every file below `dir` (0 when it does not exist). */
function bytesBelow(dir: string): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name), { throwIfNoEntry: false })?.size ?? 0;
  }
  return total;
}

/** Freeze the run once `ready` holds, so that a signal lands exactly there; undefined when it finished first. */
async function freezeWhen(run: RunningOcify, ready: () => boolean): Promise<boolean> {
  let exited = false;
  void run.done.then(() => {
    exited = true;
  });
  await waitFor(() => exited || ready(), 120_000, "the run to reach the step");
  if (exited) return false;
  run.child.kill("SIGSTOP");
  if (ready()) return true;
  run.child.kill("SIGCONT");
  return false;
}

describe("interrupted and killed runs", () => {
  let work: string;
  let artifacts: string;
  let runs = 0;
  const env = (cache = "cache"): NodeJS.ProcessEnv => ({ SOURCE_DATE_EPOCH: "1700000000", OCIFY_CACHE_DIR: join(work, cache) });
  const buildArgs = (dest: string) => ["build", "--from", "scratch", "--layer", `${artifacts}:/app`, "-q", "-t", dest];
  const freshDir = (): string => {
    const dir = join(work, `run-${runs++}`);
    mkdirSync(dir);
    return dir;
  };

  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-interrupt-"));
    artifacts = join(work, "artifacts");
    mkdirSync(join(artifacts, "etc"), { recursive: true });
    writeSeededFile(join(artifacts, "big.bin"), bigFile, 5);
    for (let i = 0; i < 50; i++) writeFileSync(join(artifacts, "etc", `file-${i}.conf`), `value ${i}\n`);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("SIGINT while the archive is being written: exit 130, one line, no archive, no temp file", async () => {
    for (let attempt = 0; ; attempt++) {
      assert.ok(attempt < 5, "the run was never caught writing its archive");
      const dir = freshDir();
      const run = startOcify(buildArgs(`docker-archive:${join(dir, "out.tar")}`), env(`cache-int-${attempt}`));
      const writing = () => temps(dir).some((t) => statSync(join(dir, t), { throwIfNoEntry: false })?.size ?? 0 > 1 << 20);
      if (!(await freezeWhen(run, writing))) {
        await run.done;
        continue;
      }
      run.child.kill("SIGINT");
      run.child.kill("SIGCONT");
      const result = await run.done;
      assert.equal(result.code, 130, result.stderr);
      assert.match(result.stderr, /^ocify: interrupted by SIGINT \([^\n]*\)\n$/);
      assert.deepEqual(readdirSync(dir), []);
      return;
    }
  });

  it("SIGTERM while an image is added to an existing OCI layout: exit 143, the layout as it was", async () => {
    const dir = freshDir();
    const layout = join(dir, "layout");
    const first = await startOcify(buildArgs(`oci:${layout}:one`), env()).done;
    assert.equal(first.code, 0, first.stderr);
    const index = readFileSync(join(layout, "index.json"));
    const blobs = readdirSync(join(layout, "blobs", "sha256")).sort();
    // Another layer, so that new blobs are written.
    writeFileSync(join(artifacts, "etc", "changed.conf"), "changed\n");
    try {
      const run = startOcify(buildArgs(`oci:${layout}:two`), env("cache-term"));
      const writing = () => temps(join(layout, "blobs", "sha256")).length > 0;
      assert.ok(await freezeWhen(run, writing), "the run was caught writing a blob");
      run.child.kill("SIGTERM");
      run.child.kill("SIGCONT");
      const result = await run.done;
      assert.equal(result.code, 143, result.stderr);
      assert.match(result.stderr, /^ocify: interrupted by SIGTERM [^\n]*\n$/);
      assert.ok(readFileSync(join(layout, "index.json")).equals(index));
      assert.deepEqual(readdirSync(join(layout, "blobs", "sha256")).sort(), blobs);
      assert.deepEqual(readdirSync(layout).sort(), ["blobs", "index.json", "oci-layout"]);
    } finally {
      rmSync(join(artifacts, "etc", "changed.conf"));
    }
  });

  it("SIGINT at seeded byte counts of the archive: either exit 130 and nothing, or a whole archive", async () => {
    const whole = freshDir();
    const clean = await startOcify(buildArgs(`docker-archive:${join(whole, "out.tar")}`), env("cache-whole")).done;
    assert.equal(clean.code, 0, clean.stderr);
    const size = statSync(join(whole, "out.tar")).size;
    const random = seededRandom(24);
    for (let i = 0; i < 5; i++) {
      const dir = freshDir();
      const run = startOcify(buildArgs(`docker-archive:${join(dir, "out.tar")}`), env(`cache-random-${i}`));
      // Frozen once its temp archive holds a seeded share of the archive's bytes, then interrupted there.
      const at = random() * size;
      const written = () => temps(dir).some((t) => (statSync(join(dir, t), { throwIfNoEntry: false })?.size ?? 0) >= at);
      const frozen = await freezeWhen(run, written);
      run.child.kill("SIGINT");
      if (frozen) run.child.kill("SIGCONT");
      const result = await run.done;
      recordFigures({ kind: "kill", scenario: "archive build, SIGINT", survived: result.code === 130 || result.code === 0 ? 1 : 0 });
      if (result.code === 130) {
        assert.match(result.stderr, /^ocify: interrupted by SIGINT [^\n]*\n$/);
        assert.deepEqual(readdirSync(dir), []);
      } else {
        // The signal came after the run was done (or before Node set up its handler: killed by the signal).
        assert.ok(result.code === 0 || result.signal === "SIGINT", `exit ${result.code}: ${result.stderr}`);
        if (existsSync(join(dir, "out.tar"))) await validate(`docker-archive:${join(dir, "out.tar")}`);
        assert.deepEqual(temps(dir), []);
      }
    }
  });

  it("kill -9 leaves a temp file beside the target; the next run removes it and writes the archive", async () => {
    const dir = freshDir();
    const out = join(dir, "out.tar");
    const run = startOcify(buildArgs(`docker-archive:${out}`), env("cache-kill"));
    assert.ok(await freezeWhen(run, () => temps(dir).length > 0), "the run was caught with its temp file");
    run.child.kill("SIGKILL");
    await run.done;
    assert.equal(temps(dir).length, 1, "what a killed run leaves");
    const again = await startOcify(buildArgs(`docker-archive:${out}`), env("cache-kill")).done;
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(readdirSync(dir), ["out.tar"]);
    await validate(`docker-archive:${out}`);
  });

  it("a build killed while it fills the cache, then run again, gives the clean build's image", async () => {
    const reference = freshDir();
    const clean = await startOcify(buildArgs(`oci:${join(reference, "layout")}`), env("cache-reference")).done;
    assert.equal(clean.code, 0, clean.stderr);
    const full = bytesBelow(join(work, "cache-reference"));
    const digest = clean.stdout.split(" ")[0];
    const random = seededRandom(99);
    for (let i = 0; i < 3; i++) {
      // Killed once the cache holds a seeded share more of what a whole build leaves there.
      const start = bytesBelow(join(work, "cache-killed"));
      const at = start + (0.2 + random() * 0.7) * (full - start);
      const run = startOcify(buildArgs(`oci:${join(freshDir(), "layout")}`), env("cache-killed"));
      await freezeWhen(run, () => bytesBelow(join(work, "cache-killed")) >= at);
      run.child.kill("SIGKILL");
      await run.done;
      recordFigures({ kind: "kill", scenario: "build filling the cache, SIGKILL", survived: 1 });
    }
    const dir = freshDir();
    const rerun = await startOcify(buildArgs(`oci:${join(dir, "layout")}`), env("cache-killed")).done;
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(rerun.stdout.split(" ")[0], digest);
    await validate(`oci:${join(dir, "layout")}`);
  });
});
