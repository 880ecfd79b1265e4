/** build() against Debian's docker-registry: what a rebuild from a registry base asks the registry again. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "./build.js";
import { writeBaseImageLayout } from "./test-support/base-image.js";
import {
  eventually,
  type ProxiedRequest,
  pushOciLayout,
  type RegistryProxy,
  startRegistry,
  startRegistryProxy,
  type TestRegistry,
} from "./test-support/registry.js";

describe("build from a registry base", () => {
  let registry: TestRegistry;
  let work: string;

  before(async () => {
    registry = await startRegistry();
    work = mkdtempSync(join(tmpdir(), "ocify-build-test-"));
    writeBaseImageLayout(join(work, "base"), "latest", { seed: 23 });
    await pushOciLayout(join(work, "base"), "latest", `${registry.host}/base:latest`);
    mkdirSync(join(work, "tree"));
    writeFileSync(join(work, "tree", "hello.txt"), "hello\n");
  });

  after(async () => {
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("keeps the base's config in the cache, reads it from there next time, and fetches it again when damaged", async () => {
    const proxy = await startRegistryProxy(registry.host);
    try {
      const cacheDir = join(work, "cache");
      const options = {
        from: `${proxy.host}/base:latest`,
        layers: [{ source: join(work, "tree"), dest: "/app" }],
        tags: [`${proxy.host}/app:latest`],
        cacheDir,
        sourceDateEpoch: 1_700_000_000,
      };
      // The base's layers are mounted, not read: the only blob this build reads from the base is its config.
      const baseBlobReads = () => proxy.requests.filter((r) => r.method === "GET" && r.url.startsWith("/v2/base/blobs/"));

      const first = await build(options);
      assert.equal(baseBlobReads().length, 1, "the first build fetches the config");
      const digest = (baseBlobReads()[0] as { url: string }).url.split("/").pop() as string;
      const kept = join(cacheDir, "blobs", "sha256", digest.replace("sha256:", ""));
      const config = readFileSync(kept);
      assert.equal(`sha256:${createHash("sha256").update(config).digest("hex")}`, digest, "and keeps it, whole");

      const second = await build(options);
      assert.equal(baseBlobReads().length, 1, "the next build reads it from the cache");
      assert.equal(second.digest, first.digest, "the same image");

      writeFileSync(kept, Buffer.alloc(statSync(kept).size, "x")); // same size, wrong bytes
      const third = await build(options);
      assert.equal(baseBlobReads().length, 2, "a damaged entry is fetched again");
      assert.equal(third.digest, first.digest);
      assert.ok(readFileSync(kept).equals(config), "and replaced");
    } finally {
      await proxy.stop();
    }
  });

  // The base's manifest: resolved with HEAD (a build has a cache), or fetched with GET.
  const baseManifest = (r: ProxiedRequest) => (r.method === "GET" || r.method === "HEAD") && r.url.startsWith("/v2/base/manifests/");

  /** Whether the proxy has received some of a layer's bytes for a repository (a streamed PATCH). */
  const streaming = (requests: readonly ProxiedRequest[], repository: string) =>
    requests.some((r) => r.method === "PATCH" && r.url.startsWith(`/v2/${repository}/blobs/uploads/`) && r.bodyBytes > 0);

  it("builds and uploads its layer while the base is resolved, and commits the blob only once the base is known", async () => {
    // A slow registry for the base: its manifest is answered once the layer's bytes are on their way
    // (however long that takes here), or after a minute without them, and the test fails.
    const proxy: RegistryProxy = await startRegistryProxy(registry.host, {
      delay: (r) => (baseManifest(r) ? eventually(() => streaming(proxy.requests, "overlap")) : 0),
    });
    try {
      const options = {
        from: `${proxy.host}/base:latest`,
        layers: [{ source: join(work, "tree"), dest: "/app" }],
        tags: [`${proxy.host}/overlap:latest`],
        cacheDir: join(work, "cache-overlap"),
        sourceDateEpoch: 1_700_000_000,
      };
      const result = await build(options);
      const answered = proxy.requests.find(baseManifest)?.answeredAt as number;
      const upload = proxy.requests.filter((r) => r.url.startsWith("/v2/overlap/blobs/uploads/"));
      const patch = upload.find((r) => r.method === "PATCH");
      assert.ok(patch && patch.bodyBytes > 0, "the layer was streamed");
      assert.ok(patch.at < answered, "its upload began before the base's manifest came");
      const commit = upload.find((r) => r.method === "PUT" && r.url.includes("digest="));
      assert.ok(commit && commit.at >= answered, "the blob was committed after it");
      const plain = await build({
        ...options,
        from: `${registry.host}/base:latest`,
        tags: [`${registry.host}/plain:latest`],
        cacheDir: join(work, "cache-plain"),
      });
      // The same config and layers (the manifests differ only in the base's name, an annotation).
      const parts = (manifest: Buffer) => {
        const { config, layers } = JSON.parse(manifest.toString());
        return { config, layers };
      };
      assert.deepEqual(parts(result.manifest), parts(plain.manifest), "the same image as without a slow base");
    } finally {
      await proxy.stop();
    }
  });

  it("stops the layer's upload when the base cannot be resolved: the base's error, no blob and no manifest", async () => {
    // No such tag: the registry's own 404, held while the layer is built and sent (until its bytes flow).
    const proxy: RegistryProxy = await startRegistryProxy(registry.host, {
      delay: (r) => (baseManifest(r) ? eventually(() => streaming(proxy.requests, "orphan")) : 0),
    });
    try {
      await assert.rejects(
        build({
          from: `${proxy.host}/base:gone`,
          layers: [{ source: join(work, "tree"), dest: "/app" }],
          tags: [`${proxy.host}/orphan:latest`],
          cacheDir: join(work, "cache-orphan"),
          sourceDateEpoch: 1_700_000_000,
        }),
        /manifest unknown/i,
      );
      const upload = proxy.requests.filter((r) => r.url.startsWith("/v2/orphan/"));
      assert.ok(
        upload.some((r) => r.method === "PATCH" && r.bodyBytes > 0),
        "the layer was being uploaded meanwhile",
      );
      assert.ok(!upload.some((r) => r.method === "PUT"), "no blob committed, no manifest written");
      assert.ok(
        upload.some((r) => r.method === "DELETE"),
        "the upload session was cancelled",
      );
      const tags = await fetch(`http://${registry.host}/v2/orphan/tags/list`);
      assert.equal(tags.status, 404, "the repository does not exist");
    } finally {
      await proxy.stop();
    }
  });
});
