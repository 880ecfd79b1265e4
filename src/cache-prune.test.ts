/** Keeping the cache bounded: least recently used first, what it holds, the automatic bound, and prunes beside builds. */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { boundCacheAfterBuild, cacheInfo, parseDuration, parseSize, pruneCache } from "./cache-prune.js";
import { UsageError } from "./errors.js";
import { hostTag } from "./fs-atomic.js";
import { buildLayer, type LayerBuildOptions } from "./layer/build.js";
import { collect, sha256 } from "./layer/fixtures.test.js";
import { MediaType } from "./media-types.js";
import { runOcify } from "./test-support/cli.js";
import { deadPid, startOcify, waitFor } from "./test-support/process.js";
import { writeSeededFile } from "./test-support/seeded.js";
import { openSource, parseTransportReference } from "./transport/transport.js";
import { validateImage } from "./validate.js";

const work = mkdtempSync(join(tmpdir(), "ocify-cache-prune-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** A source tree whose file was written a while ago (not racy: a build may trust its record). */
function tree(name: string, size: number, seed: number): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeSeededFile(join(dir, "data.bin"), size, seed);
  const past = new Date(Date.now() - 3600_000);
  utimesSync(join(dir, "data.bin"), past, past);
  return dir;
}

function setUsed(dir: string, sub: string, when: Date): void {
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else utimesSync(path, when, when);
    }
  };
  walk(join(dir, sub));
}

const layerOptions = (cacheDir: string): LayerBuildOptions => ({ cacheDir, compression: "gzip", mediaType: MediaType.ociLayerGzip });

describe("sizes and durations", () => {
  it("reads the units people write, and refuses the rest with one line", () => {
    assert.equal(parseSize("4096", "--max-size"), 4096);
    assert.equal(parseSize("500M", "--max-size"), 500 * 2 ** 20);
    assert.equal(parseSize("1.5GiB", "--max-size"), 1.5 * 2 ** 30);
    assert.equal(parseSize("10g", "--max-size"), 10 * 2 ** 30);
    assert.equal(parseDuration("12h", "--older-than"), 12 * 3600_000);
    assert.equal(parseDuration("2w", "--older-than"), 14 * 86_400_000);
    for (const bad of ["", "ten", "5X", "-1G"]) assert.throws(() => parseSize(bad, "--max-size"), UsageError);
    for (const bad of ["7", "3y", "h"]) assert.throws(() => parseDuration(bad, "--older-than"), UsageError);
  });
});

