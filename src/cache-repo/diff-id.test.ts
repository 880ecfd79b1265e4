/** The cache's diffID pass gives the diffID a build of the same layer records, without writing anything. */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { buildLayer } from "../layer/build.js";
import { codecIdOf } from "../layer/compression.js";
import { content, random, tempDir } from "../layer/fixtures.test.js";
import { planLayer } from "../layer/prepare.js";
import { MediaType } from "../media-types.js";
import { diffIDOfPlan } from "./diff-id.js";

describe("diffIDOfPlan", () => {
  const work = tempDir("ocify-cache-diffid-");
  after(() => work.remove());

  it("equals the built layer's diffID, and reads a tree larger than one block", async () => {
    const tree = join(work.path, "tree");
    mkdirSync(join(tree, "lib", "deep"), { recursive: true });
    writeFileSync(join(tree, "big.bin"), content(random(7), 9 << 20));
    for (let i = 0; i < 50; i++) writeFileSync(join(tree, "lib", "deep", `f${i}.txt`), `file ${i}\n`.repeat(i + 1));
    const fresh = join(work.path, "fresh-cache");
    const codecId = codecIdOf("gzip") as string;
    const planned = planLayer({ source: tree, dest: "/app" }, { cacheDir: fresh, codecId });
    assert.equal(planned.kind, "tree");
    const diffID = await diffIDOfPlan((planned as Extract<typeof planned, { kind: "tree" }>).packed);
    assert.equal(existsSync(fresh), false, "the pass writes nothing");
    const built = await buildLayer(
      { source: tree, dest: "/app" },
      { cacheDir: join(work.path, "build-cache"), compression: "gzip", mediaType: MediaType.ociLayerGzip },
    );
    assert.equal(diffID, built.diffID);
  });
});
