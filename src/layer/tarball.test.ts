import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import tarStream from "tar-stream";
import { InputError } from "../errors.js";
import { MediaType } from "../media-types.js";
import { buildLayer, importRootfs, type LayerBuildOptions } from "./build.js";
import { collect, content, gunzip, makeTree, random, readTar, sha256, tempDir } from "./fixtures.test.js";

const work = tempDir();
const tree = join(work.path, "tree");
let counter = 0;

function options(extra: Partial<LayerBuildOptions> = {}): LayerBuildOptions {
  return { cacheDir: join(work.path, `cache-${counter++}`), compression: "gzip", mediaType: MediaType.ociLayerGzip, ...extra };
}

type Entry = Partial<tarStream.Header> & { name: string; content?: string | Buffer };

/** A tar made by tar-stream from header/content pairs (for archives GNU tar would not write). */
async function packTar(entries: Entry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const done = collect(pack as never);
  for (const { content, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      pack.entry(header, content ?? "", (error) => (error ? reject(error) : resolve()));
    });
  }
  pack.finalize();
  return done;
}

async function expectRefused(file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(importRootfs(file, options()), (error: Error) => {
    assert.ok(error instanceof InputError, `${error.name}: ${error.message}`);
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes("\n"), "one line");
    return true;
  });
}

