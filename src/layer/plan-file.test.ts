import assert from "node:assert/strict";
import { appendFileSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MediaType } from "../media-types.js";
import { BlockCache } from "./block-cache.js";
import { buildLayer, type LayerBuildOptions, planOptionsOf } from "./build.js";
import { codecIdOf } from "./compression.js";
import { makeTree, tempDir } from "./fixtures.test.js";
import { planFilePath } from "./plan-file.js";
import { type PlannedLayer, planLayer } from "./prepare.js";

const work = tempDir("ocify-plan-file-test-");
after(() => work.remove());

function options(cache: string): LayerBuildOptions {
  return { cacheDir: join(work.path, cache), compression: "gzip", mediaType: MediaType.ociLayerGzip };
}

function plan(tree: string, cache: string): PlannedLayer {
  return planLayer({ source: tree, dest: "/app" }, planOptionsOf(options(cache), codecIdOf("gzip") as string));
}

const ageing = 250; // ctimes cannot be set back: let them age past the racy margin instead

describe("plan file (a rebuild patches the previous plan)", () => {
  it("gives, change after change, the plan a listing makes and the blob a cold build makes", async () => {
    const tree = join(work.path, "chain");
    makeTree(tree, 120, 40);
    await sleep(ageing);
    const cache = "chain-cache";
    await buildLayer({ source: tree, dest: "/app" }, options(cache));
    const steps: [string, () => void][] = [
      [
        "same size, other bytes",
        () =>
          writeFileSync(join(tree, "dir1", "sub1", "file1.txt"), "x".repeat(readFileSync(join(tree, "dir1", "sub1", "file1.txt")).length)),
      ],
      ["a small file grown", () => appendFileSync(join(tree, "dir2", "sub2", "file2.txt"), "grown\n".repeat(100))],
      ["a small file shrunk", () => writeFileSync(join(tree, "dir3", "sub0", "file3.txt"), "short\n")],
      // Past the large-file size, the file becomes blocks of its own: the cuts around it change.
      ["a small file grown into a big one", () => appendFileSync(join(tree, "dir4", "sub1", "file4.txt"), Buffer.alloc(3 << 20, 7))],
      [
        "two files at once, one of them big",
        () => {
          appendFileSync(join(tree, "big.bin"), "tail\n");
          appendFileSync(join(tree, "dir5", "sub2", "file5.txt"), "more\n");
        },
      ],
      ["the big one shrunk back under the large-file size", () => writeFileSync(join(tree, "dir4", "sub1", "file4.txt"), "small again\n")],
    ];
    // The rebuilds read the few changed blocks here and hash the tar on a thread of its own (the way a
    // big tree's rebuild goes), and one cached block is damaged on the way: it is read and compressed again.
    for (const [step, [what, change]] of steps.entries()) {
      change();
      await sleep(ageing);
      const patched = plan(tree, cache);
      assert.equal(patched.kind, "tree", what);
      assert.ok(patched.kind === "tree");
      assert.equal(patched.patched, true, `${what}: the previous plan was patched`);
      if (step === 2) {
        const recorded = JSON.parse(readFileSync(patched.recordPath, "utf8")) as { blocks: { key: string }[] };
        const victim = new BlockCache(join(work.path, cache)).path((recorded.blocks[0] as { key: string }).key);
        const bytes = readFileSync(victim);
        bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
        writeFileSync(victim, bytes);
      }
      const listed = plan(tree, `${cache}-listed-${what}`);
      assert.ok(listed.kind === "tree" && !listed.patched);
      assert.equal(patched.fingerprint, listed.fingerprint, what);
      assert.deepEqual(patched.packed, listed.packed, what);
      const rebuilt = await buildLayer({ source: tree, dest: "/app" }, { ...options(cache), producer: "worker" }, Promise.resolve(patched));
      const cold = await buildLayer({ source: tree, dest: "/app" }, options(`${cache}-cold-${what}`));
      assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest, `${what}: same blob as a cold build`);
      assert.equal(rebuilt.diffID, cold.diffID, what);
      // What the patched build left (record, stat index, plan) serves the next build.
      assert.equal(plan(tree, cache).kind, "unchanged", `${what}: the next build finds nothing changed`);
    }
  });

  it("lists the tree when the plan file is damaged, missing, or another record's", async () => {
    const tree = join(work.path, "damaged");
    makeTree(tree, 121, 20);
    await sleep(ageing);
    const cache = "damaged-cache";
    const first = await buildLayer({ source: tree, dest: "/app" }, options(cache));
    assert.equal(first.unchanged, false);
    const recordPath = (plan(tree, cache) as PlannedLayer & { kind: "unchanged" }).recordPath;
    const planFile = planFilePath(recordPath);
    const original = readFileSync(planFile);
    const damages: [string, () => void][] = [
      ["truncated", () => truncateSync(planFile, original.length - 8)],
      [
        "another record's",
        () => writeFileSync(planFile, Buffer.concat([original.subarray(0, 16), Buffer.from("0".repeat(64)), original.subarray(80)])),
      ],
      ["longer than its layout", () => writeFileSync(planFile, Buffer.concat([original, Buffer.alloc(8)]))],
      ["not a plan", () => writeFileSync(planFile, "garbage")],
    ];
    for (const [i, [what, damage]] of damages.entries()) {
      appendFileSync(join(tree, "dir0", "sub0", "file0.txt"), `edit ${i}\n`);
      await sleep(ageing);
      writeFileSync(planFile, original);
      damage();
      const listed = plan(tree, cache);
      assert.ok(listed.kind === "tree", what);
      assert.equal(listed.patched, false, `${what}: listed instead`);
      assert.equal(listed.fingerprint, (plan(tree, `${cache}-fresh-${i}`) as PlannedLayer & { kind: "tree" }).fingerprint, what);
      // The intact file of the same record would have been patched.
      writeFileSync(planFile, original);
      const patched = plan(tree, cache);
      assert.ok(patched.kind === "tree" && patched.patched, `${what}: intact, it is used`);
      assert.equal(patched.fingerprint, listed.fingerprint);
    }
  });
});
