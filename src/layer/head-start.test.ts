/**
 * Head starts: a changed layer's leading blocks sent before its plan is made. The blob must be exactly a
 * cold build's whatever happens to the head start: used, found not to be the plan's, or not needed.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { appendFileSync, mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { build } from "../build.js";
import { MediaType } from "../media-types.js";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { runOk } from "../test-support/cli.js";
import {
  pushOciLayout,
  type RegistryProxyOptions,
  startRegistry,
  startRegistryProxy,
  type TestRegistry,
} from "../test-support/registry.js";
import { AbandonedUpload, buildLayer, type LayerBuildOptions, planOptionsOf } from "./build.js";
import { codecIdOf } from "./compression.js";
import { makeTree, tempDir } from "./fixtures.test.js";
import { startLayerPlanning } from "./planner.js";
import { type LayerHead, type PlannedLayer, planLayer } from "./prepare.js";

const work = tempDir("ocify-head-start-test-");
after(() => work.remove());
const ageing = 250; // ctimes cannot be set back: let them age past the racy margin instead

function options(cache: string, extra: Partial<LayerBuildOptions> = {}): LayerBuildOptions {
  return { cacheDir: join(work.path, cache), compression: "gzip", mediaType: MediaType.ociLayerGzip, ...extra };
}

/**
 * A tee that keeps every stream it is given: its bytes' digest, or the error that ended it. `received(n)`
 * resolves once its first stream has brought n bytes. `pauseMs` makes it a slow upload: it waits that
 * long after each chunk.
 */
function recordingTee(pauseMs = 0): {
  tee: (content: Readable) => Promise<void>;
  streams: { digest?: string; error?: unknown }[];
  received: (bytes: number) => Promise<void>;
} {
  const streams: { digest?: string; error?: unknown }[] = [];
  let bytes = 0;
  const waiting: { bytes: number; resolve: () => void }[] = [];
  const tee = async (content: Readable): Promise<void> => {
    const seen: { digest?: string; error?: unknown } = {};
    const first = streams.length === 0;
    streams.push(seen);
    const hash = createHash("sha256");
    try {
      for await (const chunk of content) {
        hash.update(chunk as Buffer);
        if (pauseMs > 0) await sleep(pauseMs);
        if (!first) continue;
        bytes += (chunk as Buffer).length;
        for (const waiter of waiting.filter((w) => w.bytes <= bytes)) waiter.resolve();
      }
      seen.digest = `sha256:${hash.digest("hex")}`;
    } catch (error) {
      seen.error = error;
      throw error;
    }
  };
  const received = (wanted: number): Promise<void> =>
    wanted <= bytes ? Promise.resolve() : new Promise((resolve) => waiting.push({ bytes: wanted, resolve }));
  return { tee, streams, received };
}

/** A tree built once into `cache`, then one file deep in it (after big.bin's blocks) edited; its plan and head. */
async function edited(name: string): Promise<{ tree: string; cache: string; plan: PlannedLayer; head: LayerHead | undefined }> {
  const tree = join(work.path, name);
  makeTree(tree, 300 + name.length, 80);
  await sleep(ageing);
  const cache = `${name}-cache`;
  await buildLayer({ source: tree, dest: "/app" }, options(cache));
  appendFileSync(join(tree, "dir5", "sub2", "file5.txt"), "edited\n");
  await sleep(ageing);
  let head: LayerHead | undefined;
  const plan = planLayer({ source: tree, dest: "/app" }, planOptionsOf(options(cache), codecIdOf("gzip") as string), (found) => {
    head = found;
  });
  return { tree, cache, plan, head };
}

/** `value`, a little later: the head start has begun sending by then. */
async function later<T>(value: T | Promise<T>): Promise<T> {
  await sleep(50);
  return value;
}