describe("tarball sources", () => {
  let fromDirectory: string;
  before(async () => {
    makeTree(tree, 31, 60, 1_500_000);
    // Owned by 0:0 without names, as a directory's layer is: a tarball's owners are kept.
    execFileSync("tar", ["--owner=0", "--group=0", "--numeric-owner", "-C", tree, "-cf", join(work.path, "tree.tar"), "."]);
    fromDirectory = (await buildLayer({ source: tree, dest: "/srv" }, options())).diffID;
  });
  after(() => work.remove());

  it("a tarball of a tree gives the same layer as the tree itself, whatever its compression (detected by content)", async () => {
    const plain = join(work.path, "tree.tar");
    const variants: [string, string[]][] = [
      ["tree.tar.gz", ["gzip", "-c"]],
      ["tree.tar.zst", ["zstd", "-q", "-c"]],
      ["tree.tar.xz", ["xz", "-c"]],
      ["tree.tar.bz2", ["bzip2", "-c"]],
      ["really-zstd.tar.gz", ["zstd", "-q", "-c"]],
    ];
    assert.equal((await buildLayer({ source: plain, dest: "/srv" }, options())).diffID, fromDirectory);
    for (const [name, [command, ...args]] of variants) {
      const file = join(work.path, name);
      writeFileSync(file, execFileSync(command as string, [...args, plain], { maxBuffer: 1 << 30 }));
      const layer = await buildLayer({ source: file, dest: "/srv" }, options());
      assert.equal(layer.diffID, fromDirectory, name);
    }
  });

  it("leaves no spool file behind", async () => {
    const cache = options();
    await buildLayer({ source: join(work.path, "tree.tar"), dest: "/" }, cache);
    assert.deepEqual(readdirSync(join(cache.cacheDir, "tmp")), []);
  });

  it("reuses the layer of an unchanged tarball", async () => {
    const file = join(work.path, "reuse.tar");
    execFileSync("cp", [join(work.path, "tree.tar"), file]);
    execFileSync("touch", ["-d", "@1600000000", file]);
    const cache = options();
    const first = await buildLayer({ source: file, dest: "/" }, cache);
    const again = await buildLayer({ source: file, dest: "/" }, cache);
    assert.equal(first.unchanged, false);
    assert.equal(again.unchanged, true);
    assert.equal(again.descriptor.digest, first.descriptor.digest);
  });

  it("import keeps owners, modes, device nodes, fifos and links exactly", async () => {
    const file = join(work.path, "rootfs.tar");
    writeFileSync(
      file,
      await packTar([
        { name: "./", type: "directory", mode: 0o755 },
        { name: "./dev/", type: "directory", mode: 0o755 },
        { name: "./dev/null", type: "character-device", mode: 0o666, devmajor: 1, devminor: 3 },
        { name: "./dev/sda", type: "block-device", mode: 0o660, devmajor: 8, devminor: 0, gid: 6 },
        { name: "./run/initctl", type: "fifo", mode: 0o600 },
        { name: "./usr/bin/passwd", type: "file", mode: 0o4755, uid: 0, gid: 0, content: "#!/bin/sh\n" },
        { name: "./home/user/.profile", type: "file", mode: 0o644, uid: 1000, gid: 1000, content: "export A=1\n" },
        { name: "./bin/sh", type: "symlink", linkname: "/usr/bin/busybox" },
        { name: "./usr/bin/busybox", type: "file", mode: 0o755, content: "busybox" },
        { name: "./usr/bin/ash", type: "link", linkname: "./usr/bin/busybox" },
        { name: "etc/hostname", type: "file", mode: 0o644, content: "yocto\n" },
      ]),
    );
    const layer = await importRootfs(file, options({ mtime: 1234 }));
    assert.equal(layer.createdBy, "ocify import tarball");
    const entries = await readTar(gunzip(await collect(layer.open())));
    const get = (name: string) => entries.find((e) => e.name === name);
    assert.deepEqual(
      entries.map((e) => e.name),
      [
        "bin/",
        "bin/sh",
        "dev/",
        "dev/null",
        "dev/sda",
        "etc/",
        "etc/hostname",
        "home/",
        "home/user/",
        "home/user/.profile",
        "run/",
        "run/initctl",
        "usr/",
        "usr/bin/",
        "usr/bin/ash",
        "usr/bin/busybox",
        "usr/bin/passwd",
      ],
    );
    assert.deepEqual(
      [get("dev/null")?.type, get("dev/null")?.devmajor, get("dev/null")?.devminor, get("dev/null")?.mode],
      ["character-device", 1, 3, 0o666],
    );
    assert.deepEqual([get("dev/sda")?.type, get("dev/sda")?.devmajor, get("dev/sda")?.gid], ["block-device", 8, 6]);
    assert.equal(get("run/initctl")?.type, "fifo");
    assert.equal(get("usr/bin/passwd")?.mode, 0o4755);
    assert.deepEqual([get("home/user/.profile")?.uid, get("home/user/.profile")?.gid], [1000, 1000]);
    assert.equal(get("bin/sh")?.linkname, "/usr/bin/busybox");
    // "ash" sorts before "busybox": it now carries the content and busybox links to it.
    assert.deepEqual([get("usr/bin/ash")?.type, get("usr/bin/ash")?.size], ["file", 7]);
    assert.deepEqual([get("usr/bin/busybox")?.type, get("usr/bin/busybox")?.linkname], ["link", "usr/bin/ash"]);
    assert.ok(entries.every((e) => e.mtime === 1234));
  });

  it("a tarball given to --layer keeps its owners and their names (or gets --chown's), re-rooted under DEST", async () => {
    const file = join(work.path, "owned.tar");
    const entry = { name: "etc/app.conf", type: "file", mode: 0o640, uid: 33, gid: 34, uname: "www-data", gname: "www-group" } as const;
    writeFileSync(file, await packTar([{ ...entry, content: "x=1\n" }]));
    const kept = await readTar(gunzip(await collect((await buildLayer({ source: file, dest: "/opt" }, options())).open())));
    assert.deepEqual(
      kept.map((e) => [e.name, e.uid, e.gid, e.uname, e.gname, e.mode]),
      [
        ["opt/", 0, 0, "", "", 0o755],
        ["opt/etc/", 0, 0, "", "", 0o755],
        ["opt/etc/app.conf", 33, 34, "www-data", "www-group", 0o640],
      ],
    );
    const chowned = await readTar(
      gunzip(await collect((await buildLayer({ source: file, dest: "/opt" }, options({ chown: { uid: 5, gid: 6 } }))).open())),
    );
    assert.deepEqual(chowned.at(-1) && [chowned.at(-1)?.uid, chowned.at(-1)?.gid, chowned.at(-1)?.uname, chowned.at(-1)?.gname], [
      5,
      6,
      "",
      "",
    ]);
  });

  it("keeps apart the blocks of two large files of one size (their keys differ)", async () => {
    const file = join(work.path, "twins.tar");
    const size = 5 << 20; // a block of 4 MiB and one of the rest each, with no header in the second
    const one = content(random(11), size);
    const two = content(random(12), size);
    writeFileSync(
      file,
      await packTar([
        { name: "one.bin", type: "file", size, content: one },
        { name: "two.bin", type: "file", size, content: two },
      ]),
    );
    const layer = await buildLayer({ source: file, dest: "/" }, options());
    const entries = await readTar(gunzip(await collect(layer.open())));
    assert.deepEqual(
      entries.map((e) => [e.name, e.sha256]),
      [
        ["one.bin", sha256(one).slice(7)],
        ["two.bin", sha256(two).slice(7)],
      ],
    );
  });

  it("refuses entries that climb out of the root, naming the entry on one line", async () => {
    const cases: [string, Entry][] = [
      ["dotdot.tar", { name: "../evil", type: "file", content: "x" }],
      ["nested.tar", { name: "a/../../evil", type: "file", content: "x" }],
      ["hardlink.tar", { name: "passwd", type: "link", linkname: "../../etc/passwd" }],
      ["symlink.tar", { name: "lib/escape", type: "symlink", linkname: "../../../etc/shadow" }],
    ];
    for (const [name, entry] of cases) {
      const file = join(work.path, name);
      writeFileSync(file, await packTar([{ name: "a/", type: "directory" }, entry]));
      const shown = entry.name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      await expectRefused(file, new RegExp(entry.type === "symlink" ? "outside the image's root" : `entry "${shown}" .*escape the root`));
    }
  });

  it("keeps a harmless .., and refuses an absolute name (GNU tar and bsdtar never write one unless told to)", async () => {
    const file = join(work.path, "harmless.tar");
    writeFileSync(
      file,
      await packTar([
        { name: "abs/file", type: "file", content: "a" },
        { name: "x/../y/file", type: "file", content: "b" },
      ]),
    );
    const entries = await readTar(gunzip(await collect((await importRootfs(file, options())).open())));
    assert.deepEqual(
      entries.map((e) => e.name),
      ["abs/", "abs/file", "y/", "y/file"],
    );
    const absolute = join(work.path, "absolute.tar");
    writeFileSync(absolute, await packTar([{ name: "/etc/passwd", type: "file", content: "x" }]));
    await expectRefused(absolute, /entry "\/etc\/passwd" has an absolute name/);
  });

  it("refuses a hardlink to an entry that is not earlier in the archive", async () => {
    const file = join(work.path, "dangling.tar");
    writeFileSync(file, await packTar([{ name: "a", type: "link", linkname: "b" }]));
    await expectRefused(file, /entry "a" is a hardlink to "b", which is not earlier in the archive/);
  });

  it("says so when a .tar is not a tar archive", async () => {
    const file = join(work.path, "junk.tar");
    writeFileSync(file, Buffer.alloc(4096, 7));
    await assert.rejects(buildLayer({ source: file, dest: "/" }, options()), InputError);
  });

  it("says which command is missing for xz and bzip2", async () => {
    const file = join(work.path, "tree.tar.xz");
    const path = process.env.PATH;
    process.env.PATH = join(work.path, "no-such-bin");
    try {
      await assert.rejects(buildLayer({ source: file, dest: "/" }, options()), /xz-compressed and the xz command was not found/);
    } finally {
      process.env.PATH = path;
    }
  });
});
