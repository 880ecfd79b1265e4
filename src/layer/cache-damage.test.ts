/**
 * A damaged cache never fails a build and never makes a wrong image: each kind of damage (bit flips,
 * a changed CRC, zero-fill, truncation, swapped or missing blocks, damaged records, stat indexes, plans
 * and kept base blobs) is done to a cache a clean build left, and the next build, unchanged or with one
 * file edited, must give the image a build with an empty cache gives, whole (digests and diffIDs
 * recomputed).
 */
import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { runOcify } from "../test-support/cli.js";
import { pushOciLayout, startRegistry, type TestRegistry } from "../test-support/registry.js";
import { writeSeededFile } from "../test-support/seeded.js";
import { openSource, parseTransportReference } from "../transport/transport.js";
import { validateImage } from "../validate.js";

/** Files of a cache directory below `sub`, sorted, largest first when `bySize`. */
function filesIn(dir: string, bySize = false): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else found.push(path);
    }
  };
  walk(dir);
  return bySize ? found.sort((a, b) => statSync(b).size - statSync(a).size || a.localeCompare(b)) : found.sort();
}

function flipByte(path: string, at: number): void {
  const bytes = readFileSync(path);
  const i = Math.min(at, bytes.length - 1);
  bytes[i] = (bytes[i] as number) ^ 0x20;
  writeFileSync(path, bytes);
}

/** The kinds of damage, each applied to a copy of a cache a clean build left. */
const damages: Record<string, (cache: string) => void> = {
  "bit flip in a block's compressed bytes": (c) => flipByte(filesIn(join(c, "blocks"), true)[0] as string, 100_000),
  "changed CRC in a block's prefix": (c) => flipByte(filesIn(join(c, "blocks"), true)[0] as string, 17),
  "zero-filled block": (c) => {
    const block = filesIn(join(c, "blocks"), true)[0] as string;
    writeFileSync(block, Buffer.alloc(statSync(block).size));
  },
  "truncated block": (c) => {
    const block = filesIn(join(c, "blocks"), true)[1] as string;
    truncateSync(block, statSync(block).size >> 1);
  },
  "swapped blocks of the same size": (c) => {
    const [a, b] = filesIn(join(c, "blocks"), true) as [string, string];
    const bytes = readFileSync(a);
    writeFileSync(a, readFileSync(b));
    writeFileSync(b, bytes);
  },
  "missing block": (c) => rmSync(filesIn(join(c, "blocks"), true)[0] as string),
  "layer record that is not JSON": (c) => {
    for (const record of filesIn(join(c, "layers")).filter((p) => p.endsWith(".json"))) writeFileSync(record, "{ not json");
  },
  "layer record naming another digest": (c) => {
    for (const record of filesIn(join(c, "layers")).filter((p) => p.endsWith(".json"))) {
      const text = readFileSync(record, "utf8");
      writeFileSync(
        record,
        text.replace(/"digest":"sha256:(.)/, (_m, ch: string) => `"digest":"sha256:${ch === "0" ? "1" : "0"}`),
      );
    }
  },
  "layer record with a block's CRC changed": (c) => {
    for (const record of filesIn(join(c, "layers")).filter((p) => p.endsWith(".json"))) {
      const json = JSON.parse(readFileSync(record, "utf8")) as { blocks: { ccrc: number }[] };
      if (json.blocks[0]) json.blocks[0].ccrc ^= 1;
      writeFileSync(record, JSON.stringify(json));
    }
  },
  "bit flips in stat indexes": (c) => {
    for (const index of filesIn(join(c, "layers")).filter((p) => p.endsWith(".stat"))) {
      for (const at of [80, 130, statSync(index).size - 20]) flipByte(index, at);
    }
  },
  "truncated stat indexes": (c) => {
    for (const index of filesIn(join(c, "layers")).filter((p) => p.endsWith(".stat"))) truncateSync(index, 50);
  },
  "bit flips in plans": (c) => {
    for (const plan of filesIn(join(c, "layers")).filter((p) => p.endsWith(".plan"))) {
      for (const at of [200, statSync(plan).size >> 1, statSync(plan).size - 40]) flipByte(plan, at);
    }
  },
  "truncated plans": (c) => {
    for (const plan of filesIn(join(c, "layers")).filter((p) => p.endsWith(".plan"))) truncateSync(plan, statSync(plan).size >> 1);
  },
};

async function validated(ref: string): Promise<void> {
  const source = await openSource(parseTransportReference(ref));
  try {
    await validateImage(source);
  } finally {
    await source.close();
  }
}

describe("a damaged cache is rebuilt in the same build", () => {
  let work: string;
  // One tree path for every case (the history names it, so the digests are the same), written anew each time.
  let tree: string;
  let expected: { unchanged: string; edited: string };
  let n = 0;
  const writeTree = (edited: boolean): void => {
    rmSync(tree, { recursive: true, force: true });
    mkdirSync(join(tree, "small"), { recursive: true });
    writeSeededFile(join(tree, "big.bin"), 6 << 20, 77);
    writeFileSync(join(tree, "small", "conf"), "a=1\n");
    for (let i = 0; i < 20; i++) writeFileSync(join(tree, `f${i}.txt`), `file ${i}\n${edited && i === 3 ? "edited\n" : ""}`);
  };
  const build = async (cache: string, dest: string) => {
    const layers = ["--layer", `${tree}:/app`, "--layer", `${join(tree, "small")}:/etc/small`];
    const result = await runOcify(["build", "--from", "scratch", ...layers, "-q", "-t", dest], {
      env: { OCIFY_CACHE_DIR: cache, SOURCE_DATE_EPOCH: "1700000000" },
    });
    assert.equal(result.code, 0, `${dest}: ${result.stderr}`);
    assert.equal(result.stderr, "");
    return result.stdout.split(" ")[0] as string;
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-cache-damage-"));
    tree = join(work, "tree");
    writeTree(true);
    const edited = await build(join(work, "clean-edited"), `oci:${join(work, "clean-edited-layout")}`);
    writeTree(false);
    expected = { unchanged: await build(join(work, "clean"), `oci:${join(work, "clean-layout")}`), edited };
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const [name, damage] of Object.entries(damages)) {
    it(`${name}: the unchanged build, then one with a file edited, give the clean build's images`, async () => {
      const at = join(work, `case-${++n}`);
      const cache = join(at, "cache");
      writeTree(false);
      await build(cache, `oci:${join(at, "first")}`);
      damage(cache);
      // Blocks are read back by any destination that lacks the blob; an archive also reads them in one pass.
      const dests = [`oci:${join(at, "out")}`, ...(name.includes("block") ? [`docker-archive:${join(at, "out.tar")}`] : [])];
      for (const dest of dests) {
        assert.equal(await build(cache, dest), expected.unchanged, `${dest} after ${name}`);
        await validated(dest);
      }
      appendFileSync(join(tree, "f3.txt"), "edited\n");
      damage(cache);
      const dest = `oci:${join(at, "edited")}`;
      assert.equal(await build(cache, dest), expected.edited, `edited tree after ${name}`);
      await validated(dest);
    });
  }
});

