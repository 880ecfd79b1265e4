/**
 * Every tar that GNU tar, bsdtar and Python's tarfile write, read through `--layer` and `import`: GNU
 * sparse files (pax 0.0, 0.1, 1.0 and the old 'S' entries), GNU long names and links, names that are not
 * UTF-8, extended attributes (SCHILY.xattr.*, bsdtar's LIBARCHIVE.xattr.*), owner names. Each layer is
 * judged by extracting it with GNU tar and comparing the result with the tree the archive was made from.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, linkSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { MediaType } from "../media-types.js";
import { dumpTree, listTar, type TreeEntry } from "../test-support/tar-listing.js";
import { type BuiltLayer, buildLayer, importRootfs, type LayerBuildOptions } from "./build.js";
import { collect, content, gunzip, random, tempDir } from "./fixtures.test.js";

const work = tempDir("ocify-tar-formats-");
const tree = join(work.path, "tree");
const isRoot = process.getuid?.() === 0;
let counter = 0;

function options(extra: Partial<LayerBuildOptions> = {}): LayerBuildOptions {
  return { cacheDir: join(work.path, `cache-${counter++}`), compression: "gzip", mediaType: MediaType.ociLayerGzip, ...extra };
}

/** A name that is not UTF-8 ("café.txt" in latin-1), as bytes. */
const rawName = Buffer.from("caf\xe9.txt", "latin1");
const longDir = `${"a-long-directory-name/".repeat(8)}end`;
const longTarget = `../${"target-".repeat(20)}file`;

/** The tree every archive is made from: sparse files, long and raw names, links, xattrs, owners. */
function makeTree(): void {
  mkdirSync(join(tree, longDir), { recursive: true });
  mkdirSync(join(tree, "bin"));
  // 8 MiB with two data runs and a trailing hole; 5 MiB that starts with a hole and ends with data.
  execFileSync("truncate", ["-s", "8M", join(tree, "sparse.img")]);
  const next = random(3);
  execFileSync("dd", ["of=sparse.img", "bs=4096", "seek=256", "conv=notrunc", "status=none"], { cwd: tree, input: content(next, 8192) });
  execFileSync("dd", ["of=sparse.img", "bs=4096", "seek=1000", "conv=notrunc", "status=none"], { cwd: tree, input: content(next, 100) });
  execFileSync("truncate", ["-s", "5M", join(tree, "tail.img")]);
  execFileSync("dd", ["of=tail.img", "bs=4096", "seek=1270", "conv=notrunc", "status=none"], { cwd: tree, input: content(next, 4096) });
  writeFileSync(Buffer.concat([Buffer.from(`${tree}/`), rawName]), "raw name\n");
  writeFileSync(join(tree, longDir, "file.txt"), content(next, 3000));
  symlinkSync(longTarget, join(tree, longDir, "link"));
  writeFileSync(join(tree, "bin/ping"), "ping\n", { mode: 0o755 });
  linkSync(join(tree, "bin/ping"), join(tree, "bin/ping6"));
  writeFileSync(join(tree, "bin/su"), "su\n");
  execFileSync("setfattr", ["-n", "user.comment", "-v", "hello", join(tree, "sparse.img")]);
  if (isRoot) {
    execFileSync("setcap", ["cap_net_raw+ep", join(tree, "bin/ping")]);
    execFileSync("chown", ["1234:567", join(tree, "bin/su")]); // before the chmod: chown clears setuid
  }
  chmodSync(join(tree, "bin/su"), 0o4755);
}

/** The archives, made by the tools themselves; `xattrs` says whether the format carries them. */
const archives: { name: string; xattrs: boolean; make: (out: string) => void }[] = [
  ...["0.0", "0.1", "1.0"].map((version) => ({
    name: `gnu-posix-sparse-${version}`,
    xattrs: true,
    make: (out: string) =>
      execFileSync("tar", [
        "--format=posix",
        "--sparse",
        `--sparse-version=${version}`,
        "--xattrs",
        "--xattrs-include=*",
        "-C",
        tree,
        "-cf",
        out,
        ".",
      ]),
  })),
  { name: "gnu-format", xattrs: false, make: (out) => execFileSync("tar", ["--format=gnu", "--sparse", "-C", tree, "-cf", out, "."]) },
  { name: "bsdtar-pax", xattrs: true, make: (out) => execFileSync("bsdtar", ["--format=pax", "-C", tree, "-cf", out, "."]) },
  ...["PAX_FORMAT", "GNU_FORMAT"].map((format) => ({
    name: `python-${format}`,
    xattrs: false,
    make: (out: string) =>
      execFileSync("python3", [
        "-c",
        `import sys, tarfile\nwith tarfile.open(sys.argv[1], 'w', format=tarfile.${format}, encoding='utf-8', errors='surrogateescape') as t:\n    t.add(sys.argv[2], arcname='.')`,
        out,
        tree,
      ]),
  })),
];

/** Extract a layer's tar with GNU tar (owners, modes, xattrs) and dump the result. */
function extracted(tar: Buffer, name: string): Record<string, TreeEntry> {
  const dir = join(work.path, `x-${name}-${counter++}`);
  mkdirSync(dir);
  execFileSync("tar", ["--xattrs", "--xattrs-include=*", "--same-owner", "--numeric-owner", "-xpf", "-", "-C", dir], {
    input: tar,
    maxBuffer: 1 << 30,
  });
  return dumpTree(dir);
}

