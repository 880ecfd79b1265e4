import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import type { Digest } from "../digest.js";
import { digestOf } from "../digest.js";
import { emptyConfig, type ImageConfig } from "../image/config.js";
import { emptyImage, type Image } from "../image/image.js";
import type { Layer } from "../image/layer.js";
import { encodeJson, rawManifest } from "../image/manifest.js";
import { MediaType } from "../media-types.js";
import { createdTimestamp } from "../mutate.js";
import { parseTransportReference } from "../transport/transport.js";
import { baseAnnotations } from "./base.js";
import { deriveImage } from "./image.js";

const baseConfig: ImageConfig = {
  architecture: "amd64",
  os: "linux",
  created: "2024-01-01T00:00:00Z",
  config: { Env: ["PATH=/usr/bin:/bin", "LANG=C"], Cmd: ["/bin/sh"], Labels: { a: "1" } },
  rootfs: { type: "layers", diff_ids: [`sha256:${"1".repeat(64)}`] },
  history: [{ created_by: "base" }],
  container_config: { Hostname: "x" },
  "moby.buildkit.buildinfo.v1": "kept",
};

/** A base image held in memory, its manifest naming one layer and an annotation. */
function baseImage(format: "oci" | "docker"): Image {
  const configBytes = encodeJson(baseConfig);
  const oci = format === "oci";
  const layer = {
    mediaType: oci ? MediaType.ociLayerGzip : MediaType.dockerLayerGzip,
    digest: `sha256:${"9".repeat(64)}` as Digest,
    size: 10,
  };
  const manifest = {
    schemaVersion: 2 as const,
    mediaType: oci ? MediaType.ociManifest : MediaType.dockerManifest,
    config: { mediaType: oci ? MediaType.ociConfig : MediaType.dockerConfig, digest: digestOf(configBytes), size: configBytes.length },
    layers: [layer],
    ...(oci ? { annotations: { "org.example.base": "yes" } } : {}),
  };
  const raw = rawManifest(encodeJson(manifest), manifest.mediaType);
  return {
    kind: "image",
    description: "base",
    rawManifest: async () => raw,
    manifest: async () => structuredClone(manifest),
    rawConfig: async () => configBytes,
    config: async () => structuredClone(baseConfig),
    configBlob: async () => ({ descriptor: manifest.config, kind: "config", open: async () => Readable.from([configBytes]) }),
    layers: async () => [
      {
        descriptor: layer,
        kind: "layer",
        open: async () => Readable.from([]),
        diffID: async () => baseConfig.rootfs.diff_ids[0] as Digest,
      },
    ],
  };
}

function builtLayer(seed: string, fresh: boolean): Layer {
  return {
    descriptor: { mediaType: MediaType.ociLayerGzip, digest: digestOf(seed), size: seed.length },
    kind: "layer",
    fresh,
    open: async () => Readable.from([Buffer.from(seed)]),
    diffID: async () => digestOf(`tar of ${seed}`),
  };
}

describe("a built image, derived from its base", () => {
  const created = createdTimestamp(1700000000);

  it("appends diff_ids and history, sets created, keeps every field ocify does not set", async () => {
    const layer = builtLayer("one", true);
    const image = deriveImage(baseImage("oci"), {
      edits: { user: "1" },
      created,
      layers: [{ layer, createdBy: "ocify layer directory -> /app" }],
      format: "oci",
      annotations: { "org.opencontainers.image.base.digest": "x" },
    });
    const config = await image.config();
    assert.equal(created, "2023-11-14T22:13:20Z");
    assert.equal(config.created, created);
    assert.equal(config.config?.User, "1");
    assert.deepEqual(config.rootfs.diff_ids, [...baseConfig.rootfs.diff_ids, await layer.diffID()]);
    assert.deepEqual(config.history?.[1], { created, created_by: "ocify layer directory -> /app", comment: "ocify" });
    assert.equal(config["moby.buildkit.buildinfo.v1"], "kept");
    assert.deepEqual(config.container_config, { Hostname: "x" }, "a field the legacy builder wrote is the base's, kept");
    const manifest = await image.manifest();
    assert.deepEqual(manifest.annotations, { "org.opencontainers.image.base.digest": "x" }, "the base's annotations are replaced");
    assert.equal(manifest.layers.length, 2);
    assert.equal(manifest.config.digest, digestOf(await image.rawConfig()));
    assert.equal((await image.configBlob()).fresh, true, "a fresh layer makes a fresh config");
  });

  it("says so in one history line when no layer is added, and converts to the Docker family", async () => {
    const image = deriveImage(baseImage("oci"), { edits: {}, created, layers: [], format: "docker", annotations: { a: "b" } });
    const config = await image.config();
    assert.deepEqual(config.history?.at(-1), { created, created_by: "ocify build (config only)", comment: "ocify", empty_layer: true });
    const manifest = await image.manifest();
    assert.equal(manifest.mediaType, MediaType.dockerManifest);
    assert.equal(manifest.config.mediaType, MediaType.dockerConfig);
    assert.deepEqual(
      manifest.layers.map((l) => l.mediaType),
      [MediaType.dockerLayerGzip],
    );
    assert.equal(manifest.annotations, undefined, "a Docker manifest has no annotations");
    assert.equal((await image.configBlob()).fresh, false);
  });

  it("builds on scratch: an empty config of the platform", async () => {
    const scratch = emptyConfig({ os: "linux", architecture: "arm64", variant: "v8" });
    assert.equal(scratch.variant, "v8");
    const image = deriveImage(emptyImage({ os: "linux", architecture: "arm64", variant: "v8" }), {
      edits: { entrypoint: ["/app"] },
      created: createdTimestamp(undefined),
      layers: [{ layer: builtLayer("two", false), createdBy: "x" }],
      format: "oci",
      annotations: {},
    });
    const config = await image.config();
    assert.equal(config.created, "1970-01-01T00:00:00Z");
    assert.equal(config.variant, "v8");
    assert.deepEqual(config.config?.Entrypoint, ["/app"]);
    assert.equal((await image.manifest()).annotations, undefined);
  });
});

describe("baseAnnotations", () => {
  const digest = `sha256:${"3".repeat(64)}`;
  const annotations = (from: string) => baseAnnotations(parseTransportReference(from), digest);

  it("names a registry base by its full reference, however it was written", () => {
    const full = { "org.opencontainers.image.base.name": "docker.io/library/alpine:3.20", "org.opencontainers.image.base.digest": digest };
    assert.deepEqual(annotations("alpine:3.20"), full);
    assert.deepEqual(annotations("docker://docker.io/library/alpine:3.20"), full);
    assert.equal(annotations("127.0.0.1:5000/team/base:1")["org.opencontainers.image.base.name"], "127.0.0.1:5000/team/base:1");
  });

  it("gives a base read from a path only its digest: the path is this machine's", () => {
    for (const from of ["oci:/home/me/layouts/base:1", "oci:./base", "oci-archive:/tmp/base.tar:1", "docker-archive:/srv/base.tar"]) {
      assert.deepEqual(annotations(from), { "org.opencontainers.image.base.digest": digest }, from);
    }
    assert.equal(
      annotations("docker-archive:/srv/base.tar:team/base:1")["org.opencontainers.image.base.name"],
      "docker.io/team/base:1",
      "the name a docker-archive gives its image is a reference",
    );
  });
});