describe("a damaged copy of a base blob is fetched again in the same build", () => {
  let registry: TestRegistry;
  let work: string;
  before(async () => {
    registry = await startRegistry();
    work = mkdtempSync(join(tmpdir(), "ocify-cache-damage-base-"));
    writeBaseImageLayout(join(work, "base"), "latest", { seed: 5 });
    await pushOciLayout(join(work, "base"), "latest", `${registry.host}/lib/base:latest`);
    mkdirSync(join(work, "tree"));
    writeFileSync(join(work, "tree", "x"), "x\n");
  });
  after(async () => {
    await registry.stop();
    rmSync(work, { recursive: true, force: true });
  });

  for (const [name, damage] of Object.entries({
    "bit flip": (path: string) => flipByte(path, 300),
    truncation: (path: string) => truncateSync(path, statSync(path).size >> 1),
    "zero-fill": (path: string) => writeFileSync(path, Buffer.alloc(statSync(path).size)),
  })) {
    it(`${name} in every kept base blob`, async () => {
      const cache = join(work, `cache-${name}`);
      const env = { OCIFY_CACHE_DIR: cache, SOURCE_DATE_EPOCH: "1700000000" };
      const args = (out: string) => [
        "build",
        "--from",
        `${registry.host}/lib/base:latest`,
        "--layer",
        `${join(work, "tree")}:/t`,
        "-q",
        "-t",
        out,
      ];
      const first = await runOcify(args(`docker-archive:${join(work, `first-${name}.tar`)}`), { env });
      assert.equal(first.code, 0, first.stderr);
      const kept = filesIn(join(cache, "blobs"));
      assert.ok(kept.length >= 2, "base layers and config kept");
      for (const path of kept) damage(path);
      const out = `docker-archive:${join(work, `second-${name}.tar`)}`;
      const second = await runOcify(args(out), { env });
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.stdout.split(" ")[0], first.stdout.split(" ")[0]);
      await validated(out);
    });
  }
});
