import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { digestOf } from "../digest.js";
import { InputError, InvalidImageError, OcifyError } from "../errors.js";
import type { ImageManifest } from "../image/manifest.js";
import { MediaType } from "../media-types.js";
import { type ImageSummary, validateImage } from "../validate.js";
import { chainIDs } from "./docker-archive.js";
import { copyAll, writeFixtureLayout } from "./fixtures.test.js";
import { openDestination, openSource, parseTransportReference } from "./transport.js";

let work: string;
let fixture: string;
let n = 0;
const expected = new Map<string, ImageSummary>();

before(async () => {
  work = mkdtempSync(join(tmpdir(), "ocify-docker-archive-"));
  fixture = join(work, "fixture");
  writeFixtureLayout(fixture);
  for (const tag of ["base", "multi", "multi-gzip"]) expected.set(tag, await summary(`oci:${fixture}:${tag}`));
});
after(() => rmSync(work, { recursive: true, force: true }));

async function summary(ref: string): Promise<ImageSummary> {
  const source = await openSource(parseTransportReference(ref));
  try {
    return (await validateImage(source)) as ImageSummary;
  } finally {
    await source.close();
  }
}

async function copy(from: string, to: string): Promise<void> {
  await copyAll(await openSource(parseTransportReference(from)), await openDestination(parseTransportReference(to)));
}

function assertSameContent(actual: ImageSummary, wanted: ImageSummary): void {
  assert.ok(actual.configBytes.equals(wanted.configBytes), "config bytes identical");
  assert.deepEqual(
    actual.layers.map((l) => l.diffID),
    wanted.layers.map((l) => l.diffID),
  );
}

function blob(digest: string): Buffer {
  return readFileSync(join(fixture, "blobs", "sha256", digest.slice(7)));
}

/** The fixture image's config and uncompressed layer tars. */
function fixtureParts(tag: string): { config: Buffer; layers: Buffer[]; compressed: Buffer[]; diffIDs: string[] } {
  const digest = expected.get(tag)!.manifestDigest;
  const manifest = JSON.parse(blob(digest).toString()) as ImageManifest;
  const config = blob(manifest.config.digest);
  const compressed = manifest.layers.map((l) => blob(l.digest));
  const layers = manifest.layers.map((l, i) =>
    l.mediaType.endsWith("gzip")
      ? gunzipSync(compressed[i]!)
      : l.mediaType.endsWith("zstd")
        ? execFileSync("zstd", ["-dcq"], { input: compressed[i]! })
        : compressed[i]!,
  );
  return { config, layers, compressed, diffIDs: expected.get(tag)!.layers.map((l) => l.diffID) };
}

function hex(digest: string): string {
  return digest.slice(7);
}

/** Tar a directory with GNU tar, an independent writer. */
function tarDir(dir: string, out: string): string {
  execFileSync("tar", ["--format=posix", "-C", dir, "-cf", out, "."]);
  return out;
}

