import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chownSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MediaType } from "../media-types.js";
import { encodeHeader, writeSimpleHeader } from "../tar/header.js";
import { buildLayer, type LayerBuildOptions } from "./build.js";
import { collect, fixture, gunzip, makeTree, type ReadEntry, readTar, sha256, tempDir } from "./fixtures.test.js";
import { headerOf, type PlanEntry, planPath } from "./plan.js";

const work = tempDir();
after(() => work.remove());
const tree = join(work.path, "tree");

function options(cache: string, extra: Partial<LayerBuildOptions> = {}): LayerBuildOptions {
  return { cacheDir: join(work.path, cache), compression: "gzip", mediaType: MediaType.ociLayerGzip, ...extra };
}

async function tarOf(source: string, dest: string, cache: string, extra: Partial<LayerBuildOptions> = {}): Promise<Buffer> {
  const layer = await buildLayer({ source, dest }, options(cache, extra));
  return gunzip(await collect(layer.open()));
}

describe("deterministic tar", () => {
  let tar: Buffer;
  let entries: ReadEntry[];
  before(async () => {
    makeTree(tree, 1);
    tar = await tarOf(tree, "/opt/app", "cache-a");
    entries = await readTar(tar);
  });

  it("writes the same bytes for the same tree (another cache, another run)", async () => {
    const again = await tarOf(tree, "/opt/app", "cache-b");
    assert.equal(sha256(again), sha256(tar));
  });

  it("sorts entries by the bytes of their full paths and lists every parent directory first", () => {
    const names = entries.map((e) => Buffer.from(e.name.replace(/\/$/, "")));
    const sorted = [...names].sort(Buffer.compare);
    assert.deepEqual(names, sorted);
    assert.equal(entries[0]?.name, "opt/");
    assert.equal(entries[1]?.name, "opt/app/");
    const seen = new Set<string>();
    for (const entry of entries) {
      const name = entry.name.replace(/\/$/, "");
      const parent = name.includes("/") ? name.slice(0, name.lastIndexOf("/")) : "";
      if (parent) assert.ok(seen.has(parent), `parent of ${name} comes before it`);
      seen.add(name);
    }
  });

  it("keeps long and non-ASCII names exactly (pax headers), and GNU tar reads them too", () => {
    const names = new Set(entries.map((e) => e.name));
    assert.ok(names.has(`opt/app/${fixture.longName}`));
    assert.ok(names.has(`opt/app/${fixture.deepDir}/leaf`));
    assert.ok(names.has(`opt/app/${fixture.unicode}`));
    const listing = execFileSync("tar", ["-tf", "-"], { input: tar }).toString("utf8").split("\n");
    assert.ok(listing.includes(`opt/app/${fixture.longName}`));
    assert.ok(listing.includes(`opt/app/${fixture.deepDir}/leaf`));
    assert.ok(listing.includes(`opt/app/${fixture.unicode}`));
    assert.equal(listing.filter(Boolean).length, entries.length);
  });

  it("keeps hardlinks as type 1 entries pointing at the first name in sorted order, and symlinks", () => {
    const first = entries.find((e) => e.name === "opt/app/a-hard");
    const second = entries.find((e) => e.name === "opt/app/z-hard");
    assert.equal(first?.type, "file");
    assert.equal(first?.size, "hardlinked\n".length);
    assert.equal(second?.type, "link");
    assert.equal(second?.linkname, "opt/app/a-hard");
    const link = entries.find((e) => e.name === "opt/app/link");
    assert.equal(link?.type, "symlink");
    assert.equal(link?.linkname, "dir0/sub0/file0.txt");
    assert.equal(entries.find((e) => e.name === "opt/app/fifo")?.type, "fifo");
  });

  it("keeps permission bits including setuid and sticky; synthesized parents are 0755", () => {
    const mode = (name: string) => entries.find((e) => e.name === name)?.mode;
    assert.equal(mode("opt/app/setuid"), 0o4755);
    assert.equal(mode("opt/app/private"), 0o600);
    assert.equal(mode("opt/app/tmp/"), 0o1777);
    assert.equal(mode("opt/"), 0o755);
  });

  it("keeps file contents and sizes, including a file spanning several blocks", async () => {
    const big = entries.find((e) => e.name === `opt/app/${fixture.big}`);
    assert.equal(big?.size, fixture.bigSize);
    const { readFileSync } = await import("node:fs");
    assert.equal(`sha256:${big?.sha256}`, sha256(readFileSync(join(tree, fixture.big))));
    assert.equal(entries.find((e) => e.name === "opt/app/empty")?.size, 0);
  });

  it("sets uid/gid 0 and the mtime option on every entry, or the chown owner", async () => {
    for (const entry of entries) {
      assert.equal(entry.uid, 0);
      assert.equal(entry.gid, 0);
      assert.equal(entry.mtime, 0);
    }
    const ownedTar = await tarOf(tree, "/", "cache-c", { chown: { uid: 1000, gid: 3_000_000 }, mtime: 1_700_000_000 });
    for (const entry of await readTar(ownedTar)) {
      assert.equal(entry.uid, 1000);
      assert.equal(entry.mtime, 1_700_000_000);
    }
    // tar-stream ignores pax uid/gid records; GNU tar applies them.
    const listing = execFileSync("tar", ["--numeric-owner", "--full-time", "-tvf", "-"], {
      input: ownedTar,
      env: { ...process.env, TZ: "UTC" },
    })
      .toString()
      .trim()
      .split("\n");
    assert.ok(listing.length > 100);
    for (const line of listing) assert.match(line, / 1000\/3000000 .* 2023-11-14 22:13:20 /);
  });

  it("keeps on-disk owners with preserveOwners", async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip("needs root to chown");
      return;
    }
    const dir = join(work.path, "owned");
    makeTree(dir, 2, 3);
    chownSync(join(dir, "private"), 1234, 5678);
    const read = await readTar(await tarOf(dir, "/", "cache-d", { preserveOwners: true }));
    const entry = read.find((e) => e.name === "private");
    assert.equal(entry?.uid, 1234);
    assert.equal(entry?.gid, 5678);
  });

  it("places a single file at DEST, or inside DEST when it ends with /", async () => {
    const file = join(work.path, "tool");
    writeFileSync(file, "#!/bin/sh\n", { mode: 0o755 });
    const at = (await readTar(await tarOf(file, "/usr/local/bin/renamed", "cache-e"))).map((e) => `${e.name} ${e.mode.toString(8)}`);
    assert.deepEqual(at, ["usr/ 755", "usr/local/ 755", "usr/local/bin/ 755", "usr/local/bin/renamed 755"]);
    const inside = (await readTar(await tarOf(file, "/bin/", "cache-e"))).map((e) => e.name);
    assert.deepEqual(inside, ["bin/", "bin/tool"]);
  });

  it("ends with two zero records", () => {
    assert.equal(tar.length % 512, 0);
    assert.ok(tar.subarray(tar.length - 1024).every((b) => b === 0));
  });
});

