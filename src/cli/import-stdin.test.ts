/**
 * `ocify import -`: a root filesystem streamed on standard input, as a Yocto image task does under pseudo
 * (`tar --numeric-owner --xattrs --xattrs-include='*' -C ROOTFS -cf - . | ocify import -`). The rootfs is
 * made and archived inside a fake root (Debian's fakeroot, and pseudo's fakeroot wrapper), as a user that
 * is not root when the tests run as root, so owners, the setuid bit, the device node and the capability
 * exist only in the fake root's database: the tar stream is the only place they are.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, createReadStream, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { createGunzip } from "node:zlib";
import { content, random } from "../layer/fixtures.test.js";
import { encodeHeader, paddingFor } from "../layer/tar.js";
import { ocifyBin, runOcify } from "../test-support/cli.js";
import { type DockerEngine, dockerEngineUnavailableReason, startDockerEngine } from "../test-support/docker-engine.js";
import { type ListedEntry, layoutLayers, listTar } from "../test-support/tar-listing.js";

const isRoot = process.getuid?.() === 0;
/** Who runs the fake-root pipeline: nobody when the tests run as root (else the fake root proves nothing). */
const asUser = isRoot ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] : [];

/** The rootfs and the pipeline, in one shell run inside the fake root (dash, as bitbake's tasks run). */
const pipeline = String.raw`set -eu
R="$WORK/rootfs"
mkdir -p "$R/usr/bin" "$R/usr/sbin" "$R/dev" "$R/etc" "$R/bin"
printf '#!/bin/sh\necho su\n' > "$R/usr/bin/su"; chmod 4755 "$R/usr/bin/su"
printf 'ping' > "$R/usr/bin/ping"; chmod 755 "$R/usr/bin/ping"
setcap cap_net_raw+ep "$R/usr/bin/ping"
echo data > "$R/etc/owned"; chown 1234:567 "$R/etc/owned"
ln "$R/etc/owned" "$R/etc/owned-link"
mknod "$R/dev/null" c 1 3
chmod 2775 "$R/usr/sbin"; chown 0:50 "$R/usr/sbin"
if [ -x /bin/busybox ]; then cp /bin/busybox "$R/bin/busybox"; ln -s busybox "$R/bin/sh"; ln -s busybox "$R/bin/stat"; fi
tar --numeric-owner --xattrs --xattrs-include='*' -C "$R" -cf - . |
  "$NODE" "$OCIFY" import - --cmd /bin/sh -t "oci:$WORK/layout:1" -t "docker-archive:$WORK/image.tar:yocto/rootfs:1"
`;

/** A tar of `files` files of `fileSize` seeded bytes each, generated as it is read (never held whole). */
function generatedTar(files: number, fileSize: number): Readable {
  const piece = content(random(7), 4 << 20);
  return Readable.from(
    (function* () {
      for (let f = 0; f < files; f++) {
        const name = Buffer.from(`data/file-${f}.bin`);
        yield encodeHeader({ name, type: "file", mode: 0o644, uid: 1000 + f, gid: 100, size: fileSize, mtime: 1_600_000_000 });
        for (let at = 0; at < fileSize; at += piece.length) {
          piece.writeUInt32LE(f * 65_536 + at / piece.length, 0); // each piece distinct
          yield Buffer.from(piece.subarray(0, Math.min(piece.length, fileSize - at)));
        }
        yield Buffer.alloc(paddingFor(fileSize));
      }
      yield Buffer.alloc(1024);
    })(),
    { objectMode: false },
  );
}

/** The uncompressed size of a gzip file, streamed. */
async function gunzippedSize(path: string): Promise<number> {
  let size = 0;
  for await (const chunk of createReadStream(path).pipe(createGunzip())) size += (chunk as Buffer).length;
  return size;
}

function byName(entries: ListedEntry[]): Map<string, ListedEntry> {
  return new Map(entries.map((e) => [e.name, e]));
}

/** Every property the fake root gave the rootfs, checked on the layer's entries. */
function checkLayer(entries: ListedEntry[]): void {
  const get = byName(entries);
  const owned = get.get("etc/owned");
  const link = get.get("etc/owned-link");
  assert.deepEqual([owned?.uid, owned?.gid, owned?.type], [1234, 567, "file"], "owner 1234:567 kept");
  assert.deepEqual([link?.type, link?.linkname, link?.uid, link?.gid], ["link", "etc/owned", 1234, 567], "hard link kept");
  assert.equal(get.get("usr/bin/su")?.mode, 0o4755, "setuid kept");
  assert.deepEqual([get.get("usr/sbin")?.mode, get.get("usr/sbin")?.gid], [0o2775, 50], "setgid directory kept");
  const dev = get.get("dev/null");
  assert.deepEqual([dev?.type, dev?.devmajor, dev?.devminor], ["char", 1, 3], "device node kept");
  assert.deepEqual([get.get("etc")?.uid, get.get("etc")?.gid], [0, 0]);
  assert.deepEqual(get.get("usr/bin/ping")?.xattrs, { "security.capability": pingCapability }, "file capability kept");
}

