import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { readBounded } from "../bounded.js";
import { createVerifier } from "../digest.js";
import { InputError, InvalidImageError, OcifyError } from "../errors.js";
import { encodeArchiveHeader } from "../tar/header.js";
import { TarFileWriter, TarIndex } from "./tar-archive.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "ocify-tar-test-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function seeded(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function read(index: TarIndex, name: string): Promise<Buffer> {
  const entry = index.find(name);
  assert.ok(entry, `${name} is in the index`);
  return readBounded(index.stream(entry), 1 << 30, name);
}

describe("TarIndex", () => {
  const longName = `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(120)}.bin`;
  const files: Record<string, Buffer> = {
    "small.txt": Buffer.from("hello\n"),
    empty: Buffer.alloc(0),
    "exact-block": seeded(512, 3),
    "big.bin": seeded(300_000, 7),
    [longName]: seeded(1000, 9),
  };

  function makeTree(): string {
    const root = mkdtempSync(join(dir, "tree-"));
    for (const [name, bytes] of Object.entries(files)) {
      mkdirSync(join(root, name, ".."), { recursive: true });
      writeFileSync(join(root, name), bytes);
    }
    symlinkSync("big.bin", join(root, "link-to-big"));
    mkdirSync(join(root, "sub"));
    symlinkSync("../small.txt", join(root, "sub", "up"));
    return root;
  }

  for (const format of ["posix", "gnu", "ustar"] as const) {
    it(`reads GNU tar --format=${format} archives, long names, symlinks and hard links included`, async () => {
      const root = makeTree();
      if (format !== "ustar") execFileSync("ln", [join(root, "small.txt"), join(root, "hard")]);
      const archive = join(dir, `${format}.tar`);
      const members = format === "ustar" ? Object.keys(files).filter((n) => n !== longName) : ["."];
      execFileSync("tar", [`--format=${format}`, "-C", root, "-cf", archive, ...members]);
      const index = await TarIndex.open(archive, "test");
      for (const [name, bytes] of Object.entries(files)) {
        if (format === "ustar" && name === longName) continue;
        assert.ok((await read(index, name)).equals(bytes), `${name} reads back`);
        assert.ok((await read(index, `./${name}`)).equals(bytes), `./${name} reads back`);
      }
      if (format !== "ustar") {
        assert.ok((await read(index, "link-to-big")).equals(files["big.bin"]!), "symlink followed");
        assert.ok((await read(index, "sub/up")).equals(files["small.txt"]!), "relative symlink followed");
        assert.ok((await read(index, "hard")).equals(files["small.txt"]!), "hard link followed");
        assert.ok([index.entries.get("hard")?.type, index.entries.get("small.txt")?.type].includes("hardlink"));
        assert.equal(index.entries.get("sub")?.type, "directory");
      }
      assert.equal(index.find("nope"), undefined);
    });
  }

  it("rejects files that are not tar archives (compressed or not) with a hint", async () => {
    const text = join(dir, "text.tar");
    writeFileSync(text, "this is not a tar archive at all\n".repeat(40));
    await assert.rejects(TarIndex.open(text, "docker-archive:text.tar"), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /is not a tar archive/);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
    const gz = join(dir, "x.tar.gz");
    writeFileSync(gz, execFileSync("gzip", ["-c"], { input: "text, not a tar ".repeat(100) }));
    await assert.rejects(
      TarIndex.open(gz, "t"),
      (e: unknown) => e instanceof InputError && /decompressed file is not a tar/.test(e.message),
    );
    const broken = join(dir, "broken.tar.gz");
    writeFileSync(broken, execFileSync("gzip", ["-c"], { input: Buffer.alloc(100_000, 1) }).subarray(0, 60));
    await assert.rejects(TarIndex.open(broken, "t"), (e: unknown) => e instanceof InvalidImageError && /cannot decompress/.test(e.message));

    const empty = join(dir, "empty.tar");
    writeFileSync(empty, "");
    await assert.rejects(TarIndex.open(empty, "t"), (e: unknown) => e instanceof InputError && /empty/.test(e.hint ?? ""));
    await assert.rejects(TarIndex.open(join(dir, "missing.tar"), "t"), (e: unknown) => e instanceof InputError && /ENOENT/.test(e.message));
  });

  it("rejects a truncated archive and a corrupt header", async () => {
    const root = makeTree();
    const archive = join(dir, "whole.tar");
    execFileSync("tar", ["-C", root, "-cf", archive, "big.bin", "small.txt"]);
    const bytes = readFileSync(archive);
    const truncated = join(dir, "truncated.tar");
    writeFileSync(truncated, bytes.subarray(0, 100_000));
    await assert.rejects(TarIndex.open(truncated, "t"), (e: unknown) => e instanceof InvalidImageError && /truncated/.test(e.message));
    const corrupt = Buffer.from(bytes);
    const second = 512 + Math.ceil(files["big.bin"]!.length / 512) * 512;
    corrupt[second + 10] = 0x41;
    const corruptPath = join(dir, "corrupt.tar");
    writeFileSync(corruptPath, corrupt);
    await assert.rejects(TarIndex.open(corruptPath, "t"), (e: unknown) => e instanceof InvalidImageError && /corrupt/.test(e.message));
  });
});

describe("compressed archives (docker save | gzip, | zstd)", () => {
  for (const [name, compress] of [
    ["gzip", ["gzip", "-c"]],
    ["zstd", ["zstd", "-q", "-c"]],
  ] as const) {
    it(`are decompressed to a temp file, indexed, and the copy removed by close() (${name})`, async () => {
      const root = mkdtempSync(join(dir, "ctree-"));
      writeFileSync(join(root, "a.txt"), "compressed archive member\n");
      const archive = join(dir, `c.tar.${name}`);
      writeFileSync(
        archive,
        execFileSync(compress[0], compress.slice(1), { input: execFileSync("tar", ["-C", root, "-cf", "-", "a.txt"]) }),
      );
      const index = await TarIndex.open(archive, "t");
      assert.ok(index.tempDir);
      assert.equal((await read(index, "a.txt")).toString(), "compressed archive member\n");
      await index.close();
      assert.equal(existsSync(index.tempDir), false);
    });
  }
});

describe("TarFileWriter", () => {
  it("streams entries of known size in any order and concurrently; GNU tar reads the result", async () => {
    const target = join(dir, "out.tar");
    const writer = await TarFileWriter.create(target);
    const blobs = [seeded(3_000_000, 1), seeded(1, 2), seeded(512, 3), seeded(70_000, 4)];
    await writer.addBytes("blobs", undefined);
    const longName = `blobs/${"x".repeat(150)}/${"y".repeat(120)}`;
    const slow = (bytes: Buffer): Readable => {
      // Deliver in small chunks with pauses, so the writes really interleave.
      const stream = new PassThrough();
      let offset = 0;
      const tick = () => {
        if (offset >= bytes.length) {
          stream.end();
          return;
        }
        stream.write(bytes.subarray(offset, offset + 65536));
        offset += 65536;
        setImmediate(tick);
      };
      setImmediate(tick);
      return stream;
    };
    await Promise.all(
      blobs.map((bytes, i) =>
        writer.addStream(
          i === 3 ? longName : `blobs/${i}`,
          bytes.length,
          slow(bytes),
          createVerifier({ digest: sha256(bytes), size: bytes.length }, `blob ${i}`),
        ),
      ),
    );
    await writer.addBytes("blobs/link", "", { linkname: "0" });
    await writer.addBytes("index.json", "{}");
    assert.equal(existsSync(target), false, "nothing at the target before commit");
    await writer.commit();
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes("out.tar")),
      ["out.tar"],
    );
    const listing = execFileSync("tar", ["-tf", target], { encoding: "utf8" }).trim().split("\n");
    assert.deepEqual(listing.slice(-2), ["blobs/link", "index.json"], "metadata written last");
    const extracted = mkdtempSync(join(dir, "x-"));
    execFileSync("tar", ["-C", extracted, "-xf", target]);
    blobs.forEach((bytes, i) => {
      assert.ok(readFileSync(join(extracted, i === 3 ? longName : `blobs/${i}`)).equals(bytes), `blob ${i} intact`);
    });
    const index = await TarIndex.open(target, "t");
    assert.ok((await read(index, "blobs/link")).equals(blobs[0]!));
    assert.equal((await read(index, "index.json")).toString(), "{}");
  });

  it("fails a blob whose bytes do not match, reuses its region on retry, and refuses to commit while it is broken", async () => {
    const target = join(dir, "retry.tar");
    const writer = await TarFileWriter.create(target);
    const good = seeded(10_000, 5);
    const bad = Buffer.from(good);
    bad[5000] = (bad[5000] ?? 0) ^ 1;
    const expected = { digest: sha256(good), size: good.length };
    await assert.rejects(writer.addStream("blob", good.length, Readable.from([bad]), createVerifier(expected, "blob")), OcifyError);
    await assert.rejects(writer.commit(), /not written completely/);
    await writer.addStream("blob", good.length, Readable.from([good]), createVerifier(expected, "blob"));
    await assert.rejects(
      writer.addStream(
        "short",
        100,
        Readable.from([Buffer.alloc(50)]),
        createVerifier({ digest: sha256(Buffer.alloc(100)), size: 100 }, "short"),
      ),
      /size mismatch/,
    );
    await writer.addStream(
      "short",
      100,
      Readable.from([Buffer.alloc(100)]),
      createVerifier({ digest: sha256(Buffer.alloc(100)), size: 100 }, "short"),
    );
    await writer.commit();
    const index = await TarIndex.open(target, "t");
    assert.ok((await read(index, "blob")).equals(good));
    assert.equal((await read(index, "short")).length, 100);
  });

  it("abort() leaves nothing behind, even with a stream still running", async () => {
    const sub = mkdtempSync(join(dir, "abort-"));
    const writer = await TarFileWriter.create(join(sub, "a.tar"));
    const never = new PassThrough();
    never.write(Buffer.alloc(1000));
    const pending = writer.addStream("blob", 5000, never, createVerifier({ digest: sha256(Buffer.alloc(5000)), size: 5000 }, "blob"));
    pending.catch(() => {});
    await writer.abort();
    await assert.rejects(pending);
    assert.deepEqual(readdirSync(sub), []);
  });
});

