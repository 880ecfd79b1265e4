import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { copyImage } from "../copy.js";
import { type Digest, digestOf } from "../digest.js";
import { encodeHeader, endOfArchiveSize, paddingFor } from "../layer/tar.js";
import { MediaType } from "../media-types.js";
import { writeFixtureLayout } from "../transport/fixtures.test.js";
import { type ImageSource, openDestination, openSource, parseTransportReference } from "../transport/transport.js";
import { validateImage } from "../validate.js";
import { emptyImage, type Image, type ImageIndex, platformOf, readImage, selectImage } from "./image.js";
import type { Layer } from "./layer.js";
import * as mutate from "./mutate.js";

let work: string;
let layout: string;
let digests: ReturnType<typeof writeFixtureLayout>;

before(() => {
  work = mkdtempSync(join(tmpdir(), "ocify-model-"));
  layout = join(work, "layout");
  digests = writeFixtureLayout(layout);
});
after(() => rmSync(work, { recursive: true, force: true }));

/** A source that counts what is read through it. */
function counting(source: ImageSource): { source: ImageSource; manifests: number; blobs: number } {
  const counts = { source, manifests: 0, blobs: 0 };
  counts.source = {
    description: source.description,
    getManifest: (digest) => {
      counts.manifests++;
      return source.getManifest(digest);
    },
    getBlob: (descriptor, signal) => {
      counts.blobs++;
      return source.getBlob(descriptor, signal);
    },
    close: () => source.close(),
  };
  return counts;
}

async function open(tag: string): Promise<ImageSource> {
  return openSource(parseTransportReference(`oci:${layout}:${tag}`));
}

/** A one-file tar, written with the layer engine's header encoder. */
function tarOf(name: string, content: string): Buffer {
  const data = Buffer.from(content);
  const header = encodeHeader({ name: Buffer.from(name), type: "file", mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0 });
  return Buffer.concat([header, data, Buffer.alloc(paddingFor(data.length)), Buffer.alloc(endOfArchiveSize)]);
}

/** A gzip layer held in memory. */
function memoryLayer(name: string, content: string): Layer {
  const tar = tarOf(name, content);
  const blob = gzipSync(tar);
  return {
    descriptor: { mediaType: MediaType.ociLayerGzip, digest: digestOf(blob), size: blob.length },
    kind: "layer",
    open: async () => Readable.from([blob]),
    diffID: async () => digestOf(tar),
  };
}

async function writeLayout(image: Image | ImageIndex, name: string): Promise<string> {
  const path = join(work, name);
  await copyImage(image, await openDestination(parseTransportReference(`oci:${path}:t`)));
  return path;
}

describe("readImage", () => {
  it("reads nothing until asked, and each thing once; the manifest's bytes are the stored ones", async () => {
    const counts = counting(await open("multi"));
    const image = await readImage(counts.source);
    assert.equal(image.kind, "image");
    if (image.kind !== "image") return;
    assert.equal(counts.manifests, 1);
    assert.equal(counts.blobs, 0, "no blob read to make the image");
    const raw = await image.rawManifest();
    assert.equal(raw.digest, digests.multi);
    assert.ok(raw.bytes.equals(readFileSync(join(layout, "blobs/sha256", digests.multi.slice(7)))));
    const layers = await image.layers();
    assert.equal(layers.length, 4);
    assert.equal(counts.blobs, 0, "listing layers reads no blob");
    const config = await image.config();
    await image.config();
    await layers[0]?.diffID();
    assert.equal(counts.blobs, 1, "the config is read once");
    assert.equal(await layers[2]?.diffID(), config.rootfs.diff_ids[2]);
    const blob = await image.configBlob();
    await (await blob.open()).toArray();
    assert.equal(counts.blobs, 1, "a config read already is sent from memory");
    config.os = "changed";
    assert.equal((await image.config()).os, "linux", "a config handed out is a copy");
  });

  it("gives an index's image by platform", async () => {
    const index = await readImage(await open("index"));
    assert.equal(index.kind, "index");
    const arm = await selectImage(index, { os: "linux", architecture: "arm64" });
    assert.deepEqual(await platformOf(arm), { os: "linux", architecture: "arm64" });
    assert.notEqual((await arm.rawManifest()).digest, digests.base);
    assert.equal((await (await selectImage(index, { os: "linux", architecture: "amd64" })).rawManifest()).digest, digests.base);
    await assert.rejects(selectImage(index, { os: "linux", architecture: "s390x" }), /no image for linux\/s390x/);
  });
});

