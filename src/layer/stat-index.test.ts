import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  lstatSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MediaType } from "../media-types.js";
import { buildLayer, type LayerBuildOptions, planOptionsOf } from "./build.js";
import { codecIdOf } from "./compression.js";
import { makeTree, tempDir } from "./fixtures.test.js";
import { encodeRecord, type LayerRecord, type PlannedLayer, planLayer, statIndexPath } from "./prepare.js";
import { millisecondsOf } from "./stat-index.js";

const work = tempDir("ocify-stat-index-test-");
after(() => work.remove());
let counter = 0;

function options(cache: string): LayerBuildOptions {
  return { cacheDir: join(work.path, cache), compression: "gzip", mediaType: MediaType.ociLayerGzip };
}

const codecId = codecIdOf("gzip") as string;

function plan(tree: string, cache: string): PlannedLayer {
  return planLayer({ source: tree, dest: "/app" }, planOptionsOf(options(cache), codecId));
}

/** Set a path's mtime to the nanosecond (utimes in Node keeps microseconds at best), as tar and rsync do. */
function putMtimeBack(path: string, mtimeNs: bigint): void {
  const ns = String(mtimeNs % 1_000_000_000n).padStart(9, "0");
  execFileSync("touch", ["-m", "-d", `@${mtimeNs / 1_000_000_000n}.${ns}`, path]);
  assert.equal(statSync(path, { bigint: true }).mtimeNs, mtimeNs, "the mtime is back, exactly");
}

