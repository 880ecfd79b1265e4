import assert from "node:assert/strict";
import { appendFileSync, chmodSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MediaType } from "../media-types.js";
import { buildLayer, type LayerBuildOptions, planOptionsOf } from "./build.js";
import { codecIdOf } from "./compression.js";
import { makeTree, tempDir } from "./fixtures.test.js";
import { type PlannedLayer, planLayer, statIndexPath } from "./prepare.js";

const work = tempDir("ocify-stat-index-test-");
after(() => work.remove());
let counter = 0;

function options(cache: string): LayerBuildOptions {
  return { cacheDir: join(work.path, cache), compression: "gzip", mediaType: MediaType.ociLayerGzip };
}

function plan(tree: string, cache: string): PlannedLayer {
  return planLayer({ source: tree, dest: "/app" }, planOptionsOf(options(cache), codecIdOf("gzip") as string));
}

/** A tree built once, its timestamps well before the build (not racy), and its cache name. */
async function built(): Promise<{ tree: string; cache: string }> {
  const name = `t${counter++}`;
  const tree = join(work.path, name);
  makeTree(tree, 70 + counter, 30);
  symlinkSync("dir0", join(tree, "dir-link"));
  await sleep(250); // ctimes cannot be set back: let them age past the racy margin instead
  await buildLayer({ source: tree, dest: "/app" }, options(`${name}-cache`));
  return { tree, cache: `${name}-cache` };
}

describe("stat index (an unchanged layer without listing it)", () => {
  it("finds an unchanged layer from the index alone, and the index belongs to the record", async () => {
    const { tree, cache } = await built();
    const again = plan(tree, cache);
    assert.equal(again.kind, "unchanged");
    assert.equal(again.kind === "unchanged" && again.statIndex, undefined, "no fresh index: the tree was not listed");
    // An index that belongs to another record is not used: the layer is listed (and found unchanged).
    const recordPath = again.kind === "unchanged" ? again.recordPath : "";
    const record = JSON.parse(readFileSync(recordPath, "utf8")) as { fingerprint: string };
    const index = readFileSync(statIndexPath(recordPath));
    index.write("0".repeat(64), 8, "latin1");
    writeFileSync(statIndexPath(recordPath), index);
    const listed = plan(tree, cache);
    assert.equal(listed.kind, "unchanged");
    assert.ok(listed.kind === "unchanged" && listed.statIndex, "listed again, with a fresh index to keep");
    assert.equal(listed.kind === "unchanged" && listed.record.fingerprint, record.fingerprint);
  });

  // [what, change, whether the previous plan can be patched (only a file's contents changed)]
  const changes: [string, (tree: string) => void, boolean?][] = [
    ["a file added", (tree) => writeFileSync(join(tree, "dir1", "new.txt"), "new\n")],
    ["a file removed", (tree) => rmSync(join(tree, "dir2", "sub2", "file2.txt"))],
    [
      "a file renamed in its directory",
      (tree) => renameSync(join(tree, "dir3", "sub0", "file3.txt"), join(tree, "dir3", "sub0", "renamed.txt")),
    ],
    ["a mode changed", (tree) => chmodSync(join(tree, "dir4", "sub1", "file4.txt"), 0o600)],
    [
      "content changed with its size and mtime put back",
      (tree) => {
        const file = join(tree, "dir5", "sub2", "file5.txt");
        const before = statSync(file);
        const bytes = readFileSync(file);
        bytes[0] = (bytes[0] as number) ^ 1;
        writeFileSync(file, bytes);
        utimesSync(file, before.atime, before.mtime);
      },
      true,
    ],
    [
      "a symlink pointed elsewhere",
      (tree) => {
        rmSync(join(tree, "dir-link"));
        symlinkSync("dir1", join(tree, "dir-link"));
      },
    ],
    ["a file appended to", (tree) => appendFileSync(join(tree, "dir6", "sub0", "file6.txt"), "more\n"), true],
    [
      "a file replaced by a new one (rename over it)",
      (tree) => {
        writeFileSync(join(tree, "dir0", "sub1", "next.tmp"), "replaced\n");
        renameSync(join(tree, "dir0", "sub1", "next.tmp"), join(tree, "dir0", "sub1", "file7.txt"));
      },
    ],
    ["a file emptied", (tree) => writeFileSync(join(tree, "dir1", "sub2", "file8.txt"), "")],
    ["a hard-linked file changed", (tree) => appendFileSync(join(tree, "z-hard"), "more\n")],
    ["a big file's content changed", (tree) => appendFileSync(join(tree, "big.bin"), "more\n"), true],
  ];
  for (const [what, change, patchable = false] of changes) {
    it(`sees ${what}`, async () => {
      const { tree, cache } = await built();
      assert.equal(plan(tree, cache).kind, "unchanged", "before the change");
      change(tree);
      const changed = plan(tree, cache);
      assert.equal(changed.kind, "tree", "after the change");
      // The plan took the index's fresh stats instead of stat'ing again: it is the plan a plain listing makes.
      const listed = plan(tree, `${cache}-none`);
      assert.ok(changed.kind === "tree" && listed.kind === "tree");
      assert.equal(changed.patched, patchable, patchable ? "the previous plan, patched" : "a listing");
      assert.equal(changed.fingerprint, listed.fingerprint);
      assert.deepEqual(changed.packed, listed.packed);
    });
  }

  it("refreshes the index when a listing finds the layer unchanged, and uses it next time", async () => {
    const { tree, cache } = await built();
    // What umoci and others do to directories they read: the same mode set again, only the ctime moves.
    chmodSync(join(tree, "dir1"), statSync(join(tree, "dir1")).mode & 0o7777);
    await sleep(250);
    const listed = await buildLayer({ source: tree, dest: "/app" }, options(cache));
    assert.equal(listed.unchanged, true, "a ctime alone does not change the layer");
    const again = plan(tree, cache);
    assert.equal(again.kind, "unchanged");
    assert.equal(again.kind === "unchanged" && again.statIndex, undefined, "the refreshed index was enough");
  });

  it("does not trust paths touched close to the recorded build's start", async () => {
    const name = `t${counter++}`;
    const tree = join(work.path, name);
    makeTree(tree, 90, 10);
    // No pause: every ctime is within the racy margin of the build that follows.
    await buildLayer({ source: tree, dest: "/app" }, options(`${name}-cache`));
    // Racy files are read again (as the full listing's rule says too), never taken from the index.
    assert.equal(plan(tree, `${name}-cache`).kind, "tree");
  });
});
