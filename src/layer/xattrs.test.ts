/** Extended attributes of directory sources: read into the layer, and seen again by a rebuild that took the quick way. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MediaType } from "../media-types.js";
import { listTar } from "../test-support/tar-listing.js";
import { type BuiltLayer, buildLayer, type LayerBuildOptions } from "./build.js";
import { collect, gunzip, tempDir } from "./fixtures.test.js";
import { xattrsSupported } from "./xattrs.js";

const work = tempDir("ocify-xattrs-");
const tree = join(work.path, "tree");
const isRoot = process.getuid?.() === 0;
const cache: LayerBuildOptions = { cacheDir: join(work.path, "cache"), compression: "gzip", mediaType: MediaType.ociLayerGzip };

const hex = (text: string): string => Buffer.from(text).toString("hex");

/** The xattrs of each entry of a built layer, as Python's tarfile reads them. */
async function layerXattrs(layer: BuiltLayer): Promise<Record<string, Record<string, string>>> {
  const file = join(work.path, `layer-${layer.diffID.slice(7, 19)}.tar`);
  writeFileSync(file, gunzip(await collect(layer.open())));
  return Object.fromEntries(listTar(file).map((e) => [e.name, e.xattrs]));
}

const build = (): Promise<BuiltLayer> => buildLayer({ source: tree, dest: "/app" }, cache);

describe("xattrs of directory sources", () => {
  before(() => {
    mkdirSync(join(tree, "etc"), { recursive: true });
    writeFileSync(join(tree, "ping"), "ping\n", { mode: 0o755 });
    writeFileSync(join(tree, "plain"), "plain\n");
    writeFileSync(join(tree, "etc/conf"), "a=1\n");
    symlinkSync("ping", join(tree, "link"));
    execFileSync("setfattr", ["-n", "user.origin", "-v", "build-42", join(tree, "ping")]);
    execFileSync("setfattr", ["-n", "user.dir", "-v", "yes", join(tree, "etc")]);
    if (isRoot) execFileSync("setfattr", ["-n", "trusted.host-only", "-v", "x", join(tree, "plain")]);
  });
  after(() => work.remove());

  it("the optional xattr addon loads on this platform", () => {
    assert.ok(xattrsSupported(), "@napi-rs/xattr did not load");
  });

  it("carries user.* (and security.capability) into the layer, not other namespaces, not through symlinks", async () => {
    if (isRoot) execFileSync("setcap", ["cap_net_raw+ep", join(tree, "ping")]);
    const xattrs = await layerXattrs(await build());
    const ping: Record<string, string> = { "user.origin": hex("build-42") };
    if (isRoot) ping["security.capability"] = `0100000200200000${"00".repeat(12)}`;
    assert.deepEqual(xattrs["app/ping"], ping);
    assert.deepEqual(xattrs["app/etc"], { "user.dir": hex("yes") });
    assert.deepEqual(xattrs["app/plain"], {}, "trusted.* stays on the build host");
    assert.deepEqual(xattrs["app/link"], {}, "a symlink's entry does not get its target's xattrs");
  });

  it("a rebuild sees an xattr set, changed or removed without any other change (the stat index's quick way)", async () => {
    await build();
    execFileSync("setfattr", ["-n", "user.added", "-v", "1", join(tree, "plain")]);
    assert.deepEqual((await layerXattrs(await build()))["app/plain"], { "user.added": hex("1") }, "added to a file");
    execFileSync("setfattr", ["-n", "user.added", "-v", "2", join(tree, "plain")]);
    assert.deepEqual((await layerXattrs(await build()))["app/plain"], { "user.added": hex("2") }, "changed on a file");
    execFileSync("setfattr", ["-x", "user.dir", join(tree, "etc")]);
    assert.deepEqual((await layerXattrs(await build()))["app/etc"], {}, "removed from a directory");
    execFileSync("setfattr", ["-n", "user.dir", "-v", "again", join(tree, "etc")]);
    assert.deepEqual((await layerXattrs(await build()))["app/etc"], { "user.dir": hex("again") }, "added to a directory");
    writeFileSync(join(tree, "etc/conf"), "a=2\n");
    execFileSync("setfattr", ["-n", "user.v", "-v", "2", join(tree, "etc/conf")]);
    const last = await build();
    assert.deepEqual((await layerXattrs(last))["app/etc/conf"], { "user.v": hex("2") }, "with a content change");
    assert.equal((await build()).diffID, last.diffID, "nothing moved since: the same layer");
  });
});
