/** A directory split into layers: the same files as one layer, a one-file change rebuilds one layer, and what cannot be split is refused. */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "../build.js";
import { tempDir } from "../layer/fixtures.test.js";
import { type ListedEntry, layoutLayers, listTar } from "../test-support/tar-listing.js";
import { maxSplitLayers, splitLayerSource } from "./split.js";

/** Every entry of every layer of a layout's image, by name (a later layer's entry wins, as when unpacked). */
function unpacked(layout: string): Map<string, Omit<ListedEntry, "name">> {
  const entries = new Map<string, Omit<ListedEntry, "name">>();
  for (const blob of layoutLayers(layout)) for (const { name, ...rest } of listTar(blob)) entries.set(name, rest);
  return entries;
}

describe("splitting a directory into layers", () => {
  const work = tempDir("ocify-split-");
  const tree = join(work.path, "tree");
  after(() => work.remove());

  before(() => {
    mkdirSync(join(tree, "bin"), { recursive: true });
    writeFileSync(join(tree, "bin", "tool"), "binary\n".repeat(1000), { mode: 0o755 });
    for (const pkg of ["a", "b", "c"]) {
      mkdirSync(join(tree, "lib", pkg, "sub"), { recursive: true });
      for (let i = 0; i < 5; i++) writeFileSync(join(tree, "lib", pkg, "sub", `f${i}.js`), `${pkg}${i}\n`.repeat(100));
    }
    mkdirSync(join(tree, "empty"));
    writeFileSync(join(tree, "README"), "top-level file\n");
    chmodSync(tree, 0o755);
  });

  it("splits two levels down by name: entries there, and files and empty directories above", () => {
    const layers = splitLayerSource({ source: tree, dest: "/app" });
    assert.deepEqual(
      layers.map((l) => l.dest),
      ["/app/README", "/app/bin/tool", "/app/empty", "/app/lib/a", "/app/lib/b", "/app/lib/c"],
    );
    assert.deepEqual(
      splitLayerSource({ source: tree, dest: "/app" }, 1).map((l) => l.dest),
      ["/app/README", "/app/bin", "/app/empty", "/app/lib"],
    );
  });

  it("gives the same files as the directory as one layer, and a one-file change rebuilds only its layer", async () => {
    const cacheDir = join(work.path, "cache");
    const one = join(work.path, "one");
    const split = join(work.path, "split");
    await build({ from: "scratch", layers: [{ source: tree, dest: "/app" }], tags: [`oci:${one}:v1`], cacheDir });
    const parts = splitLayerSource({ source: tree, dest: "/app" });
    await build({ from: "scratch", layers: parts, tags: [`oci:${split}:v1`], cacheDir });
    assert.equal(layoutLayers(split).length, 6);
    assert.deepEqual(unpacked(split), unpacked(one));

    const before = layoutLayers(split);
    writeFileSync(join(tree, "lib", "b", "sub", "f3.js"), "changed\n");
    const again = join(work.path, "again");
    await build({ from: "scratch", layers: splitLayerSource({ source: tree, dest: "/app" }), tags: [`oci:${again}:v1`], cacheDir });
    const after = layoutLayers(again);
    const changed = after.map((blob, i) => (blob.slice(-64) === before[i]?.slice(-64) ? "" : parts[i]?.dest)).filter(Boolean);
    assert.deepEqual(changed, ["/app/lib/b"]);
  });

  it("refuses what a layer source cannot stand for, a directory whose mode the layers would change, and too many layers", () => {
    const odd = join(work.path, "odd");
    mkdirSync(join(odd, "lib", "x"), { recursive: true });
    chmodSync(odd, 0o755);
    symlinkSync("x", join(odd, "lib", "link"));
    assert.throws(
      () => splitLayerSource({ source: odd, dest: "/" }),
      /cannot split at .*link: a layer of its own would hold what it points to/,
    );
    assert.doesNotThrow(() => splitLayerSource({ source: odd, dest: "/" }, 1));
    writeFileSync(join(odd, "data.tar"), "not unpacked\n");
    assert.throws(() => splitLayerSource({ source: odd, dest: "/" }, 1), /data\.tar: a layer source named like a tarball is unpacked/);

    const closed = join(work.path, "closed");
    mkdirSync(join(closed, "private", "x"), { recursive: true });
    chmodSync(closed, 0o755);
    chmodSync(join(closed, "private"), 0o700);
    assert.throws(() => splitLayerSource({ source: closed, dest: "/" }), /private into layers: its mode is 700/);

    const wide = join(work.path, "wide");
    mkdirSync(wide);
    chmodSync(wide, 0o755);
    for (let i = 0; i <= maxSplitLayers; i++) writeFileSync(join(wide, `f${i}`), "");
    assert.throws(() => splitLayerSource({ source: wide, dest: "/" }), /more than 100 layers/);
  });
});