/** `setcap cap_net_raw+ep` as the kernel stores it: VFS_CAP_REVISION_2, effective, permitted bit 13. */
const pingCapability = `0100000200200000${"00".repeat(12)}`;

describe("ocify import - (a tar on standard input, made under a fake root)", () => {
  let work: string;
  let engine: DockerEngine | undefined;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-import-stdin-"));
    chmodSync(work, 0o777);
    if (isRoot) engine = await startDockerEngine();
  });
  after(async () => {
    await engine?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const runPipeline = (wrapper: string, dir: string): void => {
    const env = { ...process.env, WORK: dir, NODE: process.execPath, OCIFY: ocifyBin, OCIFY_CACHE_DIR: join(dir, "cache"), HOME: dir };
    const result = spawnSync(asUser[0] ?? wrapper, [...asUser.slice(1), ...(asUser.length ? [wrapper] : []), "dash", "-c", pipeline], {
      env,
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(result.status, 0, `${wrapper}: ${result.stderr}`);
    assert.match(result.stdout, /^sha256:[0-9a-f]{64} oci:/m);
  };

  for (const wrapper of ["fakeroot", "fakeroot-pseudo"]) {
    it(`keeps owners, setuid, a file capability, a device node and a hard link from ${wrapper} (Yocto's pipeline)`, async () => {
      const dir = join(work, wrapper);
      execFileSync("mkdir", ["-m", "777", dir]);
      runPipeline(wrapper, dir);
      // The fake root's properties are not on the disk: only the tar stream carried them.
      if (isRoot) assert.notEqual(statSync(join(dir, "rootfs/etc/owned")).uid, 1234);
      const [layer] = layoutLayers(join(dir, "layout"));
      checkLayer(listTar(layer as string));
    });
  }

  it("umoci unpacks the image with every property, as root", { skip: !isRoot && "umoci unpack keeps owners only as root" }, () => {
    const dir = join(work, "fakeroot");
    const bundle = join(dir, "bundle");
    execFileSync("umoci", ["unpack", "--image", `${join(dir, "layout")}:1`, bundle], { stdio: "pipe" });
    const root = join(bundle, "rootfs");
    const owned = lstatSync(join(root, "etc/owned"));
    assert.deepEqual([owned.uid, owned.gid], [1234, 567]);
    assert.equal(lstatSync(join(root, "etc/owned-link")).ino, owned.ino, "hard link");
    assert.equal(lstatSync(join(root, "usr/bin/su")).mode & 0o7777, 0o4755);
    const dev = lstatSync(join(root, "dev/null"));
    assert.ok(dev.isCharacterDevice());
    assert.equal(dev.rdev, 259, "1:3");
    assert.ok(readdirSync(root).includes("usr"));
  });

  it("docker loads the archive, runs it with the owners and modes, and sets the capability", async (t) => {
    if (!engine) {
      t.skip(`Docker engine unavailable: ${dockerEngineUnavailableReason()}`);
      return;
    }
    const dir = join(work, "fakeroot");
    if (!existsSync(join(dir, "rootfs/bin/busybox"))) {
      t.skip("busybox-static is not installed, so the image has no shell to run");
      return;
    }
    const loaded = await engine.docker(["load", "-i", join(dir, "image.tar")]);
    assert.equal(loaded.code, 0, loaded.stderr);
    const ran = await engine.docker([
      "run",
      "--rm",
      "yocto/rootfs:1",
      "/bin/stat",
      "-c",
      "%n %u:%g %a %F %t,%T %i",
      "/etc/owned",
      "/etc/owned-link",
      "/usr/bin/su",
      "/usr/sbin",
    ]);
    assert.equal(ran.code, 0, ran.stderr);
    const lines = ran.stdout.trim().split("\n");
    assert.match(lines[0] ?? "", /^\/etc\/owned 1234:567 644 regular file /);
    assert.equal(lines[0]?.split(" ").at(-1), lines[1]?.split(" ").at(-1), "the hard link shares the inode");
    assert.match(lines[2] ?? "", /^\/usr\/bin\/su 0:0 4755 /);
    assert.match(lines[3] ?? "", /^\/usr\/sbin 0:50 2775 directory/);
    // The engine set the capability on the container's file: its export reads it back from the file system.
    const created = await engine.docker(["create", "yocto/rootfs:1"]);
    assert.equal(created.code, 0, created.stderr);
    const exported = join(dir, "exported.tar");
    const exporting = await engine.docker(["export", "-o", exported, created.stdout.trim()]);
    assert.equal(exporting.code, 0, exporting.stderr);
    const ping = listTar(exported).find((e) => e.name === "usr/bin/ping");
    assert.equal(ping?.xattrs["security.capability"], pingCapability, "docker export shows the capability");
  });

  it("reads /dev/stdin and a FIFO as it reads -, each once, to the same layer as the file", async () => {
    const dir = join(work, "paths");
    execFileSync("mkdir", [dir]);
    const tarball = join(dir, "rootfs.tar.gz");
    execFileSync("sh", ["-c", `mkdir -p "${dir}/r/etc" && echo x > "${dir}/r/etc/x" && tar -C "${dir}/r" -czf "${tarball}" .`]);
    const env = { OCIFY_CACHE_DIR: join(dir, "cache") };
    const layerOf = (name: string): string => (layoutLayers(join(dir, name))[0] as string).slice(-64);
    const fromFile = await runOcify(["import", tarball, "-t", `oci:${join(dir, "file")}:1`], { env });
    assert.equal(fromFile.code, 0, fromFile.stderr);
    for (const source of ["-", "/dev/stdin"]) {
      const name = source === "-" ? "dash" : "dev-stdin";
      const result = await runOcify(["import", source, "-t", `oci:${join(dir, name)}:1`], { env, stdin: createReadStream(tarball) });
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stderr, /ocify:|Error/);
      assert.equal(layerOf(name), layerOf("file"), source);
    }
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    // The writer blocks until ocify opens the FIFO to read it.
    const writer = spawn("sh", ["-c", 'exec cat "$1" > "$2"', "sh", tarball, fifo], { stdio: "ignore" });
    const written = new Promise<number | null>((resolve) => writer.on("close", resolve));
    const result = await runOcify(["import", fifo, "-t", `oci:${join(dir, "fifo-layout")}:1`], { env });
    assert.equal(await written, 0);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(layerOf("fifo-layout"), layerOf("file"), "FIFO");
    assert.deepEqual(readdirSync(join(dir, "cache", "tmp")), [], "no spool left behind");
  });

  it("says in one line what is wrong with standard input that is not a tar, or is cut short", async () => {
    const dir = join(work, "bad");
    execFileSync("mkdir", [dir]);
    const env = { OCIFY_CACHE_DIR: join(dir, "cache") };
    const junk = await runOcify(["import", "-", "-t", `oci:${join(dir, "junk")}:1`], {
      env,
      stdin: Readable.from([Buffer.from("not a tar at all\n".repeat(100))]),
    });
    assert.equal(junk.code, 1, junk.stderr);
    assert.match(junk.stderr, /^ocify: .*standard input/);
    assert.equal(junk.stderr.trim().split("\n").length, 1, junk.stderr);
    const whole = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      generatedTar(2, 100_000)
        .on("data", (c: Buffer) => chunks.push(c))
        .on("end", () => resolve(Buffer.concat(chunks)));
    });
    const cut = await runOcify(["import", "-", "-t", `oci:${join(dir, "cut")}:1`], {
      env,
      stdin: Readable.from([whole.subarray(0, 150_000)]),
    });
    assert.equal(cut.code, 1, cut.stderr);
    assert.match(cut.stderr, /^ocify: .*standard input.*truncated/);
    assert.equal(cut.stderr.trim().split("\n").length, 1, cut.stderr);
    assert.ok(!existsSync(join(dir, "cut", "index.json")), "no image written");
  });

  it("streams a 1 GiB tar from standard input in bounded memory", async () => {
    const dir = join(work, "big");
    execFileSync("mkdir", [dir]);
    const fileSize = 64 << 20;
    const result = await runOcify(["import", "-", "-t", `oci:${join(dir, "layout")}:1`], {
      env: { OCIFY_CACHE_DIR: join(dir, "cache") },
      stdin: generatedTar(16, fileSize),
      timeoutMs: 600_000,
    });
    assert.equal(result.code, 0, result.stderr);
    console.log(`# peak RSS importing a 1 GiB tar from standard input: ${result.maxRssMiB.toFixed(0)} MiB`);
    const layer = layoutLayers(join(dir, "layout"))[0] as string;
    assert.ok((await gunzippedSize(layer)) > 16 * fileSize, "every byte went into the layer");
    assert.ok(result.maxRssMiB < 200, `peak RSS ${result.maxRssMiB.toFixed(0)} MiB`);
  });
});