describe("mutate", () => {
  it("appends layers and their history, leaving the base as it was; the result validates", async () => {
    const base = (await readImage(await open("multi"))) as Image;
    const before = await base.rawManifest();
    const layer = memoryLayer("app/hello.txt", "hello\n");
    const image = mutate.append(base, [
      { layer, history: { created_by: "test layer" } },
      { history: { created_by: "ENV", empty_layer: true } },
    ]);
    const manifest = await image.manifest();
    const config = await image.config();
    assert.equal(manifest.layers.length, 5);
    assert.deepEqual(manifest.layers[4], layer.descriptor);
    assert.equal(config.rootfs.diff_ids.at(-1), await layer.diffID());
    assert.deepEqual(config.history?.slice(-2), [{ created_by: "test layer" }, { created_by: "ENV", empty_layer: true }]);
    assert.equal(manifest.config.digest, digestOf(await image.rawConfig()));
    assert.deepEqual(Object.keys(manifest), ["schemaVersion", "mediaType", "config", "layers", "annotations"], "fixed field order");
    assert.equal((await base.rawManifest()).digest, before.digest, "the base is unchanged");
    assert.equal((await base.layers()).length, 4);
    const summary = await validateImage(await openSource(parseTransportReference(`oci:${await writeLayout(image, "appended")}:t`)));
    assert.equal(summary.kind === "image" && summary.layers.length, 5);
  });

  it("edits the config alone, and sets or replaces annotations", async () => {
    const base = (await readImage(await open("multi"))) as Image;
    const edited = mutate.config(base, (config) => ({ ...config, config: { ...config.config, User: "1000" } }));
    assert.equal((await edited.config()).config?.User, "1000");
    assert.deepEqual(
      (await edited.layers()).map((l) => l.descriptor),
      (await base.layers()).map((l) => l.descriptor),
    );
    const added = await mutate.annotations(edited, { a: "1" }).manifest();
    assert.deepEqual(added.annotations, { "org.example.fixture": "multi-layer", a: "1" });
    const replaced = await mutate.annotations(edited, { a: "1" }, { replace: true }).manifest();
    assert.deepEqual(replaced.annotations, { a: "1" });
  });

  it("converts between the manifest families, keeping config and layer bytes", async () => {
    const base = (await readImage(await open("multi-gzip"))) as Image;
    assert.equal(mutate.format(base, "oci") === base, false);
    assert.equal((await mutate.format(base, "oci").rawManifest()).digest, digests["multi-gzip"], "already OCI: the same bytes");
    const docker = mutate.format(base, "docker");
    const manifest = await docker.manifest();
    assert.equal(manifest.mediaType, MediaType.dockerManifest);
    assert.equal(manifest.config.mediaType, MediaType.dockerConfig);
    assert.equal(manifest.annotations, undefined, "Docker manifests have no annotations");
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      [MediaType.dockerLayerGzip, MediaType.dockerLayer, MediaType.dockerLayerGzip],
    );
    assert.deepEqual(
      (await docker.layers()).map((l) => l.descriptor.mediaType),
      manifest.layers.map((l) => l.mediaType),
    );
    assert.equal(manifest.config.digest, (await base.manifest()).config.digest, "the config bytes are the same");
    const back = await mutate.format(docker, "oci").manifest();
    assert.deepEqual(
      back.layers.map((l) => l.digest),
      manifest.layers.map((l) => l.digest),
    );
    const archive = join(work, "docker.tar");
    await copyImage(docker, await openDestination(parseTransportReference(`docker-archive:${archive}:x/y:1`)));
    const summary = await validateImage(await openSource(parseTransportReference(`docker-archive:${archive}`)));
    assert.equal(summary.kind === "image" && summary.configDigest, manifest.config.digest);
  });

  it("makes an index over images with their platforms; an OCI layout gets OCI children", async () => {
    const amd = mutate.format(emptyImage({ os: "linux", architecture: "amd64" }), "docker");
    const arm = mutate.format(emptyImage({ os: "linux", architecture: "arm64", variant: "v8" }), "docker");
    const index = mutate.index(
      [
        { image: amd, platform: { os: "linux", architecture: "amd64" } },
        { image: arm, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      ],
      { format: "docker" },
    );
    const manifest = await index.manifest();
    assert.equal(manifest.mediaType, MediaType.dockerManifestList);
    assert.equal(manifest.manifests[1]?.digest, (await arm.rawManifest()).digest);
    const path = await writeLayout(index, "index-layout");
    const summary = await validateImage(await openSource(parseTransportReference(`oci:${path}:t`)));
    assert.equal(summary.kind, "index");
    if (summary.kind !== "index") return;
    assert.equal(summary.mediaType, MediaType.ociIndex, "converted for the layout");
    assert.deepEqual(
      summary.images.map((i) => i.mediaType),
      [MediaType.ociManifest, MediaType.ociManifest],
    );
    assert.deepEqual(summary.images[1]?.platform, { os: "linux", architecture: "arm64", variant: "v8" });
  });

  it("names a subject, and removes it", async () => {
    const base = emptyImage();
    const subject = { mediaType: MediaType.ociManifest, digest: digests.base as Digest, size: 1 };
    const referrer = mutate.subject(base, subject);
    assert.deepEqual((await referrer.manifest()).subject, subject);
    assert.equal((await mutate.subject(referrer, undefined).manifest()).subject, undefined);
  });
});