describe("tar headers", () => {
  it("the fast ustar path writes exactly what the general encoder writes", () => {
    const dir = join(work.path, "fast");
    makeTree(dir, 3, 20, 1000);
    const plan = planPath(dir, "/some/where", { uid: 1000, gid: 1000, preserveOwners: false, mtime: 1_700_000_000 });
    const devices: PlanEntry[] = [
      {
        key: "dev/null",
        type: "char",
        mode: 0o666,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        devmajor: 1,
        devminor: 3,
        source: -1,
        sourceOffset: 0,
        detector: -1,
      },
      { key: "x".repeat(100), type: "file", mode: 0o644, uid: 0, gid: 0, size: 5, mtime: 0, source: -1, sourceOffset: 0, detector: -1 },
      {
        key: "x".repeat(100),
        type: "directory",
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        source: -1,
        sourceOffset: 0,
        detector: -1,
      },
    ];
    let fast = 0;
    for (const entry of [...plan.entries, ...devices]) {
      const out = Buffer.alloc(512);
      const general = encodeHeader(headerOf(entry));
      if (writeSimpleHeader(entry, out, 0)) {
        fast++;
        assert.deepEqual(out, general, entry.key);
      } else assert.ok(general.length > 512, `${entry.key} needs a pax header`);
    }
    assert.ok(fast > 20);
  });

  it("uses a pax header with hdrcharset=BINARY for names that are not UTF-8", () => {
    const name = Buffer.from([0x61, 0xff, 0x62]);
    const encoded = encodeHeader({ name, type: "file", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 });
    assert.equal(encoded.length, 1536);
    assert.ok(encoded.includes("hdrcharset=BINARY"));
    assert.ok(encoded.includes(Buffer.concat([Buffer.from(" path="), name, Buffer.from("\n")])));
  });

  it("writes devices with major/minor numbers and a valid checksum", () => {
    const encoded = encodeHeader({
      name: Buffer.from("dev/null"),
      type: "char",
      mode: 0o666,
      uid: 0,
      gid: 0,
      size: 0,
      mtime: 0,
      devmajor: 1,
      devminor: 3,
    });
    assert.equal(encoded.length, 512);
    assert.equal(encoded.subarray(329, 336).toString(), "0000001");
    assert.equal(encoded.subarray(337, 344).toString(), "0000003");
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (encoded[i] as number);
    assert.equal(Number.parseInt(encoded.subarray(148, 154).toString(), 8), sum);
  });

  it("writes sizes of 8 GiB and more in a pax record", () => {
    const encoded = encodeHeader({ name: Buffer.from("huge"), type: "file", mode: 0o644, uid: 0, gid: 0, size: 2 ** 33 + 1, mtime: 0 });
    assert.ok(encoded.includes(`size=${2 ** 33 + 1}\n`));
  });
});
