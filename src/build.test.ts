/** build() against Debian's docker-registry: what a rebuild from a registry base asks the registry again. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "./build.js";
import { writeBaseImageLayout } from "./test-support/base-image.js";
import { pushOciLayout, startRegistry, startRegistryProxy, type TestRegistry } from "./test-support/registry.js";

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
});
