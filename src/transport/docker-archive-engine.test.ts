/**
 * A real Docker engine judges our docker-archive: `docker load` takes what we write (layers kept gzip- or
 * zstd-compressed) and runs it, and our source reads what `docker save` writes.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { gzipSync } from "node:zlib";
import { InputError } from "../errors.js";
import { MediaType } from "../media-types.js";
import { busyboxPath } from "../test-support/base-image.js";
import { type DockerEngine, dockerEngineUnavailableReason, engineOrSkip, startDockerEngine } from "../test-support/docker-engine.js";
import { type ImageSummary, validateImage } from "../validate.js";
import { copyAll, writeFixtureLayout } from "./fixtures.test.js";
import { openDestination, openSource, parseTransportReference } from "./transport.js";

let engine: DockerEngine | undefined;
let unavailable: string | undefined;
let work: string;
let fixture: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), "ocify-engine-"));
  fixture = join(work, "fixture");
  writeFixtureLayout(fixture);
  engine = await startDockerEngine();
  if (!engine) {
    unavailable = dockerEngineUnavailableReason();
    // Loud on purpose: these tests are skipped only because the engine cannot start here.
    process.stderr.write(`\n!!! Docker engine unavailable, docker load/save tests SKIPPED: ${unavailable}\n\n`);
  }
});

after(async () => {
  await engine?.stop();
  rmSync(work, { recursive: true, force: true });
});

function need(t: TestContext): DockerEngine | undefined {
  return engineOrSkip(t, engine);
}

async function docker(args: string[]): Promise<string> {
  const result = await engine!.docker(args);
  assert.equal(result.code, 0, `docker ${args.join(" ")} failed: ${result.stderr.trim()}`);
  return result.stdout;
}

async function writeArchive(tag: string, target: string): Promise<void> {
  const source = await openSource(parseTransportReference(`oci:${fixture}:${tag}`));
  await copyAll(source, await openDestination(parseTransportReference(target)));
}

async function summary(ref: string): Promise<ImageSummary> {
  const source = await openSource(parseTransportReference(ref));
  try {
    return (await validateImage(source)) as ImageSummary;
  } finally {
    await source.close();
  }
}

describe("docker load reads our docker-archive", () => {
  it("loads the busybox base with its layer still gzip-compressed and runs it", async (t) => {
    if (!need(t)) return;
    assert.ok(existsSync(busyboxPath), `${busyboxPath} is needed to run the image (apt-get install busybox-static)`);
    const path = join(work, "busybox.tar");
    await writeArchive("base", `docker-archive:${path}:ocify-test/busybox:v1`);
    const ours = await summary(`docker-archive:${path}`);
    assert.equal(ours.layers[0]?.mediaType, MediaType.dockerLayerGzip, "the layer file is kept compressed");
    assert.match(await docker(["load", "-i", path]), /Loaded image: ocify-test\/busybox:v1/);
    const run = await engine!.docker(["run", "--rm", "--network", "none", "ocify-test/busybox:v1", "/bin/busybox", "echo", "hi"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "hi\n");
    const inspect = JSON.parse(await docker(["image", "inspect", "ocify-test/busybox:v1"])) as {
      Id: string;
      RootFS: { Layers: string[] };
    }[];
    assert.equal(inspect[0]?.Id, ours.configDigest, "image ID = config digest: the config bytes were kept");
    assert.deepEqual(
      inspect[0]?.RootFS.Layers,
      ours.layers.map((l) => l.diffID),
    );
  });

  it("loads a multi-layer image (gzip, uncompressed, whiteout) untagged and by name", async (t) => {
    if (!need(t)) return;
    const path = join(work, "multi.tar");
    await writeArchive("multi-gzip", `docker-archive:${path}:localhost:5000/ocify/multi:1.0`);
    const ours = await summary(`docker-archive:${path}`);
    assert.match(await docker(["load", "-i", path]), /Loaded image: localhost:5000\/ocify\/multi:1\.0/);
    const inspect = JSON.parse(await docker(["image", "inspect", "localhost:5000/ocify/multi:1.0"])) as {
      Id: string;
      RootFS: { Layers: string[] };
    }[];
    assert.equal(inspect[0]?.Id, ours.configDigest);
    assert.deepEqual(
      inspect[0]?.RootFS.Layers,
      ours.layers.map((l) => l.diffID),
    );
    const untagged = join(work, "untagged.tar");
    await writeArchive("multi-gzip", `docker-archive:${untagged}`);
    assert.match(await docker(["load", "-i", untagged]), /Loaded image ID: sha256:/);
  });

  it("loads a zstd-compressed layer file (Docker >= 23)", async (t) => {
    if (!need(t)) return;
    const version = (await docker(["version", "--format", "{{.Server.Version}}"])).trim();
    if (Number.parseInt(version, 10) < 23) {
      // Not a pass: docker load before 23.0 cannot read zstd layer files (ApplyLayer: invalid tar header).
      t.todo(`engine ${version} cannot load zstd layer files; ocify keeps zstd layers as they are (skopeo refuses them outright)`);
      return;
    }
    const path = join(work, "zstd.tar");
    await writeArchive("multi", `docker-archive:${path}:ocify/zstd:1`);
    const ours = await summary(`docker-archive:${path}`);
    assert.equal(ours.layers[1]?.mediaType, MediaType.dockerLayerZstd);
    const result = await engine!.docker(["load", "-i", path]);
    assert.equal(result.code, 0, `docker load: ${result.stderr.trim()}`);
    const inspect = JSON.parse(await docker(["image", "inspect", "ocify/zstd:1"])) as { RootFS: { Layers: string[] } }[];
    assert.deepEqual(
      inspect[0]?.RootFS.Layers,
      ours.layers.map((l) => l.diffID),
    );
  });
});

describe("we read what docker save writes", () => {
  it("reads a classic docker save archive (VERSION/json/layer.tar) with identical config and diffIDs", async (t) => {
    if (!need(t)) return;
    const loaded = join(work, "for-save.tar");
    await writeArchive("multi-gzip", `docker-archive:${loaded}:ocify/saved:1`);
    await docker(["load", "-i", loaded]);
    const saved = join(work, "saved.tar");
    await docker(["save", "-o", saved, "ocify/saved:1"]);
    const theirs = await summary(`docker-archive:${saved}`);
    const ours = await summary(`docker-archive:${loaded}`);
    assert.ok(theirs.configBytes.equals(ours.configBytes), "docker keeps the config bytes");
    assert.deepEqual(
      theirs.layers.map((l) => l.diffID),
      ours.layers.map((l) => l.diffID),
    );
    assert.ok(theirs.layers.every((l) => l.mediaType === MediaType.dockerLayer && l.digest === l.diffID));
    // docker save | gzip, as people store them: read through a decompressed temp copy.
    const gzipped = join(work, "saved.tar.gz");
    writeFileSync(gzipped, gzipSync(readFileSync(saved), { level: 1 }));
    const fromGzip = await summary(`docker-archive:${gzipped}:ocify/saved:1`);
    assert.ok(fromGzip.configBytes.equals(theirs.configBytes));
    // And back: what we read from docker save loads again under a new name.
    const again = join(work, "again.tar");
    const source = await openSource(parseTransportReference(`docker-archive:${saved}:ocify/saved:1`));
    await copyAll(source, await openDestination(parseTransportReference(`docker-archive:${again}:ocify/again:1`)));
    assert.match(await docker(["load", "-i", again]), /ocify\/again:1/);
  });

  it("selects among several images of one docker save by name or @index, and lists them when neither is given", async (t) => {
    if (!need(t)) return;
    for (const [tag, name] of [
      ["base", "ocify/one:a"],
      ["multi-gzip", "ocify/two:b"],
    ] as const) {
      const path = join(work, `several-${tag}.tar`);
      await writeArchive(tag, `docker-archive:${path}:${name}`);
      await docker(["load", "-i", path]);
    }
    const saved = join(work, "several.tar");
    await docker(["save", "-o", saved, "ocify/one:a", "ocify/two:b"]);
    const one = await summary(`docker-archive:${saved}:ocify/one:a`);
    const two = await summary(`docker-archive:${saved}:ocify/two:b`);
    assert.equal(one.layers.length, 1);
    assert.equal(two.layers.length, 3);
    const byIndex = [await summary(`docker-archive:${saved}:@0`), await summary(`docker-archive:${saved}:@1`)];
    assert.deepEqual(byIndex.map((s) => s.configDigest).sort(), [one.configDigest, two.configDigest].sort());
    await assert.rejects(openSource(parseTransportReference(`docker-archive:${saved}`)), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /holds 2 images; choose one/);
      assert.match(e.hint ?? "", /ocify\/one:a/);
      assert.match(e.hint ?? "", /ocify\/two:b/);
      return true;
    });
    await assert.rejects(openSource(parseTransportReference(`docker-archive:${saved}:ocify/three:c`)), /no image named ocify\/three:c/);
    await assert.rejects(openSource(parseTransportReference(`docker-archive:${saved}:@2`)), /no image @2/);
  });
});
