/** The registry layer cache's key and entry format: what changes the key, and what a read entry must match. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Digest, digestOf } from "../digest.js";
import { encodeJson, type RawManifest } from "../image/manifest.js";
import { MediaType } from "../media-types.js";
import {
  emptyConfig,
  emptyConfigBytes,
  type LayerCacheInputs,
  layerCacheArtifactType,
  layerCacheKey,
  layerCacheManifest,
  layerCacheTag,
  readLayerCacheEntry,
} from "./entry.js";

const diffID = digestOf("a tar") as Digest;
const inputs: LayerCacheInputs = { diffID, mediaType: MediaType.ociLayerGzip, codecId: "gzip/1/libdeflate-0.1.0" };
const blob = { digest: digestOf("a blob") as Digest, size: 1234 };

function raw(value: unknown): RawManifest {
  const bytes = encodeJson(value);
  return { bytes, mediaType: MediaType.ociManifest, digest: digestOf(bytes) };
}

function edited(edit: (manifest: Record<string, unknown>) => void): RawManifest {
  const manifest = JSON.parse(layerCacheManifest(inputs, blob).bytes.toString("utf8")) as Record<string, unknown>;
  edit(manifest);
  return raw(manifest);
}

describe("layer cache key", () => {
  it("is 64 hex digits, the same for the same inputs, and a valid tag", () => {
    const key = layerCacheKey(inputs);
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(layerCacheKey({ ...inputs }), key);
    assert.match(layerCacheTag(inputs), /^[\w][\w.-]{0,127}$/);
  });

  it("changes with the diffID, the media type and the codec", () => {
    const key = layerCacheKey(inputs);
    const others = [
      { ...inputs, diffID: digestOf("another tar") as Digest },
      { ...inputs, mediaType: MediaType.ociLayerZstd },
      { ...inputs, codecId: "gzip/6/libdeflate-0.1.0" },
      { ...inputs, codecId: "gzip/1/libdeflate-0.1.1" },
    ];
    const keys = new Set(others.map(layerCacheKey));
    assert.equal(keys.size, others.length);
    assert.ok(!keys.has(key));
  });
});

describe("layer cache entry", () => {
  it("is an OCI artifact: the empty config, the blob as its one layer, the inputs as annotations", () => {
    const manifest = layerCacheManifest(inputs, blob);
    assert.equal(manifest.digest, digestOf(manifest.bytes));
    const json = JSON.parse(manifest.bytes.toString("utf8"));
    assert.equal(json.schemaVersion, 2);
    assert.equal(json.mediaType, MediaType.ociManifest);
    assert.equal(json.artifactType, layerCacheArtifactType);
    assert.deepEqual(json.config, emptyConfig);
    assert.equal(emptyConfig.digest, digestOf(emptyConfigBytes));
    assert.equal(Buffer.from(emptyConfig.data as string, "base64").toString(), "{}");
    assert.deepEqual(json.layers, [{ mediaType: inputs.mediaType, ...blob }]);
    assert.equal(json.annotations["dev.ocify.layer-cache.diff-id"], diffID);
    assert.equal(json.annotations["dev.ocify.layer-cache.key"], layerCacheKey(inputs));
    // Canonical bytes: the same entry is the same manifest on every machine.
    assert.deepEqual(layerCacheManifest({ ...inputs }, { ...blob }).bytes, manifest.bytes);
  });

  it("reads back as the blob's descriptor for the inputs it was made for", () => {
    assert.deepEqual(readLayerCacheEntry(layerCacheManifest(inputs, blob), inputs), {
      ok: true,
      descriptor: { mediaType: inputs.mediaType, ...blob },
    });
  });

  it("is no hit for other inputs, another format, or a damaged or foreign manifest", () => {
    const cases: [string, RawManifest, LayerCacheInputs][] = [
      ["other diffID", layerCacheManifest(inputs, blob), { ...inputs, diffID: digestOf("x") as Digest }],
      ["other codec", layerCacheManifest(inputs, blob), { ...inputs, codecId: "gzip/9/zlib-1.3" }],
      ["older format", edited((m) => ((m.annotations as Record<string, string>)["dev.ocify.layer-cache.format"] = "0")), inputs],
      ["no artifact type", edited((m) => delete m.artifactType), inputs],
      ["two layers", edited((m) => (m.layers as unknown[]).push((m.layers as unknown[])[0])), inputs],
      ["no layer", edited((m) => (m.layers = [])), inputs],
      ["zstd blob", edited((m) => ((m.layers as Record<string, unknown>[])[0]!.mediaType = MediaType.ociLayerZstd)), inputs],
      ["bad digest", edited((m) => ((m.layers as Record<string, unknown>[])[0]!.digest = "sha256:xyz")), inputs],
      ["sha512 digest", edited((m) => ((m.layers as Record<string, unknown>[])[0]!.digest = `sha512:${"a".repeat(128)}`)), inputs],
      ["negative size", edited((m) => ((m.layers as Record<string, unknown>[])[0]!.size = -1)), inputs],
      ["string size", edited((m) => ((m.layers as Record<string, unknown>[])[0]!.size = "1234")), inputs],
      ["an image", raw({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: emptyConfig, layers: [] }), inputs],
      ["not JSON", { bytes: Buffer.from("{"), mediaType: MediaType.ociManifest, digest: digestOf("{") }, inputs],
    ];
    for (const [name, manifest, wanted] of cases) {
      const entry = readLayerCacheEntry(manifest, wanted);
      assert.equal(entry.ok, false, name);
      assert.ok(!entry.ok && entry.reason.length > 0, name);
    }
  });
});
