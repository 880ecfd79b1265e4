/**
 * The hostile-input corpus, generated here: layer and rootfs tarballs, image archives and OCI layouts
 * built to escape, confuse or exhaust. Each is given to the real CLI; each must be refused with one line
 * and exit 1, leave no destination, and change nothing outside it (a canary tree beside the inputs, the
 * system temp directory's ocify entries).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { boundedExpansion, setDecompressionLimits } from "./decompression.js";
import { runOcify } from "./test-support/cli.js";
import { recordFigures } from "./test-support/figures.js";
import { paxRecord, type RawEntry, rawTar } from "./test-support/tar-writer.js";

const sha = (bytes: Buffer | string): string => createHash("sha256").update(bytes).digest("hex");

/**
 * Every path below `dir` with its size and mtime (directories by name only: creating and removing the
 * destination beside the input changes its directory's time): what "nothing changed" is checked against.
 */
function snapshot(dir: string): Record<string, string> {
  const seen: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      const info = statSync(path);
      seen[path] = entry.isDirectory() ? "dir" : `${info.size}:${info.mtimeMs}`;
      if (entry.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return seen;
}

const ocifyTemps = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith("ocify-archive-"));

/** A docker-archive with one empty layer whose manifest.json is `manifest` (paths as given). */
function dockerArchive(manifest: unknown, extra: RawEntry[] = []): Buffer {
  const layer = rawTar([{ name: "hello.txt", data: "hi\n" }]);
  const config = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [`sha256:${sha(layer)}`] } });
  return rawTar([
    { name: `blobs/sha256/${sha(config)}`, data: config },
    { name: `blobs/sha256/${sha(layer)}`, data: layer },
    ...(manifest === undefined ? [] : [{ name: "manifest.json", data: JSON.stringify(manifest) }]),
    ...extra,
  ]);
}

function configPath(): { config: string; layer: string } {
  const layer = rawTar([{ name: "hello.txt", data: "hi\n" }]);
  const config = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [`sha256:${sha(layer)}`] } });
  return { config: `blobs/sha256/${sha(config)}`, layer: `blobs/sha256/${sha(layer)}` };
}

/** An OCI layout directory with `index.json` as given and one blob. */
function ociLayout(dir: string, index: string, blobs: Record<string, Buffer | string> = {}): void {
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, "index.json"), index);
  for (const [name, bytes] of Object.entries(blobs)) writeFileSync(join(dir, "blobs", "sha256", name), bytes);
}

interface Case {
  name: string;
  /** Writes the input under `dir` and returns the ocify arguments (DEST stands for the destination). */
  make(dir: string): string[];
  error: RegExp;
}

const zeros = (mib: number): Buffer => gzipSync(Buffer.alloc(mib << 20), { level: 1 });
const layerCase = (name: string, entries: RawEntry[], error: RegExp, compress = false): Case[] =>
  (["build", "import"] as const).map((command) => ({
    name: `${command}: ${name}`,
    error,
    make(dir) {
      const input = join(dir, compress ? "input.tar.gz" : "input.tar");
      writeFileSync(input, compress ? gzipSync(rawTar(entries)) : rawTar(entries));
      return command === "build"
        ? ["build", "--from", "scratch", "--layer", `${input}:/app`, "-t", "DEST"]
        : ["import", input, "-t", "DEST"];
    },
  }));