describe("cache prune and info", () => {
  it("removes the least recently used layer first; the kept one is still reused, the removed one rebuilt the same", async () => {
    const cache = join(work, "lru");
    const old = tree("old", 6 << 20, 1);
    const recent = tree("recent", 6 << 20, 2);
    const oldLayer = await buildLayer({ source: old, dest: "/" }, layerOptions(cache));
    setUsed(cache, "", new Date(Date.now() - 10 * 86_400_000));
    const recentLayer = await buildLayer({ source: recent, dest: "/" }, layerOptions(cache));
    const info = await cacheInfo(cache);
    assert.equal(info.kinds.layer.count, 2);
    assert.ok(info.kinds.block.count >= 4);
    const result = await pruneCache(cache, { maxSize: info.size - oldLayer.descriptor.size });
    assert.ok(result.size <= info.size - oldLayer.descriptor.size);
    const after = await cacheInfo(cache);
    assert.equal(after.kinds.layer.count, 1, "the old layer's record went");
    const again = await buildLayer({ source: recent, dest: "/" }, layerOptions(cache));
    assert.equal(again.unchanged, true, "the recent layer is untouched");
    assert.equal(sha256(await collect(again.open())), recentLayer.descriptor.digest);
    const rebuilt = await buildLayer({ source: old, dest: "/" }, layerOptions(cache));
    assert.equal(rebuilt.unchanged, false);
    assert.equal(rebuilt.descriptor.digest, oldLayer.descriptor.digest);
  });

  it("--older-than removes what was not used for that long; a use counts, not the build that wrote it", async () => {
    const cache = join(work, "age");
    const a = tree("age-a", 1 << 20, 3);
    const b = tree("age-b", 1 << 20, 4);
    await buildLayer({ source: a, dest: "/" }, layerOptions(cache));
    await buildLayer({ source: b, dest: "/" }, layerOptions(cache));
    setUsed(cache, "", new Date(Date.now() - 3 * 86_400_000));
    const used = await buildLayer({ source: a, dest: "/" }, layerOptions(cache)); // reused: marks it used now
    assert.equal(used.unchanged, true);
    await pruneCache(cache, { olderThanMs: 86_400_000 });
    const info = await cacheInfo(cache);
    assert.equal(info.kinds.layer.count, 1);
    assert.equal((await buildLayer({ source: a, dest: "/" }, layerOptions(cache))).unchanged, true);
  });

  it("removes temp files of killed runs, keeps other processes' live ones", async () => {
    const cache = join(work, "temps");
    mkdirSync(join(cache, "tmp"), { recursive: true });
    mkdirSync(join(cache, "blocks", "ab"), { recursive: true });
    const dead = join(cache, "tmp", `.spool.${deadPid()}-${hostTag}-00aa11bb.tmp`);
    const deadBlock = join(cache, "blocks", "ab", `.abcd.${deadPid()}-${hostTag}-00aa11bb.tmp`);
    const live = join(cache, "tmp", `.spool.${process.pid}-${hostTag}-00aa11bb.tmp`);
    for (const path of [dead, deadBlock, live]) writeFileSync(path, "x");
    await pruneCache(cache, { olderThanMs: 86_400_000 });
    assert.ok(!existsSync(dead) && !existsSync(deadBlock));
    assert.ok(existsSync(live));
  });

  it("bounds the cache after a build at most once an hour, keeping what the last hour used", async () => {
    const cache = join(work, "bound");
    const a = tree("bound-a", 2 << 20, 5);
    const b = tree("bound-b", 2 << 20, 6);
    await buildLayer({ source: a, dest: "/" }, layerOptions(cache));
    setUsed(cache, "", new Date(Date.now() - 2 * 86_400_000));
    await buildLayer({ source: b, dest: "/" }, layerOptions(cache));
    const env = { OCIFY_CACHE_MAX_SIZE: "1M" };
    const first = await boundCacheAfterBuild(cache, env);
    assert.ok(first && first.removed > 0, "the day-old layer went");
    assert.equal((await cacheInfo(cache)).kinds.layer.count, 1, "the layer of the last hour stayed, though over the bound");
    assert.equal(await boundCacheAfterBuild(cache, env), undefined, "not again within the hour");
    assert.equal(await boundCacheAfterBuild(cache, { OCIFY_CACHE_MAX_SIZE: "off" }), undefined);
  });

  it("the CLI: info, prune, and one-line usage errors", async () => {
    const cache = join(work, "cli");
    await buildLayer({ source: tree("cli-a", 1 << 20, 7), dest: "/" }, layerOptions(cache));
    const info = await runOcify(["cache", "info", "--cache-dir", cache]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /^Cache: {3}.*\nSize: {4}\d/);
    assert.match(info.stdout, /layers: +1 /);
    const json = await runOcify(["cache", "info", "--json", "--cache-dir", cache]);
    assert.equal((JSON.parse(json.stdout) as { kinds: { layer: { count: number } } }).kinds.layer.count, 1);
    const prune = await runOcify(["cache", "prune", "--max-size", "0", "--cache-dir", cache]);
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stdout, /^removed \d+ entries \(.*\); 0 B left in /);
    assert.equal((await cacheInfo(cache)).size, 0);
    for (const args of [
      ["cache", "prune"],
      ["cache", "prune", "--max-size", "lots"],
      ["cache", "shrink"],
    ]) {
      const bad = await runOcify([...args, "--cache-dir", cache]);
      assert.equal(bad.code, 2, args.join(" "));
      assert.match(bad.stderr, /^ocify: [^\n]+\n$/);
    }
  });

  it("a build whose cache is emptied while it reads it back still succeeds, whole", async () => {
    const cache = join(work, "racing-cache");
    const source = tree("racing", 24 << 20, 8);
    const env = { OCIFY_CACHE_DIR: cache, SOURCE_DATE_EPOCH: "1" };
    const layout = join(work, "racing-layout");
    const args = (dest: string) => ["build", "--from", "scratch", "--layer", `${source}:/d`, "-q", "-t", `oci:${dest}`];
    const first = await runOcify(args(join(work, "racing-first")), { env });
    assert.equal(first.code, 0, first.stderr);
    // The second build finds the layer unchanged and reads its blocks back into the layout: it is frozen
    // there, the cache is emptied, and it goes on.
    const run = startOcify(args(layout), env);
    const blobs = join(layout, "blobs", "sha256");
    const reading = () => existsSync(blobs) && readdirSync(blobs).some((name) => name.endsWith(".tmp"));
    await waitFor(() => reading(), 60_000, "the build to read its layer back");
    run.child.kill("SIGSTOP");
    const pruned = await pruneCache(cache, { maxSize: 0 });
    run.child.kill("SIGCONT");
    assert.ok(pruned.removed > 0);
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.split(" ")[0], first.stdout.split(" ")[0]);
    const image = await openSource(parseTransportReference(`oci:${layout}`));
    await validateImage(image);
    await image.close();
  });
});
