/**
 * A large layer streams through every file transport with flat memory: oci → docker-archive → oci-archive →
 * oci, then validated. Size from OCIFY_LARGE_LAYER_MIB (default 512; set 4096 for the multi-GiB run).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { createWriteStream, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { digestOf } from "../digest.js";
import { MediaType } from "../media-types.js";

const mib = Number(process.env.OCIFY_LARGE_LAYER_MIB ?? 512);
let work: string;

/** Deterministic incompressible bytes: an AES-CTR keystream over zeros. */
function keystream(size: number): Readable {
  const cipher = createCipheriv("aes-128-ctr", Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const chunk = Buffer.alloc(1 << 20);
  let left = size;
  return new Readable({
    highWaterMark: 1 << 20,
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(cipher.update(chunk.subarray(0, n)));
    },
  });
}

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write("0000644\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write("00000000000\0", 136);
  h.write("        ", 148);
  h.write("0", 156);
  h.write("ustar\u000000", 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

/** Write an OCI layout whose single layer is an uncompressed tar holding one file of `size` random bytes. */
async function writeLargeLayout(dir: string, size: number): Promise<void> {
  mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
  const hash = createHash("sha256");
  const temp = join(dir, "layer.tmp");
  async function* tar() {
    yield tarHeader("big.bin", size);
    for await (const chunk of keystream(size)) yield chunk as Buffer;
    yield Buffer.alloc(((512 - (size % 512)) % 512) + 1024);
  }
  await pipeline(
    tar(),
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        yield chunk;
      }
    },
    createWriteStream(temp),
  );
  const digest = `sha256:${hash.digest("hex")}` as const;
  const layerSize = statSync(temp).size;
  renameSync(temp, join(dir, "blobs", "sha256", digest.slice(7)));
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [digest] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
      layers: [{ mediaType: MediaType.ociLayer, digest, size: layerSize }],
    }),
  );
  for (const bytes of [config, manifest]) writeFileSync(join(dir, "blobs", "sha256", digestOf(bytes).slice(7)), bytes);
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: MediaType.ociManifest, digest: digestOf(manifest), size: manifest.length }],
    }),
  );
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "ocify-large-"));
});
after(() => rmSync(work, { recursive: true, force: true }));

/** The copy chain, run in a child process so that its peak RSS is its own. */
const chain = `
import { rmSync } from "node:fs";
import { copyAll } from "./fixtures.test.js";
import { validateImage } from "../validate.js";
import { openDestination, openSource, parseTransportReference } from "./transport.js";
const [work] = process.argv.slice(2);
const steps = [
  ["oci:" + work + "/layout", "docker-archive:" + work + "/big-docker.tar:big:1"],
  ["docker-archive:" + work + "/big-docker.tar", "oci-archive:" + work + "/big-oci.tar:1"],
  ["oci-archive:" + work + "/big-oci.tar", "oci:" + work + "/out:1"],
];
for (const [from, to] of steps) {
  await copyAll(await openSource(parseTransportReference(from)), await openDestination(parseTransportReference(to)));
  rmSync(from.slice(from.indexOf(":") + 1).split(":")[0], { recursive: true, force: true });
}
const summary = await validateImage(await openSource(parseTransportReference("oci:" + work + "/out:1")));
process.stdout.write(JSON.stringify({ size: summary.layers[0].size, maxRSS: process.resourceUsage().maxRSS }));
`;

it(`streams a ${mib} MiB layer through docker-archive and oci-archive with flat memory`, { timeout: 1_200_000 }, async () => {
  await writeLargeLayout(join(work, "layout"), mib * 1048576);
  const script = fileURLToPath(new URL("./large-layer-chain.mjs", import.meta.url));
  writeFileSync(script, chain);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [script, work], { maxBuffer: 1 << 20 });
    const result = JSON.parse(stdout) as { size: number; maxRSS: number };
    assert.equal(result.size, mib * 1048576 + 512 + 1024);
    const peak = result.maxRSS >> 10;
    process.stdout.write(`# peak RSS of the copy chain: ${peak} MiB for a ${mib} MiB layer\n`);
    assert.ok(peak < 160, `peak RSS ${peak} MiB while moving a ${mib} MiB layer`);
  } finally {
    rmSync(script, { force: true });
  }
});
