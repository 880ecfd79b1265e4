import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { Worker } from "node:worker_threads";
import { InputError } from "../errors.js";
import { MediaType } from "../media-types.js";
import { buildLayer, type LayerBuildOptions, planOptionsOf } from "./build.js";
import { codecIdOf, createCodec } from "./compression.js";
import { makeTree, tempDir } from "./fixtures.test.js";
import { LayerPlanner, startLayerPlanning } from "./planner.js";
import { claimPlannerThread, startPlannerThread } from "./planner-thread.js";
import { type PlannedLayer, type PlanOptions, planLayer } from "./prepare.js";

const work = tempDir("ocify-planner-test-");
after(() => work.remove());

function options(cache: string): LayerBuildOptions {
  return { cacheDir: join(work.path, cache), compression: "gzip", mediaType: MediaType.ociLayerGzip };
}

function planOptions(cache: string): PlanOptions {
  return planOptionsOf(options(cache), codecIdOf("gzip") as string);
}

function planIn(
  sources: { source: string; dest: string }[],
  cache: string,
): { planner: LayerPlanner; plans: Promise<PlannedLayer | undefined>[] } {
  const planner = LayerPlanner.start(sources, planOptions(cache)) as LayerPlanner;
  assert.ok(planner, "the planner starts when it is worth it");
  return { planner, plans: sources.map((_, i) => planner.plan(i)) };
}

