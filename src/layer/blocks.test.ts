import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { BlockProducer, packPlan } from "./blocks.js";
import { makeTree, tempDir } from "./fixtures.test.js";
import { planPath } from "./plan.js";

describe("BlockProducer", () => {
  const dir = tempDir();
  after(() => dir.remove());
  const tree = join(dir.path, "tree");
  makeTree(tree, 11, 60, 9 * 1024 * 1024 + 123);
  const plan = planPath(tree, "/app", { uid: 0, gid: 0, preserveOwners: false, mtime: 0 });
  // Small blocks, so that entries, a big file's chunks and the end-of-archive marker all straddle cuts;
  // and the default ones, whose 4 MiB blocks are hashed in several pieces each.
  const small = { minBlock: 64 << 10, maxBlock: 256 << 10, largeFile: 100 << 10, chunkSize: 200 << 10, hashCut: 3 };

  for (const [name, packed] of [
    ["small", packPlan(plan, small)],
    ["default", packPlan(plan)],
  ] as const)
    it(`hashes the same diffID when it only hashes, in pieces of any size, as when it makes every block (${name} blocks)`, () => {
      const making = new BlockProducer(packed);
      const tar = createHash("sha256");
      for (let block = making.next(); block; block = making.next()) tar.update(block.data);
      const made = making.diffID();
      assert.equal(made, `sha256:${tar.digest("hex")}`);
      assert.ok(packed.cuts.length > (name === "small" ? 20 : 3), `only ${packed.cuts.length} blocks`);
      // 1000 bytes: pieces that end inside headers' neighbours, contents and padding alike; 256 KiB: whole entries.
      for (const piece of [1000, 4096, 256 << 10]) {
        const hashing = new BlockProducer(packed);
        let blocks = 0;
        while (hashing.hashNext(Buffer.alloc(piece))) blocks++;
        assert.equal(blocks, packed.cuts.length);
        assert.equal(hashing.diffID(), made, `pieces of ${piece} bytes`);
      }
    });
});