describe("docker-archive source reads every layout docker save has written", () => {
  it("classic: <id>/layer.tar uncompressed, <id>/json, VERSION, repositories, a symlinked layer", async () => {
    const { config, layers, diffIDs } = fixtureParts("multi-gzip");
    const dir = mkdtempSync(join(work, "classic-"));
    const ids = chainIDs(diffIDs).map(hex);
    ids.forEach((id, i) => {
      mkdirSync(join(dir, id));
      writeFileSync(join(dir, id, "VERSION"), "1.0");
      writeFileSync(join(dir, id, "json"), JSON.stringify({ id, parent: ids[i - 1] }));
      if (i === 1) {
        // docker save links a layer it already wrote; here to a file outside any <id>/
        writeFileSync(join(dir, `${id}.tar`), layers[i]!);
        symlinkSync(`../${id}.tar`, join(dir, id, "layer.tar"));
      } else {
        writeFileSync(join(dir, id, "layer.tar"), layers[i]!);
      }
    });
    writeFileSync(join(dir, `${hex(digestOf(config))}.json`), config);
    writeFileSync(
      join(dir, "manifest.json"),
      JSON.stringify([
        { Config: `${hex(digestOf(config))}.json`, RepoTags: ["ocify/classic:1"], Layers: ids.map((id) => `${id}/layer.tar`) },
      ]),
    );
    writeFileSync(join(dir, "repositories"), JSON.stringify({ "ocify/classic": { "1": ids.at(-1) } }));
    const path = tarDir(dir, join(work, `classic-${++n}.tar`));
    const got = await summary(`docker-archive:${path}:ocify/classic:1`);
    assertSameContent(got, expected.get("multi-gzip")!);
    assert.deepEqual(
      got.layers.map((l) => [l.digest, l.mediaType]),
      diffIDs.map((d) => [d, MediaType.dockerLayer]),
      "uncompressed layer files: digest = diffID",
    );
    assert.equal(got.mediaType, MediaType.dockerManifest);
  });

  it("classic with gzip- and zstd-compressed layer files: digests hashed from the files, media types by content", async () => {
    const { config, layers, compressed } = fixtureParts("multi");
    const dir = mkdtempSync(join(work, "compressed-"));
    const files = [compressed[0]!, compressed[1]!, gzipSync(layers[2]!), layers[3]!];
    files.forEach((bytes, i) => {
      mkdirSync(join(dir, `l${i}`));
      writeFileSync(join(dir, `l${i}`, "layer.tar"), bytes);
    });
    writeFileSync(join(dir, "config.json"), config);
    writeFileSync(
      join(dir, "manifest.json"),
      JSON.stringify([{ Config: "config.json", RepoTags: null, Layers: files.map((_, i) => `./l${i}/layer.tar`) }]),
    );
    const got = await summary(`docker-archive:${tarDir(dir, join(work, `compressed-${++n}.tar`))}`);
    assertSameContent(got, expected.get("multi")!);
    assert.deepEqual(
      got.layers.map((l) => l.mediaType),
      [MediaType.dockerLayerGzip, MediaType.dockerLayerZstd, MediaType.dockerLayerGzip, MediaType.dockerLayer],
    );
    assert.deepEqual(
      got.layers.map((l) => l.digest),
      files.map((f) => digestOf(f)),
    );
  });

  it("Docker >= 25: an OCI layout inside (blobs/sha256, index.json) plus manifest.json and legacy links", async () => {
    const { config, layers, diffIDs } = fixtureParts("multi-gzip");
    const dir = mkdtempSync(join(work, "moby25-"));
    mkdirSync(join(dir, "blobs", "sha256"), { recursive: true });
    const put = (bytes: Buffer) => {
      writeFileSync(join(dir, "blobs", "sha256", hex(digestOf(bytes))), bytes);
      return `blobs/sha256/${hex(digestOf(bytes))}`;
    };
    const configPath = put(config);
    const layerPaths = layers.map(put);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: MediaType.ociLayer, digest: digestOf(l), size: l.length })),
      }),
    );
    put(manifest);
    chainIDs(diffIDs).forEach((id, i) => {
      mkdirSync(join(dir, hex(id)));
      symlinkSync(`../${layerPaths[i]}`, join(dir, hex(id), "layer.tar"));
    });
    writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(
      join(dir, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [
          {
            mediaType: MediaType.ociManifest,
            digest: digestOf(manifest),
            size: manifest.length,
            annotations: { "io.containerd.image.name": "docker.io/library/moby:25", "org.opencontainers.image.ref.name": "25" },
          },
        ],
      }),
    );
    writeFileSync(join(dir, "manifest.json"), JSON.stringify([{ Config: configPath, RepoTags: ["moby:25"], Layers: layerPaths }]));
    const path = tarDir(dir, join(work, `moby25-${++n}.tar`));
    assertSameContent(await summary(`docker-archive:${path}:moby:25`), expected.get("multi-gzip")!);
    assertSameContent(await summary(`docker-archive:${path}:docker.io/library/moby:25`), expected.get("multi-gzip")!);
    // The same file is an OCI archive too.
    const asOci = await summary(`oci-archive:${path}:25`);
    assert.equal(asOci.manifestDigest, digestOf(manifest));
  });

  it("bad archives fail with one line and a hint", async () => {
    const notTar = join(work, "not.tar");
    writeFileSync(notTar, "hello ".repeat(200));
    await assert.rejects(openSource(parseTransportReference(`docker-archive:${notTar}`)), /is not a tar archive/);

    const ociOnly = join(work, `oci-only-${++n}.tar`);
    await copy(`oci:${fixture}:base`, `oci-archive:${ociOnly}:x`);
    await assert.rejects(openSource(parseTransportReference(`docker-archive:${ociOnly}`)), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /has no manifest\.json/);
      assert.match(e.hint ?? "", /oci-archive:/);
      return true;
    });

    const classic = mkdtempSync(join(work, "classic-only-"));
    writeFileSync(join(classic, "manifest.json"), "[]");
    await assert.rejects(
      openSource(parseTransportReference(`oci-archive:${tarDir(classic, join(work, `classic-only-${++n}.tar`))}`)),
      (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.match(e.hint ?? "", /docker-archive:/);
        return true;
      },
    );

    const dir = mkdtempSync(join(work, "bad-"));
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ not: "a list" }));
    const badManifest = tarDir(dir, join(work, `bad-${++n}.tar`));
    await assert.rejects(openSource(parseTransportReference(`docker-archive:${badManifest}`)), InvalidImageError);

    const { config } = fixtureParts("base");
    writeFileSync(join(dir, "c.json"), config);
    writeFileSync(join(dir, "manifest.json"), JSON.stringify([{ Config: "c.json", RepoTags: [], Layers: ["gone/layer.tar"] }]));
    const missing = tarDir(dir, join(work, `missing-${++n}.tar`));
    await assert.rejects(openSource(parseTransportReference(`docker-archive:${missing}`)), /layer 0 gone\/layer\.tar is missing/);

    writeFileSync(join(dir, "manifest.json"), JSON.stringify([{ Config: "c.json", RepoTags: [], Layers: [] }]));
    const count = tarDir(dir, join(work, `count-${++n}.tar`));
    await assert.rejects(openSource(parseTransportReference(`docker-archive:${count}`)), /lists 0 layers but the config has 1 diff_ids/);
  });
});

