/** The registry layer cache against Debian's real docker-registry: store, look up, and every miss that must not be a hit. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { type Digest, digestOf } from "../digest.js";
import { MediaType } from "../media-types.js";
import { repositoryScope } from "../registry/auth.js";
import { RegistryClient } from "../registry/client.js";
import { startRegistry, type TestRegistry } from "../test-support/registry.js";
import { emptyConfig, type LayerCacheInputs, layerCacheManifest, layerCacheTag } from "./entry.js";
import { RegistryLayerCache } from "./registry.js";

describe("registry layer cache against docker-registry", () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  const bytes = randomBytes(40_000);
  const blob = { digest: digestOf(bytes) as Digest, size: bytes.length };
  const inputs = (tar: string): LayerCacheInputs => ({
    diffID: digestOf(tar) as Digest,
    mediaType: MediaType.ociLayerGzip,
    codecId: "gzip/1/test",
  });

  async function pushBlob(repository: string, content: Buffer): Promise<void> {
    const scopes = [repositoryScope(repository, "pull,push")];
    const upload = await client.startUpload(repository, scopes);
    await client.putBlob(upload, { digest: digestOf(content), size: content.length }, Readable.from([content]), scopes, "test blob");
  }

  async function deleteBlob(repository: string, digest: string): Promise<void> {
    const response = await fetch(`${registry.url}/v2/${repository}/blobs/${digest}`, { method: "DELETE" });
    assert.equal(response.status, 202);
  }

  before(async () => {
    registry = await startRegistry();
    client = new RegistryClient(registry.host, { credentials: [] });
    await pushBlob("team/app", bytes);
  });
  after(async () => {
    await registry.stop();
  });

  it("stores an entry by mounting the image's blob, and finds it again from another client", async () => {
    const warnings: string[] = [];
    const cache = new RegistryLayerCache(client, "team/app-cache", (w) => warnings.push(w));
    assert.equal(await cache.lookup(inputs("stored")), undefined, "empty cache: a miss");
    assert.deepEqual(warnings, [], "a miss on an empty cache is no warning");
    assert.equal(await cache.store(inputs("stored"), blob, { from: "team/app" }), true);
    assert.deepEqual(warnings, []);
    // The registry holds the artifact under the key's tag, with the blob mounted into the cache repository.
    const response = await fetch(`${registry.url}/v2/team/app-cache/manifests/${layerCacheTag(inputs("stored"))}`, {
      headers: { accept: MediaType.ociManifest },
    });
    assert.equal(response.status, 200);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), layerCacheManifest(inputs("stored"), blob).bytes);
    const head = await fetch(`${registry.url}/v2/team/app-cache/blobs/${blob.digest}`, { method: "HEAD" });
    assert.equal(head.status, 200);
    const config = await fetch(`${registry.url}/v2/team/app-cache/blobs/${emptyConfig.digest}`);
    assert.equal(await config.text(), "{}");

    const other = new RegistryLayerCache(new RegistryClient(registry.host, { credentials: [] }), "team/app-cache");
    assert.deepEqual(await other.lookup(inputs("stored")), {
      descriptor: { mediaType: MediaType.ociLayerGzip, ...blob },
      registry: registry.host,
      repository: "team/app-cache",
    });
    assert.equal(await other.lookup({ ...inputs("stored"), codecId: "gzip/6/test" }), undefined, "other settings: a miss");
  });

  it("uploads the blob when no repository holds it to mount from", async () => {
    const content = randomBytes(1000);
    const own = { digest: digestOf(content) as Digest, size: content.length };
    const cache = new RegistryLayerCache(client, "uploaded-cache");
    assert.equal(await cache.store(inputs("uploaded"), own, { from: "nowhere", open: () => Readable.from([content]) }), true);
    assert.equal((await cache.lookup(inputs("uploaded")))?.descriptor.digest, own.digest);
  });

  it("stores nothing, with a warning, when the blob can be neither mounted nor sent", async () => {
    const warnings: string[] = [];
    const cache = new RegistryLayerCache(client, "unstored-cache", (w) => warnings.push(w));
    const absent = { digest: digestOf("absent") as Digest, size: 6 };
    assert.equal(await cache.store(inputs("absent"), absent, { from: "team/app" }), false);
    assert.match(warnings.join("\n"), /not stored/);
    assert.equal(await cache.lookup(inputs("absent")), undefined);
  });

  it("ignores an entry whose blob is gone from the cache repository", async () => {
    const content = randomBytes(2000);
    const gone = { digest: digestOf(content) as Digest, size: content.length };
    await pushBlob("gone-src", content);
    const warnings: string[] = [];
    const cache = new RegistryLayerCache(client, "gone-cache", (w) => warnings.push(w));
    assert.equal(await cache.store(inputs("gone"), gone, { from: "gone-src" }), true);
    assert.ok(await cache.lookup(inputs("gone")));
    await deleteBlob("gone-cache", gone.digest);
    assert.equal(await cache.lookup(inputs("gone")), undefined);
    assert.match(warnings.join("\n"), /missing or of another size/);
  });

  it("ignores an entry whose recorded size is not the blob's", async () => {
    const warnings: string[] = [];
    const cache = new RegistryLayerCache(client, "team/app-cache", (w) => warnings.push(w));
    // The entry of a blob with another size, written as a damaged or forged entry would be.
    const wrong = inputs("wrong size");
    const scopes = [repositoryScope("team/app-cache", "pull,push")];
    await client.putManifest(
      "team/app-cache",
      layerCacheTag(wrong),
      layerCacheManifest(wrong, { ...blob, size: blob.size + 1 }),
      scopes,
      "test",
    );
    assert.equal(await cache.lookup(wrong), undefined);
    assert.match(warnings.join("\n"), /missing or of another size/);
  });

  it("ignores a tag of the key's name that is not an entry for these inputs", async () => {
    const warnings: string[] = [];
    const cache = new RegistryLayerCache(client, "team/app-cache", (w) => warnings.push(w));
    const foreign = inputs("foreign");
    const scopes = [repositoryScope("team/app-cache", "pull,push")];
    // An entry made for other inputs, stored under this key's tag.
    await client.putManifest("team/app-cache", layerCacheTag(foreign), layerCacheManifest(inputs("stored"), blob), scopes, "test");
    assert.equal(await cache.lookup(foreign), undefined);
    assert.match(warnings.join("\n"), /ignored: its dev\.ocify\.layer-cache\.key/);
  });

  it("is a miss, with a warning, when the registry cannot be reached", async () => {
    const warnings: string[] = [];
    const stopped = await startRegistry();
    await stopped.stop();
    const cache = new RegistryLayerCache(new RegistryClient(stopped.host, { credentials: [] }), "x", (w) => warnings.push(w));
    assert.equal(await cache.lookup(inputs("stored")), undefined);
    assert.equal(warnings.length, 1);
  });
});