describe("entries of 8 GiB and more", () => {
  it("get a PAX size record that GNU tar and TarIndex both read (checked on a sparse file)", async () => {
    const { openSync, writeSync, ftruncateSync, closeSync } = await import("node:fs");
    const size = 8 * 1024 ** 3 + 5;
    const path = join(dir, "sparse.tar");
    const fd = openSync(path, "w");
    const first = encodeArchiveHeader({ name: "huge.bin", type: "file", size, mode: 0o644 });
    writeSync(fd, first, 0, first.length, 0);
    const dataEnd = first.length + size + ((512 - (size % 512)) % 512);
    const tail = Buffer.from("tail\n");
    const second = encodeArchiveHeader({ name: "after.txt", type: "file", size: tail.length, mode: 0o644 });
    writeSync(fd, second, 0, second.length, dataEnd);
    writeSync(fd, tail, 0, tail.length, dataEnd + second.length);
    ftruncateSync(fd, dataEnd + second.length + 512 + 1024);
    closeSync(fd);
    const index = await TarIndex.open(path, "sparse");
    assert.equal(index.find("huge.bin")?.size, size);
    assert.equal(index.find("huge.bin")?.offset, first.length);
    assert.equal((await read(index, "after.txt")).toString(), "tail\n");
    const listing = execFileSync("tar", ["-tvf", path], { encoding: "utf8" });
    assert.match(listing, new RegExp(`${size} .* huge\\.bin`));
    assert.match(listing, /after\.txt/);
  });
});

