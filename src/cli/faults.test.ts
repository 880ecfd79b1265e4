/**
 * Pushes and pulls through the seeded fault proxy (test-support/fault-proxy.ts) in front of the real
 * registry, with faults on about a third of the requests: connection resets mid-upload and mid-download,
 * cut bodies, 500/502/503, 429 with Retry-After, stalls. A multi-layer build pushed in chunks and pulled
 * to every transport must succeed and be bit-identical to the same run with no fault (manifest digests,
 * archives and layouts byte for byte), and skopeo must read what was written.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify, runOk } from "../test-support/cli.js";
import { type FaultKind, type FaultProxy, startFaultProxy } from "../test-support/fault-proxy.js";
import { recordFigures } from "../test-support/figures.js";
import { startRegistry, type TestRegistry } from "../test-support/registry.js";
import { writeSeededFile } from "../test-support/seeded.js";

const sha = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex");

/** Every file below `path` (or the file itself) with the sha256 of its bytes: what "bit-identical" compares. */
function contents(path: string): Record<string, string> {
  if (statSync(path).isFile()) return { ".": sha(readFileSync(path)) };
  const seen: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else seen[relative(path, full)] = sha(readFileSync(full));
    }
  };
  walk(path);
  return seen;
}

describe("pushes and pulls through a third of the requests failing", () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let work: string;
  const layers: string[] = [];
  const env = (cache: string): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, cache), SOURCE_DATE_EPOCH: "1700000000" });

  before(async () => {
    registry = await startRegistry();
    work = mkdtempSync(join(tmpdir(), "ocify-faults-"));
    // Three layers: two of several chunks each (incompressible), one of small files.
    for (const [i, size] of [3 << 20, 2 << 20].entries()) {
      const dir = join(work, `layer-${i}`);
      mkdirSync(dir);
      writeSeededFile(join(dir, "data.bin"), size, 40 + i);
      layers.push(dir);
    }
    const small = join(work, "layer-etc");
    mkdirSync(small);
    for (let i = 0; i < 20; i++) writeFileSync(join(small, `conf-${i}`), `setting ${i}\n`);
    layers.push(small);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const build = (host: string, repository: string, cache: string) =>
    runOcify(
      [
        "build",
        "--from",
        "scratch",
        ...layers.flatMap((dir, i) => ["--layer", `${dir}:/l${i}`]),
        "--chunk-size",
        "512K",
        "--jobs",
        "1",
        "-q",
        "-t",
        `${host}/${repository}:1`,
      ],
      { env: env(cache) },
    );

  /** Pull `source` to every transport under `dir`; the digests printed, by transport. */
  const pullAll = async (source: string, dir: string, registryHost: string, cache: string): Promise<Record<string, string>> => {
    mkdirSync(dir);
    const targets: Record<string, string> = {
      oci: `oci:${join(dir, "layout")}:app`,
      "oci-archive": `oci-archive:${join(dir, "image.oci.tar")}:app`,
      "docker-archive": `docker-archive:${join(dir, "image.tar")}:app:1`,
      docker: `${registryHost}/${relative(work, dir).replace(/[^a-z0-9]/g, "")}/copy:1`,
    };
    const digests: Record<string, string> = {};
    for (const [transport, target] of Object.entries(targets)) {
      const result = await runOcify(["copy", "--chunk-size", "512K", "-q", source, target], { env: env(cache) });
      assert.equal(result.code, 0, `copy to ${transport}: ${result.stderr}`);
      digests[transport] = result.stdout.split(" ")[0] as string;
    }
    return digests;
  };

  it("builds, pushes and pulls to every transport the same bytes as with no fault, and skopeo reads them", async () => {
    // The fault-free run, straight to the registry.
    const clean = await build(registry.host, "clean/app", "cache-clean");
    assert.equal(clean.code, 0, clean.stderr);
    const cleanDigest = clean.stdout.split(" ")[0];
    const cleanPulls = await pullAll(`${registry.host}/clean/app:1`, join(work, "clean"), registry.host, "cache-clean-pull");

    proxy = await startFaultProxy(registry.host, { seed: 2024, rate: 0.35, stallMs: 500, retryAfterSeconds: 1 });
    // A new cache: the layers are built again and streamed while they are compressed, through the faults.
    const faulty = await build(proxy.host, "faulty/app", "cache-faulty");
    assert.equal(faulty.code, 0, faulty.stderr);
    assert.equal(faulty.stdout.split(" ")[0], cleanDigest, "the pushed manifest is the fault-free one");
    const pushRequests = proxy.requests.length;
    const faultyPulls = await pullAll(`${proxy.host}/faulty/app:1`, join(work, "faulty"), proxy.host, "cache-faulty-pull");
    assert.deepEqual(faultyPulls, cleanPulls, "the same manifest digest on every transport");
    for (const name of ["layout", "image.oci.tar", "image.tar"]) {
      assert.deepEqual(contents(join(work, "faulty", name)), contents(join(work, "clean", name)), `${name} bit-identical`);
    }

    // The faults were many, and of every kind.
    const faults = proxy.faults();
    const injected = Object.values(faults).reduce((a, b) => a + b, 0);
    const requests = proxy.requests.length;
    assert.ok(injected / requests >= 0.2, `${injected} faults in ${requests} requests`);
    // Each family of fault was met (which kind of cut or 5xx falls where follows the request order).
    const families: FaultKind[][] = [
      ["reset-upload"],
      ["reset-download", "truncate"],
      ["status-500", "status-502", "status-503"],
      ["status-429"],
      ["stall"],
    ];
    for (const family of families)
      assert.ok(
        family.some((kind) => faults[kind] > 0),
        `some ${family.join("/")}: ${JSON.stringify(faults)}`,
      );
    const kinds = Object.fromEntries(Object.entries(faults).filter(([, n]) => n > 0)) as Partial<Record<FaultKind, number>>;
    recordFigures({ kind: "fault", scenario: "build + chunked push, then pull to 4 transports", requests, pushRequests, injected, kinds });

    // What real clients read.
    const skopeo = ["inspect", "--raw"];
    await runOk("skopeo", [...skopeo, "--tls-verify=false", `docker://${registry.host}/faulty/app:1`]);
    await runOk("skopeo", [...skopeo, "--tls-verify=false", `docker://${registry.host}/faulty/copy:1`]);
    await runOk("skopeo", [...skopeo, `oci:${join(work, "faulty", "layout")}:app`]);
    await runOk("skopeo", [...skopeo, `oci-archive:${join(work, "faulty", "image.oci.tar")}:app`]);
    await runOk("skopeo", [...skopeo, `docker-archive:${join(work, "faulty", "image.tar")}`]);
  });
});