const cases: Case[] = [
  ...layerCase("a name that climbs out with ..", [{ name: "../../outside/evil", data: "x" }], /would escape the root/),
  ...layerCase("an absolute name", [{ name: "/etc/passwd", data: "root::0:0::/:/bin/sh\n" }], /has an absolute name/),
  ...layerCase(
    "a symlink out of the root, then a write through it",
    [
      { name: "evil", type: "symlink", linkname: "/etc" },
      { name: "evil/passwd", data: "x" },
    ],
    /is written through "evil", a symlink/,
  ),
  ...layerCase(
    "a relative symlink out of the root, then a directory through it",
    [
      { name: "up", type: "symlink", linkname: "../../.." },
      { name: "up/tmp/", type: "dir" },
    ],
    /is written through "up"/,
  ),
  ...layerCase(
    "a hardlink out of the root",
    [{ name: "shadow", type: "hardlink", linkname: "../../etc/shadow" }],
    /hardlink that would escape/,
  ),
  ...layerCase(
    "a hardlink to a file not in the archive",
    [{ name: "shadow", type: "hardlink", linkname: "etc/shadow" }],
    /not earlier in the archive/,
  ),
  ...layerCase(
    "the same file twice",
    [
      { name: "app.conf", data: "safe" },
      { name: "app.conf", data: "evil" },
    ],
    /appears twice/,
  ),
  ...layerCase(
    // Past the tar reader's 16 MiB bound on a metadata header (a few MiB are read: GNU tar writes such).
    "a 17 MiB PAX header",
    [{ name: "PaxHeaders/x", type: "pax", data: paxRecord("comment", "x".repeat(17 << 20)) }],
    /its x header at byte 0 is too large/,
  ),
  ...layerCase("a truncated archive", [{ name: "big.bin", data: Buffer.alloc(1000, 1), size: 100_000 }], /truncated|unexpected end/i, true),
  {
    name: "build: random bytes named .tar",
    error: /junk\.tar.*not a tar archive/,
    make(dir) {
      // Several tar blocks of noise: the first header's checksum cannot hold.
      writeFileSync(
        join(dir, "junk.tar"),
        Buffer.concat(Array.from({ length: 64 }, (_, i) => createHash("sha512").update(`junk ${i}`).digest())),
      );
      return ["build", "--from", "scratch", "--layer", `${join(dir, "junk.tar")}:/app`, "-t", "DEST"];
    },
  },
  ...(["build", "import"] as const).map((command) => ({
    name: `${command}: a gzip bomb (256 MiB of zeros in 250 KiB) past --max-expanded-size`,
    error: /refusing .*bomb\.tar\.gz: it expands to more than 64\.0 MiB \(if it is genuine, raise --max-expanded-size\)/,
    make(dir: string) {
      writeFileSync(join(dir, "bomb.tar.gz"), zeros(256));
      const limit = ["--max-expanded-size", "64M"];
      return command === "build"
        ? ["build", "--from", "scratch", "--layer", `${join(dir, "bomb.tar.gz")}:/app`, ...limit, "-t", "DEST"]
        : ["import", join(dir, "bomb.tar.gz"), ...limit, "-t", "DEST"];
    },
  })),
  {
    name: "copy: a compressed docker-archive bomb",
    error: /refusing .*: it expands to more than 64\.0 MiB/,
    make(dir) {
      writeFileSync(join(dir, "bomb.tar.gz"), zeros(256));
      return ["copy", "--max-expanded-size", "64M", `docker-archive:${join(dir, "bomb.tar.gz")}`, "DEST"];
    },
  },
  {
    name: "copy: manifest.json naming a config outside the archive",
    error: /manifest\.json names config "\.\.\/\.\.\/\.\.\/etc\/passwd", outside the archive/,
    make(dir) {
      writeFileSync(join(dir, "a.tar"), dockerArchive([{ Config: "../../../etc/passwd", RepoTags: null, Layers: [configPath().layer] }]));
      return ["copy", `docker-archive:${join(dir, "a.tar")}`, "DEST"];
    },
  },
  {
    name: "copy: manifest.json naming an absolute layer path",
    error: /manifest\.json names layer 0 "\/etc\/shadow", outside the archive/,
    make(dir) {
      writeFileSync(join(dir, "a.tar"), dockerArchive([{ Config: configPath().config, RepoTags: null, Layers: ["/etc/shadow"] }]));
      return ["copy", `docker-archive:${join(dir, "a.tar")}`, "DEST"];
    },
  },
  {
    name: "copy: two manifest.json entries",
    error: /two entries named "manifest\.json"/,
    make(dir) {
      const good = [{ Config: configPath().config, RepoTags: null, Layers: [configPath().layer] }];
      writeFileSync(join(dir, "a.tar"), dockerArchive(good, [{ name: "manifest.json", data: "[]" }]));
      return ["copy", `docker-archive:${join(dir, "a.tar")}`, "DEST"];
    },
  },
  {
    name: "copy: manifest.json that is a device node",
    error: /"manifest\.json" is a device, FIFO or other special entry/,
    make(dir) {
      writeFileSync(join(dir, "a.tar"), dockerArchive(undefined, [{ name: "manifest.json", type: "char" }]));
      return ["copy", `docker-archive:${join(dir, "a.tar")}`, "DEST"];
    },
  },
  {
    name: "copy: a 5 MiB manifest.json",
    error: /manifest\.json is \d+ bytes, more than the \d+ allowed/,
    make(dir) {
      writeFileSync(join(dir, "a.tar"), rawTar([{ name: "manifest.json", data: `[${" ".repeat(5 << 20)}]` }]));
      return ["copy", `docker-archive:${join(dir, "a.tar")}`, "DEST"];
    },
  },
  {
    name: "copy: a 2 MiB PAX header in an image archive",
    error: /tar extended header of \d+ bytes is too large/,
    make(dir) {
      writeFileSync(join(dir, "a.tar"), rawTar([{ name: "PaxHeaders/x", type: "pax", data: paxRecord("comment", "x".repeat(2 << 20)) }]));
      return ["copy", `docker-archive:${join(dir, "a.tar")}`, "DEST"];
    },
  },
  {
    name: "copy: a truncated docker-archive",
    error: /is truncated/,
    make(dir) {
      const whole = dockerArchive([{ Config: configPath().config, RepoTags: null, Layers: [configPath().layer] }]);
      writeFileSync(join(dir, "a.tar"), whole.subarray(0, 1100)); // mid-way through the second header
      return ["copy", `docker-archive:${join(dir, "a.tar")}`, "DEST"];
    },
  },
  {
    name: "copy: an OCI layout whose index.json names a digest with path characters",
    error: /not a valid descriptor/,
    make(dir) {
      const index = {
        schemaVersion: 2,
        manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: "sha256:../../../../etc/passwd", size: 10 }],
      };
      ociLayout(join(dir, "layout"), JSON.stringify(index));
      return ["copy", `oci:${join(dir, "layout")}`, "DEST"];
    },
  },
  {
    name: "copy: an OCI layout with a 5 MiB index.json",
    error: /index\.json is \d+ bytes, more than the \d+ allowed/,
    make(dir) {
      ociLayout(join(dir, "layout"), `{"schemaVersion":2,"manifests":[]${" ".repeat(5 << 20)}}`);
      return ["copy", `oci:${join(dir, "layout")}`, "DEST"];
    },
  },
  {
    name: "copy: an OCI layout blob whose bytes are not its digest",
    error: /digest mismatch/,
    make(dir) {
      const manifest = "{}";
      const index = {
        schemaVersion: 2,
        manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${sha(manifest)}`, size: 2 }],
      };
      ociLayout(join(dir, "layout"), JSON.stringify(index), { [sha(manifest)]: "[]" });
      return ["copy", `oci:${join(dir, "layout")}`, "DEST"];
    },
  },
];

describe("hostile inputs are refused with one line, and nothing is written outside the target", () => {
  let work: string;
  let n = 0;
  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-hostile-"));
    // A canary tree where an escaping entry would land (../outside from the inputs' directories).
    mkdirSync(join(work, "outside", "etc"), { recursive: true });
    writeFileSync(join(work, "outside", "etc", "passwd"), "canary\n");
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  // Each case writes to one destination, OCI layouts and docker-archives in turn (both open before the input is read).
  for (const [i, item] of cases.entries()) {
    const destination = i % 2 === 0 ? "oci" : "docker-archive";
    it(`${item.name} → ${destination}`, async () => {
      const dir = join(work, `case-${++n}`);
      mkdirSync(dir);
      const target = join(dir, destination === "oci" ? "out" : "out.tar");
      const args = item.make(dir).map((a) => (a === "DEST" ? `${destination}:${target}` : a));
      const before = snapshot(work);
      const temps = ocifyTemps();
      const result = await runOcify([...args, "-q"], { env: { OCIFY_CACHE_DIR: join(work, "cache"), OCIFY_CACHE_MAX_SIZE: "off" } });
      assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
      assert.match(result.stderr, /^ocify: [^\n]+\n$/, "one line");
      assert.match(result.stderr, item.error);
      assert.ok(!existsSync(target), "no destination");
      const afterwards = snapshot(work);
      for (const path of Object.keys(afterwards)) if (path.startsWith(join(work, "cache"))) delete afterwards[path];
      for (const path of Object.keys(before)) if (path.startsWith(join(work, "cache"))) delete before[path];
      assert.deepEqual(afterwards, before, "nothing else changed");
      assert.deepEqual(ocifyTemps(), temps, "no temp directory left");
      recordFigures({ kind: "hostile", scenario: item.name, refused: 1 });
    });
  }

  it("the ratio bound: a bomb past the floor is refused on its ratio, a file of real data is not", async () => {
    setDecompressionLimits({ floor: 1 << 20, ratio: 50 });
    try {
      const refuse = async (compressed: Buffer): Promise<unknown> => {
        const { input, output } = boundedExpansion("input.gz");
        const { pipeline } = await import("node:stream/promises");
        const { Readable, Writable } = await import("node:stream");
        const { createGunzip } = await import("node:zlib");
        return pipeline(Readable.from([compressed]), input, createGunzip(), output, new Writable({ write: (_c, _e, cb) => cb() })).then(
          () => undefined,
          (error: unknown) => error,
        );
      };
      const bomb = (await refuse(zeros(64))) as Error | undefined;
      assert.match(bomb?.message ?? "", /^refusing input\.gz: it expands more than 50 times/);
      const text = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `line ${i} of a log with words ${i * 7919}\n`).join(""));
      assert.equal(await refuse(gzipSync(text)), undefined, `ratio ${(text.length / gzipSync(text).length).toFixed(1)} is fine`);
    } finally {
      setDecompressionLimits({ floor: 2 ** 30, ratio: 100 });
    }
  });
});