describe("docker-archive destination", () => {
  it("writes an OCI layout plus manifest.json, repositories and legacy entries; index.json last; layers kept compressed", async () => {
    const path = join(work, `out-${++n}.tar`);
    await copy(`oci:${fixture}:multi-gzip`, `docker-archive:${path}:ocify/out:v2`);
    const listing = execFileSync("tar", ["-tvf", path], { encoding: "utf8" }).trim().split("\n");
    const names = listing.map((l) => l.split(/\s+/).slice(5).join(" "));
    assert.equal(names.at(-1), "index.json");
    for (const name of ["oci-layout", "manifest.json", "repositories", "blobs/", "blobs/sha256/"]) assert.ok(names.includes(name), name);
    const extracted = mkdtempSync(join(work, "x-"));
    execFileSync("tar", ["-C", extracted, "-xf", path]);
    const manifestJson = JSON.parse(readFileSync(join(extracted, "manifest.json"), "utf8"));
    const want = expected.get("multi-gzip")!;
    assert.deepEqual(manifestJson, [
      {
        Config: `blobs/sha256/${hex(want.configDigest)}`,
        RepoTags: ["ocify/out:v2"],
        Layers: want.layers.map((l) => `blobs/sha256/${hex(l.digest)}`),
      },
    ]);
    const ids = chainIDs(want.layers.map((l) => l.diffID)).map(hex);
    assert.deepEqual(JSON.parse(readFileSync(join(extracted, "repositories"), "utf8")), { "ocify/out": { v2: ids.at(-1) } });
    ids.forEach((id, i) => {
      assert.equal(readFileSync(join(extracted, id, "VERSION"), "utf8"), "1.0");
      const json = JSON.parse(readFileSync(join(extracted, id, "json"), "utf8"));
      assert.equal(json.id, id);
      assert.equal(json.parent, ids[i - 1]);
      assert.ok(
        readFileSync(join(extracted, id, "layer.tar")).equals(blob(want.layers[i]!.digest)),
        "layer.tar links to the compressed blob",
      );
    });
    const index = JSON.parse(readFileSync(join(extracted, "index.json"), "utf8"));
    assert.deepEqual(index.manifests[0].annotations, {
      "io.containerd.image.name": "docker.io/ocify/out:v2",
      "org.opencontainers.image.ref.name": "v2",
    });
    // The extracted archive is an OCI layout, with the original manifest.
    assert.equal((await summary(`oci:${extracted}:v2`)).manifestDigest, want.manifestDigest);
    assert.equal((await summary(`oci-archive:${path}`)).manifestDigest, want.manifestDigest);
  });

  it("names: familiar RepoTags for Docker Hub, host kept for others, none without a name", async () => {
    const cases: [string, string[] | null][] = [
      ["busybox:1", ["busybox:1"]],
      ["docker.io/library/busybox:2", ["busybox:2"]],
      ["someone/app", ["someone/app:latest"]],
      ["localhost:5000/app:3", ["localhost:5000/app:3"]],
      ["", null],
    ];
    for (const [name, repoTags] of cases) {
      const path = join(work, `name-${++n}.tar`);
      await copy(`oci:${fixture}:base`, `docker-archive:${path}${name ? `:${name}` : ""}`);
      const manifestJson = JSON.parse(execFileSync("tar", ["-xOf", path, "manifest.json"], { encoding: "utf8" }));
      assert.deepEqual(manifestJson[0].RepoTags, repoTags, name);
      const listing = execFileSync("tar", ["-tf", path], { encoding: "utf8" });
      assert.equal(listing.includes("repositories"), repoTags !== null);
      if (repoTags) assertSameContent(await summary(`docker-archive:${path}:${repoTags[0]}`), expected.get("base")!);
    }
  });

  it("refuses @index and a missing directory; abort() and a failed blob leave no file", async () => {
    await assert.rejects(openDestination(parseTransportReference(`docker-archive:${join(work, "x.tar")}:@0`)), /cannot name one to write/);
    await assert.rejects(openDestination(parseTransportReference(`docker-archive:${join(work, "no", "such", "x.tar")}`)), (e: unknown) => {
      assert.ok(e instanceof OcifyError);
      assert.match(e.message, /cannot create/);
      return true;
    });
    const dir = mkdtempSync(join(work, "abort-"));
    const target = join(dir, "a.tar");
    const destination = await openDestination(parseTransportReference(`docker-archive:${target}:a:b`));
    const source = await openSource(parseTransportReference(`oci:${fixture}:base`));
    const manifest = JSON.parse((await source.getManifest()).bytes.toString()) as ImageManifest;
    await destination.putBlob(manifest.config, await source.getBlob(manifest.config));
    const bad = { ...manifest.layers[0]!, digest: digestOf("not this") };
    await assert.rejects(destination.putBlob(bad, await source.getBlob(manifest.layers[0]!)));
    await destination.abort();
    assert.deepEqual(readdirSync(dir), []);
  });
});