/** Every path below `root`, and `root`. */
function allPaths(root: string): string[] {
  return [root, ...readdirSync(root, { recursive: true }).map((name) => join(root, String(name)))];
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
  it("turns the walk's bigint times into exactly the milliseconds a plain lstat gives", () => {
    const tree = join(work.path, `t${counter++}`);
    makeTree(tree, 5, 20);
    // Times with odd nanoseconds, on either side of 1970 and of a whole second.
    const odd = join(tree, "odd");
    writeFileSync(odd, "x");
    const paths = readdirSync(tree, { recursive: true }).map((name) => join(tree, String(name)));
    for (const seconds of [1_700_000_000.123456, 1_700_000_000, -1.5, -86_400.000001, 0.000001]) {
      utimesSync(odd, seconds, seconds);
      paths.push(odd);
      for (const path of paths) {
        const big = lstatSync(path, { bigint: true });
        const plain = lstatSync(path);
        assert.equal(millisecondsOf(big.mtimeNs), plain.mtimeMs, `${path} mtime (${seconds})`);
        assert.equal(millisecondsOf(big.ctimeNs), plain.ctimeMs, `${path} ctime`);
      }
    }
  });

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
    [
      "a file added, its directory's mtime put back (as tar and rsync do)",
      (tree) => {
        const dir = join(tree, "dir1");
        const before = statSync(dir, { bigint: true });
        writeFileSync(join(dir, "new.txt"), "new\n");
        putMtimeBack(dir, before.mtimeNs);
      },
    ],
    [
      "a file removed, its directory's mtime put back",
      (tree) => {
        const dir = join(tree, "dir2", "sub2");
        const before = statSync(dir, { bigint: true });
        rmSync(join(dir, "file2.txt"));
        putMtimeBack(dir, before.mtimeNs);
      },
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
    // A directory's mtime moved (the tar's times are the build's, not the files'): the tree is listed again.
    const dir = statSync(join(tree, "dir1"));
    utimesSync(join(tree, "dir1"), dir.atime, new Date(dir.mtimeMs - 60_000));
    await sleep(250);
    const listed = await buildLayer({ source: tree, dest: "/app" }, options(cache));
    assert.equal(listed.unchanged, true, "a ctime alone does not change the layer");
    const again = plan(tree, cache);
    assert.equal(again.kind, "unchanged");
    assert.equal(again.kind === "unchanged" && again.statIndex, undefined, "the refreshed index was enough");
  });

  it("takes a directory whose ctime alone moved as it was once its names are compared: no listing, the plan patched", async () => {
    const { tree, cache } = await built();
    // What umoci's rootless mode does to every directory it reads, and chmod or chown to the same values:
    // the root (the tar's first entry) and a directory further on.
    for (const dir of [tree, join(tree, "dir3")]) chmodSync(dir, statSync(dir).mode & 0o7777);
    await sleep(250);
    const same = plan(tree, cache);
    assert.equal(same.kind, "unchanged");
    assert.ok(same.kind === "unchanged" && same.statIndex, "with their fresh lstat to keep");
    await buildLayer({ source: tree, dest: "/app" }, options(cache)); // keeps it
    assert.equal((plan(tree, cache) as { statIndex?: unknown }).statIndex, undefined, "and the next build needs no refresh");
    // The same directories touched again, and a file's contents changed after them: the previous plan is
    // patched.
    for (const dir of [tree, join(tree, "dir3")]) chmodSync(dir, statSync(dir).mode & 0o7777);
    appendFileSync(join(tree, "dir6", "sub0", "file6.txt"), "more\n");
    await sleep(250);
    const changed = plan(tree, cache);
    assert.ok(changed.kind === "tree" && changed.patched, "the previous plan, patched");
    const listed = plan(tree, `${cache}-none`);
    assert.ok(listed.kind === "tree");
    assert.deepEqual(changed.packed, listed.packed, "the plan a listing makes");
  });

  it("does not trust paths touched close to the recorded build's start", async () => {
    const { tree, cache } = await built();
    const first = plan(tree, cache);
    assert.ok(first.kind === "unchanged" && first.statIndex === undefined, "taken from the index");
    // When the recorded build began is set here, relative to the tree's own newest time, rather than
    // left to how soon after writing the tree a build gets to start on this machine. Both the record
    // (for the full listing's rule) and the index (for the quick check) carry it.
    const recordPath = first.recordPath;
    // The rule is about files' contents (a write in the same clock step as the scan keeps the mtime it
    // had): their mtimes decide. A chmod, a chown or a name added changes an entry's header or a
    // directory's listing, which are compared anyway.
    let newestMtime = 0n;
    let newest = 0n;
    for (const path of allPaths(tree)) {
      const stat = lstatSync(path, { bigint: true });
      if (stat.isFile() && stat.mtimeNs > newestMtime) newestMtime = stat.mtimeNs;
      for (const time of [stat.mtimeNs, stat.ctimeNs]) if (time > newest) newest = time;
    }
    const startAt = (scanStartNs: bigint) => {
      const { check: _old, ...record } = JSON.parse(readFileSync(recordPath, "utf8")) as LayerRecord & { check: string };
      writeFileSync(recordPath, encodeRecord({ ...record, scanStartNs: String(scanStartNs) }));
      const index = readFileSync(statIndexPath(recordPath));
      index.writeBigUInt64LE(scanStartNs, 72);
      writeFileSync(statIndexPath(recordPath), index);
    };
    // Begun 50 ms after the last write to a file: within the racy margin (100 ms for fine timestamps, 2 s for
    // whole seconds), so a write in those 50 ms could hide behind an equal timestamp. Read again.
    startAt(newestMtime + 50_000_000n);
    assert.equal(plan(tree, cache).kind, "tree", "racy paths are read again, never taken from the index");
    // Begun well after it: the same tree is taken from the index again.
    startAt(newest + 2_500_000_000n);
    const trusted = plan(tree, cache);
    assert.ok(trusted.kind === "unchanged" && trusted.statIndex === undefined, "taken from the index again");
  });

  it("does not trust a path whose mtime is after the recorded build's start", async () => {
    const { tree, cache } = await built();
    // An mtime ahead of the clock (a file from a machine whose clock runs ahead, or set so by a tool),
    // set before the build: its lstat does not change afterwards, yet it stays racy for every build.
    const future = new Date(Date.now() + 3_600_000);
    utimesSync(join(tree, "dir3", "sub0", "file3.txt"), future, future);
    await buildLayer({ source: tree, dest: "/app" }, options(cache));
    assert.equal(plan(tree, cache).kind, "tree");
  });
});
