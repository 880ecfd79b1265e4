/**
 * Pushes killed with SIGKILL at seeded points, then run again: the second run finishes the upload the
 * first left open instead of starting over. The fault proxy counts the request bytes that reach the
 * registry and holds every request once a seeded count is reached, so the kill lands at a known byte
 * count whatever the machine's speed. The rerun must send less than what was left plus one chunk, and
 * push the image a clean run pushes.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify, runOk } from "../test-support/cli.js";
import { type FaultProxy, seededRandom, startFaultProxy } from "../test-support/fault-proxy.js";
import { recordFigures } from "../test-support/figures.js";
import { startOcify, waitFor } from "../test-support/process.js";
import { startRegistry, type TestRegistry } from "../test-support/registry.js";
import { writeSeededFile } from "../test-support/seeded.js";

const chunk = 1 << 20;

describe("a push killed midway, run again, sends only what is missing", () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  let app: string;
  let layout: string;
  let runs = 0;
  const env = (cache: string): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, cache), SOURCE_DATE_EPOCH: "1700000000" });
  const buildArgs = (target: string) => ["build", "--from", "scratch", "--layer", `${app}:/app`, "--chunk-size", "1M", "-q", "-t", target];
  const copyArgs = (target: string) => ["copy", "--chunk-size", "1M", "-q", `oci:${layout}:app`, target];

  before(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.host, { seed: 1, rate: 0 });
    work = mkdtempSync(join(tmpdir(), "ocify-push-kill-"));
    app = join(work, "app");
    mkdirSync(app);
    writeSeededFile(join(app, "big.bin"), 12 << 20, 77); // incompressible: 12 chunks and a bit
    layout = join(work, "layout");
    const built = await runOcify(buildArgs(`oci:${layout}:app`), { env: env("cache-layout") });
    assert.equal(built.code, 0, built.stderr);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** Bytes that reach the registry while `run` runs. */
  const counted = async <T>(run: () => Promise<T>): Promise<{ result: T; bytes: number }> => {
    const start = proxy.forwardedBytes();
    const result = await run();
    return { result, bytes: proxy.forwardedBytes() - start };
  };

  for (const [name, args, cacheOf] of [
    ["build (the layer streamed while it is built)", buildArgs, (i: number) => `cache-build-${i}`],
    ["copy (a blob the cache holds)", copyArgs, () => "cache-layout"],
  ] as const) {
    it(`${name}: killed at seeded byte counts, each rerun sends less than what was left plus one chunk`, async () => {
      // What a whole push sends (blobs, chunked, and the manifest), measured on a push no one kills.
      const whole = await counted(() => runOcify(args(`${proxy.host}/whole/app-${runs}:1`), { env: env(`cache-whole-${runs++}`) }));
      assert.equal(whole.result.code, 0, whole.result.stderr);
      const digest = whole.result.stdout.split(" ")[0];
      const random = seededRandom(name.length);
      for (let i = 0; i < 3; i++) {
        const target = `${proxy.host}/killed/app-${runs++}:1`;
        const cache = cacheOf(i);
        const at = Math.floor((0.15 + 0.7 * random()) * whole.bytes);
        const heldBefore = proxy.held();
        proxy.holdAfter(proxy.forwardedBytes() + at);
        const first = await counted(async () => {
          const run = startOcify(args(target), env(cache));
          let exited = false;
          void run.done.then(() => {
            exited = true;
          });
          await waitFor(() => exited || proxy.held() > heldBefore, 300_000, "the push to reach the byte count");
          assert.ok(!exited, `the push finished before ${at} bytes`);
          run.child.kill("SIGKILL");
          await run.done;
        });
        proxy.holdAfter(undefined);
        const rerun = await counted(() => runOcify(args(target), { env: env(cache) }));
        assert.equal(rerun.result.code, 0, rerun.result.stderr);
        assert.equal(rerun.result.stdout.split(" ")[0], digest, "the image a clean push pushes");
        const left = whole.bytes - first.bytes;
        assert.ok(rerun.bytes < left + chunk, `killed after ${first.bytes} of ${whole.bytes} bytes; the rerun sent ${rerun.bytes}`);
        recordFigures({
          kind: "kill",
          scenario: `push by ${name.split(" ")[0]}, SIGKILL`,
          total: whole.bytes,
          before: first.bytes,
          rerun: rerun.bytes,
        });
      }
      await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/killed/app-${runs - 1}:1`]);
    });
  }

  it("a rerun whose tree changed since the kill sends its own bytes, not the rest of the old ones", async () => {
    const changing = join(work, "changing");
    mkdirSync(changing);
    writeSeededFile(join(changing, "big.bin"), 12 << 20, 78);
    const args = (target: string) => [
      "build",
      "--from",
      "scratch",
      "--layer",
      `${changing}:/app`,
      "--chunk-size",
      "1M",
      "-q",
      "-t",
      target,
    ];
    const target = `${proxy.host}/changed/app:1`;
    const heldBefore = proxy.held();
    proxy.holdAfter(proxy.forwardedBytes() + (6 << 20));
    const run = startOcify(args(target), env("cache-changing"));
    let exited = false;
    void run.done.then(() => {
      exited = true;
    });
    await waitFor(() => exited || proxy.held() > heldBefore, 300_000, "the push to reach 6 MiB");
    assert.ok(!exited, "the push finished before 6 MiB");
    run.child.kill("SIGKILL");
    await run.done;
    proxy.holdAfter(undefined);
    // Same size, other bytes from the start: what the registry holds of the session is no longer the layer's.
    writeSeededFile(join(changing, "big.bin"), 12 << 20, 79);
    const rerun = await runOcify(args(target), { env: env("cache-changing") });
    assert.equal(rerun.code, 0, rerun.stderr);
    const clean = await runOcify(args(`${proxy.host}/changed/clean:1`), { env: env("cache-changing-clean") });
    assert.equal(clean.code, 0, clean.stderr);
    assert.equal(rerun.stdout.split(" ")[0], clean.stdout.split(" ")[0], "the image of the tree as it is now");
    await runOk("skopeo", [
      "copy",
      "--src-tls-verify=false",
      `docker://${registry.host}/changed/app:1`,
      `oci:${join(work, "changed-copy")}:x`,
    ]);
  });
});
