/**
 * Several ocify processes at once into one OCI layout and one cache: every tag each of them wrote is
 * there afterwards, and every image is whole (digests, sizes and diffIDs recomputed; skopeo reads them).
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOk } from "../test-support/cli.js";
import { startOcify } from "../test-support/process.js";
import { writeSeededFile } from "../test-support/seeded.js";
import { openSource, parseTransportReference } from "../transport/transport.js";
import { validateImage } from "../validate.js";

describe("concurrent builds into one OCI layout and one cache", () => {
  let work: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-concurrency-"));
    mkdirSync(join(work, "shared"));
    writeSeededFile(join(work, "shared", "lib.so"), 3 << 20, 8);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("keeps every tag and every image whole", async () => {
    const layout = join(work, "layout");
    const env = { OCIFY_CACHE_DIR: join(work, "cache"), SOURCE_DATE_EPOCH: "1700000000" };
    const rounds = 6;
    const writers = 3;
    const tags: string[] = [];
    for (let round = 0; round < rounds; round++) {
      const runs = Array.from({ length: writers }, (_, w) => {
        const own = join(work, `own-${round}-${w}`);
        mkdirSync(own);
        writeFileSync(join(own, "id.txt"), `round ${round} writer ${w}\n`);
        const tag = `r${round}-w${w}`;
        tags.push(tag);
        const args = ["build", "--from", "scratch", "--layer", `${join(work, "shared")}:/lib`, "--layer", `${own}:/etc`, "-q"];
        return startOcify([...args, "-t", `oci:${layout}:${tag}`], env).done;
      });
      for (const result of await Promise.all(runs)) assert.equal(result.code, 0, result.stderr);
    }
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { annotations?: Record<string, string> }[] };
    const present = index.manifests.map((m) => m.annotations?.["org.opencontainers.image.ref.name"]).sort();
    assert.deepEqual(present, [...tags].sort());
    assert.deepEqual(readdirSync(layout).sort(), ["blobs", "index.json", "oci-layout"], "no lock, marker or temp file left");
    for (const tag of tags) {
      const source = await openSource(parseTransportReference(`oci:${layout}:${tag}`));
      try {
        await validateImage(source);
      } finally {
        await source.close();
      }
    }
    await runOk("skopeo", ["inspect", `oci:${layout}:${tags.at(-1)}`]);
  });
});
