/** `ocify import`: a root filesystem (directory or tarball in any compression) becomes a one-layer image, entries kept exactly. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { createGunzip } from "node:zlib";
import { extract } from "tar-stream";
import { runOcify } from "../test-support/cli.js";

interface Entry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  linkname: string | null;
  devmajor: number;
  devminor: number;
}

/** The entries of the single layer of an OCI layout's image, read with tar-stream (an independent reader). */
async function layerEntries(layout: string): Promise<Entry[]> {
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  const blob = (digest: string) => join(layout, "blobs", "sha256", digest.slice(7));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0].digest), "utf8"));
  assert.equal(manifest.layers.length, 1);
  const entries: Entry[] = [];
  const parser = extract();
  parser.on("entry", (header, stream, next) => {
    entries.push({
      name: header.name.replace(/^\.\//, "").replace(/\/$/, ""),
      type: header.type ?? "file",
      mode: header.mode ?? 0,
      uid: header.uid ?? 0,
      gid: header.gid ?? 0,
      linkname: header.linkname ?? null,
      devmajor: header.devmajor ?? 0,
      devminor: header.devminor ?? 0,
    });
    stream.on("end", next);
    stream.resume();
  });
  const done = new Promise((resolve, reject) => {
    parser.on("finish", () => resolve(undefined));
    parser.on("error", reject);
  });
  Readable.from([readFileSync(blob(manifest.layers[0].digest))])
    .pipe(createGunzip())
    .pipe(parser);
  await done;
  return entries;
}

describe("ocify import", () => {
  let work: string;
  let rootfs: string;
  const env = (): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, "cache") });
  const isRoot = process.getuid?.() === 0;

  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-import-test-"));
    rootfs = join(work, "rootfs");
    mkdirSync(join(rootfs, "usr/bin"), { recursive: true });
    mkdirSync(join(rootfs, "dev"));
    mkdirSync(join(rootfs, "etc"));
    writeFileSync(join(rootfs, "usr/bin/tool"), "#!/bin/sh\n", { mode: 0o4755 });
    writeFileSync(join(rootfs, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    symlinkSync("/usr/bin/tool", join(rootfs, "usr/bin/alias"));
    linkSync(join(rootfs, "usr/bin/tool"), join(rootfs, "usr/bin/tool-hard"));
    execFileSync("mkfifo", [join(rootfs, "dev/fifo")]);
    if (isRoot) {
      execFileSync("mknod", [join(rootfs, "dev/null"), "c", "1", "3"]);
      execFileSync("chown", ["1234:5678", join(rootfs, "etc/passwd")]);
    }
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const tarball = (name: string, compressor?: string[]): string => {
    const path = join(work, name);
    const tar = execFileSync("tar", ["--numeric-owner", "-C", rootfs, "-cf", "-", "."], { maxBuffer: 1 << 28 });
    writeFileSync(path, compressor ? execFileSync(compressor[0] as string, compressor.slice(1), { input: tar, maxBuffer: 1 << 28 }) : tar);
    return path;
  };

  const checkEntries = (entries: Entry[]) => {
    const byName = new Map(entries.map((e) => [e.name, e]));
    assert.equal(byName.get("usr/bin/tool")?.mode, 0o4755, "setuid mode kept");
    assert.equal(byName.get("usr/bin/alias")?.type, "symlink");
    assert.equal(byName.get("usr/bin/alias")?.linkname, "/usr/bin/tool");
    const hard = [byName.get("usr/bin/tool-hard"), byName.get("usr/bin/tool")].find((e) => e?.type === "link");
    assert.ok(hard, "hard link kept as a link entry");
    assert.equal(byName.get("dev/fifo")?.type, "fifo");
    if (isRoot) {
      assert.equal(byName.get("dev/null")?.type, "character-device");
      assert.equal(byName.get("dev/null")?.devmajor, 1);
      assert.equal(byName.get("dev/null")?.devminor, 3);
      assert.equal(byName.get("etc/passwd")?.uid, 1234, "owner kept");
      assert.equal(byName.get("etc/passwd")?.gid, 5678);
    }
  };

  it("imports a rootfs directory", async () => {
    const layout = join(work, "from-dir");
    const result = await runOcify(["import", rootfs, "--platform", "linux/arm64", "--cmd", "/bin/sh", "-t", `oci:${layout}:1`], {
      env: env(),
    });
    assert.equal(result.code, 0, result.stderr);
    checkEntries(await layerEntries(layout));
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    const manifest = JSON.parse(readFileSync(join(layout, "blobs/sha256", index.manifests[0].digest.slice(7)), "utf8"));
    const config = JSON.parse(readFileSync(join(layout, "blobs/sha256", manifest.config.digest.slice(7)), "utf8"));
    assert.equal(config.architecture, "arm64");
    assert.deepEqual(config.config.Cmd, ["/bin/sh"]);
  });

  for (const [name, compressor] of [
    ["rootfs.tar", undefined],
    ["rootfs.tgz", ["gzip", "-c"]],
    ["rootfs.tar.xz", ["xz", "-c"]],
    ["rootfs.tar.bz2", ["bzip2", "-c"]],
    ["rootfs.tar.zst", ["zstd", "-c"]],
    ["misnamed.bin", ["xz", "-c"]],
  ] as [string, string[] | undefined][]) {
    it(`imports ${name} (compression detected by content)`, async () => {
      const layout = join(work, `layout-${name}`);
      const result = await runOcify(["import", tarball(name, compressor), "-t", `oci:${layout}:1`], { env: env() });
      assert.equal(result.code, 0, result.stderr);
      checkEntries(await layerEntries(layout));
    });
  }

  it("refuses entries that would escape the root, in one line, writing nothing", async () => {
    const hostile = join(work, "hostile.tar");
    execFileSync("python3", [
      "-c",
      "import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'w')\ni=tarfile.TarInfo('../../etc/evil');d=b'x';i.size=len(d);t.addfile(i,io.BytesIO(d));t.close()",
      hostile,
    ]);
    const layout = join(work, "hostile-layout");
    const result = await runOcify(["import", hostile, "-t", `oci:${layout}:1`], { env: env() });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^ocify: .*\.\.\/\.\.\/etc\/evil/);
    assert.equal(result.stderr.trim().split("\n").length, 1);
    assert.ok(!existsSync(join(layout, "index.json")), "no image written");
  });

  it("warns in one line about what the layer leaves out of a tarball, and goes on", async () => {
    const tarball = join(work, "vendor.tar");
    execFileSync("python3", [
      "-c",
      "import io,sys,tarfile\nt=tarfile.open(sys.argv[1],'w',format=tarfile.PAX_FORMAT)\ni=tarfile.TarInfo('etc/x');i.size=1;i.pax_headers={'VENDOR.tag':'1'};t.addfile(i,io.BytesIO(b'x'));t.close()",
      tarball,
    ]);
    const result = await runOcify(["import", tarball, "-q", "-t", `oci:${join(work, "vendor-layout")}:1`], { env: env() });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, `ocify: warning: ${tarball}: left out what no layer reader uses (entries): VENDOR.tag (1)\n`);
  });

  it("says what is wrong with a file that is not a tarball", async () => {
    const junk = join(work, "junk.tar");
    writeFileSync(junk, "this is not a tar archive at all, just text\n".repeat(20));
    const result = await runOcify(["import", junk, "-t", `oci:${join(work, "junk-layout")}:1`], { env: env() });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /^ocify: .*junk\.tar/);
    assert.equal(result.stderr.trim().split("\n").length, 1);
  });
});
