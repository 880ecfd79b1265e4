/**
 * build() with a registry layer cache (`cacheRepo`) against Debian's docker-registry: a machine with an
 * empty local cache takes a layer another machine stored, without compressing or uploading it; an entry
 * whose blob is gone, or a tag that is no entry, is ignored, the layer built and the entry stored again.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "../build.js";
import { layerCacheTag } from "../cache-repo/entry.js";
import type { Digest } from "../digest.js";
import { codecIdOf } from "../layer/compression.js";
import { content, random, tempDir } from "../layer/fixtures.test.js";
import { MediaType } from "../media-types.js";
import type { ProgressEvent } from "../progress.js";
import { assertOneErrorLine, runOcify } from "../test-support/cli.js";
import { type RegistryProxy, startRegistry, startRegistryProxy, type TestRegistry } from "../test-support/registry.js";

/** The number of block files a local cache holds (compressed blocks: none when nothing was compressed). */
function blockFiles(cacheDir: string): number {
  const dir = join(cacheDir, "blocks");
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
}

describe("build with a registry layer cache", () => {
  const work = tempDir("ocify-cache-repo-build-");
  let registry: TestRegistry;
  let proxy: RegistryProxy;
  const tree = join(work.path, "tree");
  let machines = 0;

  /** A build of the tree as a machine with an empty local cache makes it; the progress events it reported. */
  async function freshBuild(tag: string, extra: { cacheRepo?: string; tags?: string[] } = {}) {
    const cacheDir = join(work.path, `machine-${++machines}`);
    const events: ProgressEvent[] = [];
    const warnings: string[] = [];
    const result = await build({
      from: "scratch",
      layers: [{ source: tree, dest: "/app" }],
      tags: extra.tags ?? [`${proxy.host}/${tag}`],
      cacheDir,
      cacheRepo: extra.cacheRepo ?? `${proxy.host}/team/app-cache`,
      progress: (e) => events.push(e),
      warn: (m) => warnings.push(m),
    });
    return { result, cacheDir, events, warnings };
  }

  const layerUploads = () =>
    proxy.requests.filter((r) => (r.method === "PATCH" || r.method === "PUT") && r.url.includes("/blobs/uploads/") && r.bodyBytes > 10_000);

  /** The tag the cache stores the tree's layer under (its diffID is the built layer's). */
  async function entryTag(diffID: string): Promise<string> {
    return layerCacheTag({ diffID: diffID as Digest, mediaType: MediaType.ociLayerGzip, codecId: codecIdOf("gzip") as string });
  }

  before(async () => {
    registry = await startRegistry();
    proxy = await startRegistryProxy(registry.host);
    mkdirSync(join(tree, "lib"), { recursive: true });
    writeFileSync(join(tree, "big.bin"), content(random(31), 3 << 20));
    for (let i = 0; i < 40; i++) writeFileSync(join(tree, "lib", `m${i}.js`), `export const n = ${i};\n`.repeat(50 + i));
  });

  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    work.remove();
  });

  it("stores the layer after the push, and a fresh machine mounts it from the cache without compressing or uploading it", async () => {
    const first = await freshBuild("app:one");
    assert.ok(blockFiles(first.cacheDir) > 0, "the first machine compressed the layer");
    const diffID = JSON.parse((first.result.configs[0] as Buffer).toString("utf8")).rootfs.diff_ids[0] as string;
    const tags = (await (await fetch(`${registry.url}/v2/team/app-cache/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, [await entryTag(diffID)], "one entry, tagged with the layer's key");

    const uploadsBefore = layerUploads().length;
    const second = await freshBuild("other:two");
    assert.equal(second.result.digest, first.result.digest, "the same image");
    assert.equal(blockFiles(second.cacheDir), 0, "nothing was compressed");
    assert.equal(layerUploads().length, uploadsBefore, "no layer was uploaded");
    const mounts = proxy.requests.filter(
      (r) => r.method === "POST" && r.url.startsWith("/v2/other/blobs/uploads/?mount=") && r.status === 201,
    );
    assert.equal(mounts.length, 1, "the layer was mounted from the cache repository");
    assert.ok(
      second.events.some((e) => e.kind === "build" && e.phase === "skipped"),
      "the build says it skipped the layer",
    );
    const pulled = await fetch(`${registry.url}/v2/other/manifests/two`, { headers: { accept: MediaType.ociManifest } });
    assert.equal(pulled.status, 200);
  });

  it("reads a cached layer from the cache repository for a destination that is no registry", async () => {
    const layout = join(work.path, "layout");
    const { result, cacheDir } = await freshBuild("", { tags: [`oci:${layout}:v1`] });
    assert.equal(blockFiles(cacheDir), 0, "nothing was compressed");
    const manifest = JSON.parse(readFileSync(join(layout, "blobs", ...result.digest.split(":")), "utf8")) as {
      layers: { digest: string }[];
    };
    const layer = manifest.layers[0]?.digest as string;
    assert.ok(existsSync(join(layout, "blobs", ...layer.split(":"))), "the layer's blob is in the layout");
  });

  it("ignores an entry whose blob the cache repository no longer holds, builds the layer and stores the entry again", async () => {
    const { result } = await freshBuild("app:three");
    const manifest = (await (
      await fetch(`${registry.url}/v2/app/manifests/three`, { headers: { accept: MediaType.ociManifest } })
    ).json()) as {
      layers: { digest: string }[];
    };
    const blob = manifest.layers[0]?.digest as string;
    const deleted = await fetch(`${registry.url}/v2/team/app-cache/blobs/${blob}`, { method: "DELETE" });
    assert.equal(deleted.status, 202);

    const { result: rebuilt, cacheDir, warnings } = await freshBuild("app:four");
    assert.equal(rebuilt.digest, result.digest);
    assert.ok(blockFiles(cacheDir) > 0, "the layer was built");
    assert.ok(
      warnings.some((w) => /ignored: blob .* is missing/.test(w)),
      `warned: ${warnings.join(" | ")}`,
    );
    const head = await fetch(`${registry.url}/v2/team/app-cache/blobs/${blob}`, { method: "HEAD" });
    assert.equal(head.status, 200, "the blob is back in the cache repository (mounted from the destination)");
    const next = await freshBuild("app:five");
    assert.equal(blockFiles(next.cacheDir), 0, "the entry stored again is a hit");
  });

  it("ignores a tag that is no entry of this key, builds the layer and overwrites the tag", async () => {
    const { result } = await freshBuild("app:six");
    const diffID = JSON.parse((result.configs[0] as Buffer).toString("utf8")).rootfs.diff_ids[0] as string;
    const tag = await entryTag(diffID);
    // Someone else's image under the entry's tag: the app image itself.
    const image = await fetch(`${registry.url}/v2/app/manifests/six`, { headers: { accept: MediaType.ociManifest } });
    const bytes = Buffer.from(await image.arrayBuffer());
    const configDigest = (JSON.parse(bytes.toString("utf8")) as { config: { digest: string } }).config.digest;
    const mount = await fetch(`${registry.url}/v2/team/app-cache/blobs/uploads/?mount=${configDigest}&from=app`, { method: "POST" });
    assert.equal(mount.status, 201);
    const put = await fetch(`${registry.url}/v2/team/app-cache/manifests/${tag}`, {
      method: "PUT",
      headers: { "content-type": MediaType.ociManifest },
      body: bytes,
    });
    assert.equal(put.status, 201);

    const { cacheDir, warnings } = await freshBuild("app:seven");
    assert.ok(blockFiles(cacheDir) > 0, "the layer was built");
    assert.ok(
      warnings.some((w) => /not an ocify layer cache entry/.test(w)),
      `warned: ${warnings.join(" | ")}`,
    );
    const next = await freshBuild("app:eight");
    assert.equal(blockFiles(next.cacheDir), 0, "the tag now holds the entry");
  });

  it("ocify build --cache-repo: a fresh machine's build of the same tree compresses nothing and gives the same digest", async () => {
    const args = (tag: string) => ["build", "--from", "scratch", "--layer", `${tree}:/app`, "-t", `${registry.host}/cli:${tag}`, "-q"];
    const cacheRepo = ["--cache-repo", `${registry.host}/cli-cache`];
    const first = await runOcify([...args("a"), ...cacheRepo], { env: { OCIFY_CACHE_DIR: join(work.path, "cli-1") } });
    assert.equal(first.code, 0, first.stderr);
    const second = await runOcify([...args("b"), ...cacheRepo], { env: { OCIFY_CACHE_DIR: join(work.path, "cli-2") } });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.split(" ")[0], first.stdout.split(" ")[0]);
    assert.equal(blockFiles(join(work.path, "cli-2")), 0, "nothing was compressed");
    const bad = await runOcify([...args("c"), "--cache-repo", `${registry.host}/cli-cache:latest`], {
      env: { OCIFY_CACHE_DIR: join(work.path, "cli-3") },
    });
    assertOneErrorLine(bad, /cache repository .*: names a tag or digest \(give REGISTRY\/REPOSITORY/, "--cache-repo with a tag", 2);
  });

  it("refuses a cache repository that names a tag, before any work", async () => {
    await assert.rejects(
      build({
        from: "scratch",
        layers: [{ source: tree, dest: "/app" }],
        tags: [`${proxy.host}/app:nine`],
        cacheRepo: `${proxy.host}/cache:latest`,
      }),
      /cache repository .*: names a tag or digest/,
    );
  });
});