describe("head start (a changed layer's first blocks sent before its plan)", () => {
  it("sends the leading blocks while the plan is made, and the blob is a cold build's", async () => {
    const { tree, cache, plan, head } = await edited("used");
    assert.ok(head && head.blocks.length >= 3, "big.bin's blocks, at least, lead");
    // A slow upload, slower than making the plan: the plan is handed over once the upload has every
    // leading block, however long sending them takes (a head start stops at the block it is sending
    // when the plan comes). Should they never all come, the plan comes after a minute and the count
    // below tells.
    const { tee, streams, received } = recordingTee(100);
    const ahead = head.blocks.reduce((sum, block) => sum + block.csize, 0);
    const planned = Promise.race([received(ahead), sleep(60_000, undefined, { ref: false })]).then(() => plan);
    const rebuilt = await buildLayer({ source: tree, dest: "/app" }, options(cache, { tee }), planned, Promise.resolve(head));
    const cold = await buildLayer({ source: tree, dest: "/app" }, options("used-cold"));
    assert.equal(rebuilt.aheadBlocks, head.blocks.length, "every leading block went ahead");
    assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest);
    assert.equal(rebuilt.diffID, cold.diffID);
    assert.deepEqual(streams, [{ digest: cold.descriptor.digest }], "one upload, of exactly the blob");
  });

  it("drops an upload whose blocks sent ahead are not the plan's, and sends the blob again", async () => {
    const { tree, cache, plan, head } = await edited("forged");
    assert.ok(head);
    // The right blocks in the wrong order: each one is sound, the blob they start is not this layer's.
    const forged: LayerHead = { blocks: [...head.blocks].reverse() };
    const { tee, streams } = recordingTee();
    const rebuilt = await buildLayer({ source: tree, dest: "/app" }, options(cache, { tee }), later(plan), Promise.resolve(forged));
    const cold = await buildLayer({ source: tree, dest: "/app" }, options("forged-cold"));
    assert.equal(rebuilt.aheadBlocks, 0);
    assert.equal(rebuilt.descriptor.digest, cold.descriptor.digest);
    assert.equal(streams.length, 2, "the first upload dropped, a second one made");
    assert.ok(streams[0]?.error instanceof AbandonedUpload, `dropped as abandoned: ${String(streams[0]?.error)}`);
    assert.deepEqual(streams[1], { digest: cold.descriptor.digest });
  });

  it("drops the upload when the layer turns out unchanged", async () => {
    const { tree, cache, head } = await edited("unchanged");
    assert.ok(head);
    await buildLayer({ source: tree, dest: "/app" }, options(cache)); // the edit is now the recorded build
    await sleep(ageing);
    const plan = planLayer({ source: tree, dest: "/app" }, planOptionsOf(options(cache), codecIdOf("gzip") as string));
    assert.equal(plan.kind, "unchanged");
    const { tee, streams } = recordingTee();
    const again = await buildLayer({ source: tree, dest: "/app" }, options(cache, { tee }), later(plan), Promise.resolve(head));
    assert.equal(again.unchanged, true);
    assert.equal(streams.length, 1);
    assert.ok(streams[0]?.error instanceof AbandonedUpload, `dropped as abandoned: ${String(streams[0]?.error)}`);
  });
});