/** What must be equal between the source tree and an extracted layer. */
function comparable(dump: Record<string, TreeEntry>, xattrs: boolean): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(dump).map(([path, e]) => [
      path,
      {
        mode: e.mode,
        owner: isRoot ? `${e.uid}:${e.gid}` : "",
        size: e.mode & 0o40000 ? undefined : e.size,
        sha256: e.sha256,
        linkname: e.linkname,
        xattrs: xattrs ? e.xattrs : {},
      },
    ]),
  );
}

async function layerTar(layer: BuiltLayer): Promise<Buffer> {
  return gunzip(await collect(layer.open()));
}

describe("tar formats", () => {
  let expected: Record<string, TreeEntry>;
  before(() => {
    makeTree();
    expected = dumpTree(tree);
  });
  after(() => work.remove());

  for (const archive of archives) {
    it(`${archive.name}: the layer extracts to the tree the archive was made from`, async () => {
      const file = join(work.path, `${archive.name}.tar`);
      archive.make(file);
      const layer = await importRootfs(file, options());
      const tar = await layerTar(layer);
      assert.deepEqual(comparable(extracted(tar, archive.name), archive.xattrs), comparable(expected, archive.xattrs));
      const raw = listTar(join(work.path, `${archive.name}.tar`)).length;
      assert.ok(raw > 0);
      // --layer keeps the archive's owners and their names too (no --chown).
      const viaLayer = await buildLayer({ source: file, dest: "/" }, options());
      assert.equal(viaLayer.diffID, layer.diffID, "--layer and import make the same layer");
    });
  }

  it("plain, gzip, zstd and xz archives give one layer; sparse files become regular files with their holes as zeros", async () => {
    const plain = join(work.path, "sparse.tar");
    execFileSync("tar", ["--format=posix", "--sparse", "--xattrs", "--xattrs-include=*", "-C", tree, "-cf", plain, "."]);
    const diffID = (await importRootfs(plain, options())).diffID;
    for (const [suffix, command] of [
      ["gz", "gzip"],
      ["zst", "zstd"],
      ["xz", "xz"],
    ] as const) {
      const file = `${plain}.${suffix}`;
      execFileSync(command, ["-q", "-k", "-f", plain]);
      assert.equal((await importRootfs(file, options())).diffID, diffID, suffix);
    }
    const listed = listTar(join(work.path, "sparse.tar"));
    assert.ok(listed.some((e) => e.name === "sparse.img"));
    const layer = listTarBuffer(await layerTar(await importRootfs(plain, options())));
    const sparse = layer.find((e) => e.name === "sparse.img");
    assert.deepEqual([sparse?.type, sparse?.size, sparse?.sha256], ["file", 8 << 20, expected["sparse.img"]?.sha256]);
    assert.ok(
      layer.every((e) => !e.name.includes("GNUSparseFile") && !e.paxKeys.some((k) => k.startsWith("GNU.sparse"))),
      "no GNU sparse names or records left",
    );
    assert.equal(layer.find((e) => e.name === "bin/ping")?.uname, "root");
    assert.equal(layer.find((e) => e.name === Buffer.from(rawName).toString("latin1"))?.type, "file", "the raw name's bytes kept");
  });

  it("says in one warning line what it left out, and refuses in one line what a layer cannot hold", async () => {
    // A volume label names the archive, not a file: left out without a word, in either format.
    for (const format of ["posix", "gnu"]) {
      const labelled = join(work.path, `label-${format}.tar`);
      execFileSync("tar", [`--format=${format}`, "-V", "backup-1", "-C", tree, "-cf", labelled, "bin"]);
      const silent: string[] = [];
      const entries = listTarBuffer(await layerTar(await importRootfs(labelled, options({ warn: (m) => silent.push(m) }))));
      assert.deepEqual([silent, entries.map((e) => e.name)], [[], ["bin", "bin/ping", "bin/ping6", "bin/su"]], format);
    }
    const withRecords = join(work.path, "records.tar");
    execFileSync("python3", [
      "-c",
      "import io, sys, tarfile\nwith tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:\n" +
        "    for n in ('a', 'b'):\n        i = tarfile.TarInfo(n); i.size = 1; i.pax_headers = {'SCHILY.fflags': 'nodump', 'VENDOR.tag': n}\n" +
        "        t.addfile(i, io.BytesIO(b'x'))",
      withRecords,
    ]);
    const warnings: string[] = [];
    const warn = (message: string) => warnings.push(message);
    await importRootfs(withRecords, options({ warn }));
    assert.deepEqual(warnings, [`${withRecords}: left out what no layer reader uses (entries): SCHILY.fflags (2), VENDOR.tag (2)`]);
    const multi = join(work.path, "multi.tar");
    execFileSync("python3", [
      "-c",
      "import io, sys, tarfile\nwith tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT) as t:\n" +
        "    i = tarfile.TarInfo('part'); i.type = b'M'; i.size = 1\n    t.addfile(i, io.BytesIO(b'x'))",
      multi,
    ]);
    await assert.rejects(importRootfs(multi, options()), /entry "part" is a GNU multi-volume continuation, which a layer cannot hold/);
  });

  it("--chown replaces the archive's owners and drops their names", async () => {
    const file = join(work.path, "gnu-format.tar");
    const layer = listTarBuffer(await layerTar(await buildLayer({ source: file, dest: "/opt" }, options({ chown: { uid: 7, gid: 8 } }))));
    const su = layer.find((e) => e.name === "opt/bin/su");
    assert.deepEqual([su?.uid, su?.gid, su?.uname, su?.gname, su?.mode], [7, 8, "", "", 0o4755]);
  });
});

function listTarBuffer(tar: Buffer): ReturnType<typeof listTar> {
  const file = join(work.path, `list-${counter++}.tar`);
  writeFileSync(file, tar);
  return listTar(file);
}