describe("layer planner (worker thread)", () => {
  it("plans a tree exactly as the main thread does, shared plan memory included", async () => {
    const tree = join(work.path, "same-tree");
    makeTree(tree, 41, 60);
    const source = { source: tree, dest: "/app" };
    const { planner, plans } = planIn([source], "same");
    try {
      const there = await plans[0];
      const here = planLayer(source, planOptions("same"));
      assert.equal(there?.kind, "tree");
      assert.equal(here.kind, "tree");
      if (there?.kind !== "tree" || here.kind !== "tree") return;
      assert.equal(there.fingerprint, here.fingerprint);
      assert.equal(there.recordPath, here.recordPath);
      assert.deepEqual([...there.packed.cuts], [...here.packed.cuts]);
      assert.deepEqual(Buffer.from(there.packed.heads), Buffer.from(here.packed.heads));
      // A layer built from the worker's plan is the layer a main-thread plan gives.
      const fromWorker = await buildLayer(source, options("from-worker"), Promise.resolve(there));
      const fromMain = await buildLayer(source, options("from-main"));
      assert.equal(fromWorker.descriptor.digest, fromMain.descriptor.digest);
      assert.equal(fromWorker.diffID, fromMain.diffID);
    } finally {
      await planner.close();
    }
  });

  it("a plan made with other options (another owner) is not used by the build", async () => {
    const tree = join(work.path, "owner-tree");
    makeTree(tree, 45, 20);
    const source = { source: tree, dest: "/" };
    const { planner, plans } = planIn([source], "owner");
    try {
      const root = await plans[0]; // planned for 0:0
      const chowned = { ...options("owner"), chown: { uid: 1000, gid: 1000 } };
      const fromPlan = await buildLayer(source, chowned, Promise.resolve(root));
      const fromMain = await buildLayer(source, { ...options("owner-main"), chown: { uid: 1000, gid: 1000 } });
      assert.equal(fromPlan.descriptor.digest, fromMain.descriptor.digest, "the build planned again, with its own owner");
      const asRoot = await buildLayer(source, options("owner-root"));
      assert.notEqual(fromPlan.descriptor.digest, asRoot.descriptor.digest);
    } finally {
      await planner.close();
    }
  });

  it("recognizes an unchanged layer, and a changed one once a file changes", async () => {
    const tree = join(work.path, "unchanged-tree");
    makeTree(tree, 42, 40);
    execFileSync("find", [tree, "-exec", "touch", "-h", "-d", "@1600000000", "{}", "+"]);
    const source = { source: tree, dest: "/" };
    const first = await buildLayer(source, options("unchanged"));
    let { planner, plans } = planIn([source], "unchanged");
    const again = await plans[0];
    await planner.close();
    assert.equal(again?.kind, "unchanged");
    if (again?.kind === "unchanged") assert.equal(again.record.digest, first.descriptor.digest);

    writeFileSync(join(tree, "added.txt"), "new\n");
    ({ planner, plans } = planIn([source], "unchanged"));
    const changed = await plans[0];
    await planner.close();
    assert.equal(changed?.kind, "tree");
  });

  it("fails a layer with the main thread's one-line error and its class, and plans the others", async () => {
    const bad = join(work.path, "bad");
    mkdirSync(bad);
    symlinkSync("../../etc/passwd", join(bad, "escape"));
    const good = join(work.path, "good");
    makeTree(good, 43, 10);
    const { planner, plans } = planIn(
      [
        { source: bad, dest: "/" },
        { source: good, dest: "/" },
      ],
      "errors",
    );
    try {
      let here: unknown;
      try {
        planLayer({ source: bad, dest: "/" }, planOptions("errors"));
      } catch (error) {
        here = error;
      }
      assert.ok(here instanceof InputError);
      await assert.rejects(plans[0] as Promise<unknown>, (error: unknown) => {
        assert.ok(error instanceof InputError, "an InputError still (exit 1, no stack)");
        assert.equal(error.message, here.message);
        assert.equal(error.hint, here.hint);
        return true;
      });
      assert.equal((await plans[1])?.kind, "tree");
    } finally {
      await planner.close();
    }
  });

  it("lets the main thread take the last source the worker has not started", async () => {
    const a = join(work.path, "steal-a");
    const b = join(work.path, "steal-b");
    const c = join(work.path, "steal-c");
    for (const [i, dir] of [a, b, c].entries()) makeTree(dir, 50 + i, 20);
    const { planner, plans } = planIn(
      [a, b, c].map((source) => ({ source, dest: "/" })),
      "steal",
    );
    try {
      const stolen = planner.steal();
      assert.equal(stolen, 2, "the last source");
      assert.equal(await plans[2], undefined, "its plan is left to the caller");
      assert.equal((await plans[0])?.kind, "tree");
      assert.equal((await plans[1])?.kind, "tree");
      assert.equal(planner.steal(), undefined, "nothing left to take");
    } finally {
      await planner.close();
    }
  });

  it("leaves a tarball to the main thread, and is started only when worth a thread", async () => {
    const dir = join(work.path, "for-tar");
    makeTree(dir, 44, 5);
    const tarball = join(work.path, "layer.tar");
    execFileSync("tar", ["-cf", tarball, "-C", dir, "."]);
    const { planner, plans } = planIn([{ source: tarball, dest: "/" }], "tarball");
    assert.equal(await plans[0], undefined);
    await planner.close();
    // Not worth a thread: no registry to talk to meanwhile, or no directory to list, or a missing source.
    const request = { registry: false, layers: [{ source: dir, dest: "/" }], cacheDir: join(work.path, "x") };
    assert.equal(startLayerPlanning(request), undefined);
    assert.equal(startLayerPlanning({ ...request, layers: [{ source: tarball, dest: "/" }], registry: true }), undefined);
    assert.equal(startLayerPlanning({ ...request, layers: [{ source: join(dir, "missing"), dest: "/" }], registry: true }), undefined);
    const worth = startLayerPlanning({ ...request, registry: true });
    assert.ok(worth, "a directory and a registry destination");
    assert.equal((await worth.plan(0))?.kind, "tree");
    await worth.close();
  });

  it("plans on the thread started ahead of it, and a thread started ahead holds nothing open", async () => {
    const early = startPlannerThread();
    assert.ok(early);
    assert.equal(startPlannerThread(), early, "one thread ahead at most");
    const tree = join(work.path, "ahead-tree");
    makeTree(tree, 46, 20);
    const source = { source: tree, dest: "/" };
    await new Promise((resolve) => setTimeout(resolve, 300)); // booted and idle, waiting for work
    const { planner, plans } = planIn([source], "ahead");
    try {
      const there = await plans[0];
      assert.equal(there?.kind, "tree");
      const here = planLayer(source, planOptions("ahead"));
      if (there?.kind === "tree" && here.kind === "tree") assert.equal(there.fingerprint, here.fingerprint);
    } finally {
      await planner.close();
    }
    // Claimed once: the next planner gets a thread of its own.
    const next = claimPlannerThread();
    assert.ok(next);
    assert.notEqual(next, early);
    await next.terminate();
    // A thread started ahead that died before it was claimed is not handed out.
    const dead = startPlannerThread();
    await dead?.terminate();
    const fresh = claimPlannerThread();
    assert.ok(fresh && fresh !== dead);
    await fresh.terminate();
    // Left unclaimed, it does not keep a process alive.
    const script = `import(${JSON.stringify(new URL("./planner-thread.js", import.meta.url).href)}).then((m) => m.startPlannerThread())`;
    // A thread that kept it alive would hang it: the limit is only there to end such a hang.
    execFileSync(process.execPath, ["-e", script], { timeout: 120_000 });
  });

  it("adopts the thread the CLI's launcher started before any module loaded", async () => {
    await claimPlannerThread()?.terminate(); // none left ahead by other tests
    const launcher = createRequire(import.meta.url)("../../bin/planner-thread.js") as { startPlannerThread(): void };
    launcher.startPlannerThread();
    const handed = (globalThis as { [key: symbol]: { worker: Worker } | undefined })[Symbol.for("ocify.plannerThread")];
    assert.ok(handed, "the launcher left a thread to adopt");
    assert.equal(startPlannerThread(), handed.worker, "adopted, not a second thread");
    const tree = join(work.path, "launched-tree");
    makeTree(tree, 47, 10);
    const { planner, plans } = planIn([{ source: tree, dest: "/" }], "launched");
    try {
      assert.equal((await plans[0])?.kind, "tree", "the launcher's thread plans");
    } finally {
      await planner.close();
    }
    assert.equal(handed.worker.threadId, -1, "the planner used it, and stopped it when closed");
  });

  it("knows the codec ids createCodec gives without making the codec", async () => {
    for (const [compression, level] of [
      ["gzip", undefined],
      ["gzip", 6],
      ["none", undefined],
    ] as const) {
      const codec = await createCodec(compression, level);
      assert.equal(codecIdOf(compression, level), codec.id);
      await codec.close();
    }
    assert.equal(codecIdOf("gzip", 12), undefined, "out of range: createCodec says why");
  });
});