describe("head start in a build pushed to docker-registry", () => {
  let registry: TestRegistry;
  let base: string;

  before(async () => {
    registry = await startRegistry();
    base = mkdtempSync(join(tmpdir(), "ocify-head-start-base-"));
    writeBaseImageLayout(base, "latest", { seed: 11 });
    await pushOciLayout(base, "latest", `${registry.host}/base:latest`);
  });

  after(async () => {
    await registry?.stop();
    if (base) rmSync(base, { recursive: true, force: true });
  });

  /** Build TREE onto the base and push it through a proxy that sees every request; `heads` can change what the planner heard. */
  async function push(tree: string, cache: string, tag: string, heads?: (head: LayerHead) => LayerHead, faults?: RegistryProxyOptions) {
    const proxy = await startRegistryProxy(registry.host, faults);
    try {
      const request = {
        from: `${proxy.host}/base:latest`,
        layers: [{ source: tree, dest: "/app" }],
        tags: [`${proxy.host}/${tag}:latest`],
        cacheDir: join(work.path, cache),
      };
      const planner = startLayerPlanning(request);
      assert.ok(planner, "a directory and a registry: planned on the planner thread");
      // The plan comes a little later than the planner makes it, so that a head start always begins.
      const planOf = planner.plan.bind(planner);
      planner.plan = (index) => later(planOf(index));
      const heard = new Set<LayerHead>(); // build() asks more than once
      const headOf = planner.head.bind(planner);
      planner.head = async (index) => {
        const head = await headOf(index);
        if (head) heard.add(head);
        return head && heads ? heads(head) : head;
      };
      const result = await build({ ...request, planner });
      return { result, heard, requests: proxy.requests };
    } finally {
      await proxy.stop();
    }
  }

  /** The image's one layer as skopeo sees it (it checks every blob's digest on the way). */
  async function layerOf(tag: string): Promise<string> {
    const layout = mkdtempSync(join(tmpdir(), "ocify-head-start-copy-"));
    try {
      await runOk("skopeo", [
        "copy",
        "--quiet",
        "--insecure-policy",
        "--src-tls-verify=false",
        `docker://${registry.host}/${tag}:latest`,
        `oci:${layout}:x`,
      ]);
      const manifest = JSON.parse(await runOk("skopeo", ["inspect", "--raw", `oci:${layout}:x`])) as { layers: { digest: string }[] };
      return (manifest.layers.at(-1) as { digest: string }).digest;
    } finally {
      rmSync(layout, { recursive: true, force: true });
    }
  }

  /** A tree whose one deep file has an mtime ahead of any build's start: it stays racy, every build reads it again. */
  async function racyTree(name: string, seed: number): Promise<string> {
    const tree = join(work.path, name);
    makeTree(tree, seed, 80);
    const future = new Date(Date.now() + 3_600_000);
    utimesSync(join(tree, "dir5", "sub2", "file5.txt"), future, future);
    await sleep(ageing);
    return tree;
  }

  it("drops the head start when a file read again only because it looked racy changed nothing", async () => {
    const tree = await racyTree("pushed-racy", 401);
    const first = await push(tree, "pushed-racy-cache", "racy");
    const again = await push(tree, "pushed-racy-cache", "racy");
    assert.equal(again.heard.size, 1, "the racy file is a difference the planner reports after the leading blocks");
    assert.deepEqual(JSON.parse(again.result.manifest.toString()).layers, JSON.parse(first.result.manifest.toString()).layers);
    const cancelled = again.requests.filter((r) => r.method === "DELETE" && r.url.includes("/blobs/uploads/"));
    assert.equal(cancelled.length, 1, "the upload begun ahead is cancelled: the registry has the blob");
    const patches = again.requests.filter((r) => r.method === "PATCH");
    assert.ok(patches.length <= 1 && patches.every((r) => r.status !== 202), "the upload begun is not completed");
  });

  it("pushes the recorded blob to another repository when the upload begun ahead was dropped", async () => {
    // The racy case again, to a repository that does not hold the blob: the dropped upload is not taken
    // for the layer's, and the push finds the blob where the first build put it.
    const tree = await racyTree("pushed-racy-moved", 402);
    await push(tree, "pushed-racy-moved-cache", "racy-first");
    const moved = await push(tree, "pushed-racy-moved-cache", "racy-moved");
    assert.equal(moved.heard.size, 1, "an upload began ahead");
    assert.ok(
      moved.requests.some((r) => r.method === "POST" && r.url.includes("mount=")),
      "the layer is mounted from the first repository",
    );
    assert.equal(await layerOf("racy-moved"), await layerOf("racy-first"));
  });

  it("fails the build, pushing no manifest, when the registry refuses a streamed layer's last request", async () => {
    const tree = join(work.path, "pushed-refused");
    makeTree(tree, 403, 40);
    const requests: { method: string; url: string }[] = [];
    const faults: RegistryProxyOptions = {
      intercept(request, response) {
        requests.push({ method: request.method ?? "", url: request.url ?? "" });
        // The PUT ?digest= that ends a streamed upload has no body (a config's PUT carries its bytes).
        if (request.method !== "PUT" || !request.url?.includes("/blobs/uploads/") || request.headers["content-length"] !== "0")
          return false;
        response.writeHead(400, { "content-type": "application/json" });
        response.end(JSON.stringify({ errors: [{ code: "DIGEST_INVALID", message: "provided digest did not match uploaded content" }] }));
        return true;
      },
    };
    await assert.rejects(push(tree, "pushed-refused-cache", "refused", undefined, faults), (error: Error) => {
      assert.match(error.message, /layer sha256:[0-9a-f]+/);
      assert.match(error.message, /does not match its digest/);
      return true;
    });
    assert.ok(
      requests.some((r) => r.method === "PATCH"),
      "the layer was streamed",
    );
    assert.ok(!requests.some((r) => r.method === "PUT" && r.url.includes("/manifests/")), "no manifest after a failed layer");
  });

  for (const [what, heads] of [
    ["uses the head start", undefined],
    ["recovers from a head start that is not the plan's", (head: LayerHead) => ({ blocks: [...head.blocks].reverse() })],
  ] as const) {
    it(`${what}: the pushed layer is a cold build's`, async () => {
      const tree = join(work.path, `pushed-${heads ? "forged" : "used"}`);
      makeTree(tree, 400, 80);
      await sleep(ageing);
      const cache = `pushed-${heads ? "forged" : "used"}-cache`;
      const first = await push(tree, cache, "first");
      assert.equal(first.heard.size, 0, "nothing to send ahead of a first build");
      appendFileSync(join(tree, "dir5", "sub2", "file5.txt"), "edited\n");
      await sleep(ageing);
      const rebuilt = await push(tree, cache, "rebuilt", heads);
      assert.equal(rebuilt.heard.size, 1, "the planner found the leading blocks before the plan");
      const cold = await push(tree, `${cache}-cold`, "cold");
      // The same layers and config as a cold build's (the manifests name their base through each push's proxy).
      const parts = (pushed: typeof cold) => {
        const manifest = JSON.parse(pushed.result.manifest.toString()) as { config: unknown; layers: unknown };
        return { config: manifest.config, layers: manifest.layers };
      };
      assert.deepEqual(parts(rebuilt), parts(cold));
      assert.equal(await layerOf("rebuilt"), await layerOf("cold"));
      const cancelled = rebuilt.requests.filter((r) => r.method === "DELETE" && r.url.includes("/blobs/uploads/"));
      assert.equal(cancelled.length, heads ? 1 : 0, heads ? "the dropped upload is cancelled" : "no upload dropped");
    });
  }
});