describe("the bytes of an archive's headers", () => {
  // Pinned: docker-archive and oci-archive files are compared by checksum downstream (a CI cache, a
  // release's SHA256SUMS), so a change to how their tar headers are laid out must be a decision, not an
  // accident of refactoring. Each case is a header form: ustar alone, the ustar prefix field, and pax
  // records for a long name, a long link target and a size of 8 GiB or more.
  const cases = [
    { name: "manifest.json", type: "file", size: 1234, mode: 0o644 },
    { name: "blobs/sha256/", type: "directory", size: 0, mode: 0o755 },
    { name: "legacy/layer.tar", type: "symlink", size: 0, mode: 0o777, linkname: "../blobs/sha256/abc" },
    { name: `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(20)}`, type: "file", size: 1, mode: 0o644 },
    { name: "n".repeat(180), type: "file", size: 7, mode: 0o644 },
    { name: "link", type: "symlink", size: 0, mode: 0o777, linkname: "t".repeat(130) },
    { name: "huge.bin", type: "file", size: 8 * 1024 ** 3 + 5, mode: 0o644 },
  ] as const;
  const pinned = [
    "sha256:7acabba0748b7f5e2a5ff8cb9ec6bc7ab9586e7a37522bc5065732dab21c3c29",
    "sha256:1a69d1a3e15a7f90c3f0c4c84d1fdc268a7c76bc19d5e5ef2ea76394144e5b83",
    "sha256:aaa8cd2efee75f7aeba202a2e86d37b2a3eb28a123605b6a419431c8ee1ad800",
    "sha256:559f3198d2705330841a8ae9026d5394695ddf41938ab3775799e02941d73ec1",
    "sha256:62668268db4fe0305d8fc524b34a72a26cc507f46ba3e2c7576431ad8a40e499",
    "sha256:4cb407347dca0ba39e1c16f728c3aeee621db7427fcd35665d558b3882b2feda",
    "sha256:707b260ef460addede8d16274d9af66ffa557c5b7955e72a55a0dd8aac61a1b3",
  ];

  it("are what they have always been, form by form", async () => {
    assert.deepEqual(
      cases.map((fields) => sha256(encodeArchiveHeader({ ...fields }))),
      pinned,
    );
  });

  it("make a whole archive that is what it has always been", async () => {
    const path = join(dir, "pinned.tar");
    const writer = await TarFileWriter.create(path);
    await writer.addBytes("blobs", undefined);
    await writer.addBytes("oci-layout", '{"imageLayoutVersion":"1.0.0"}');
    const content = seeded(3000, 7);
    await writer.addStream(
      "blobs/sha256/x",
      content.length,
      Readable.from([content]),
      createVerifier({ digest: sha256(content), size: content.length }, "x"),
    );
    await writer.addBytes("legacy/layer.tar", "", { linkname: "../blobs/sha256/x" });
    await writer.commit();
    assert.equal(sha256(readFileSync(path)), "sha256:8ddec4cab1fd913e8150f1b099da5363ab571a17bbafaeb399bf41ccea9f1ecc");
  });
});
