/**
 * One conformance suite for every transport pair: a generated image is copied into transport A, from A to
 * transport B, read back from B and validated (every digest, size and diffID recomputed), then compared with
 * the original. Real clients judge the results: skopeo reads what we write and we read what skopeo writes;
 * umoci unpacks our layouts.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { Digest } from "../digest.js";
import { OcifyError } from "../errors.js";
import { MediaType } from "../media-types.js";
import { busyboxPath } from "../test-support/base-image.js";
import { startRegistry } from "../test-support/registry.js";
import { type ImageSummary, type ValidationSummary, validateImage } from "../validate.js";
import { copyAll, writeFixtureLayout } from "./fixtures.test.js";
import { openDestination, openSource, parseTransportReference, type TransportOptions } from "./transport.js";

const exec = promisify(execFile);

type Kind = "oci" | "oci-archive" | "docker-archive" | "docker";
const fileKinds: Kind[] = ["oci", "oci-archive", "docker-archive"];

let work: string;
let fixture: string;
let digests: { base: Digest; multi: Digest; "multi-gzip": Digest; index: Digest };
const expected = new Map<string, ValidationSummary>();
let counter = 0;

let registry: { host: string; stop(): Promise<void> } | undefined;
let registryOptions: TransportOptions = {};

async function startTestRegistry(): Promise<void> {
  const started = await startRegistry();
  registry = started;
  registryOptions = { insecureRegistries: [started.host] };
}

function options(kind: Kind): TransportOptions {
  return kind === "docker" ? registryOptions : {};
}

/** A fresh reference of a transport to write an image tagged `tag` to. */
function newTarget(kind: Kind, tag: string): string {
  const n = ++counter;
  switch (kind) {
    case "oci":
      return `oci:${join(work, `layout-${n}`)}:${tag}`;
    case "oci-archive":
      return `oci-archive:${join(work, `oci-${n}.tar`)}:${tag}`;
    case "docker-archive":
      return `docker-archive:${join(work, `docker-${n}.tar`)}:example.com/ocify/conformance:${tag}`;
    case "docker":
      return `docker://${registry?.host}/ocify/conformance-${n}:${tag}`;
  }
}

async function copyRef(from: string, to: string, fromKind: Kind, toKind: Kind): Promise<Digest> {
  const source = await openSource(parseTransportReference(from), options(fromKind));
  const destination = await openDestination(parseTransportReference(to), options(toKind));
  return copyAll(source, destination);
}

async function validateRef(ref: string, kind: Kind): Promise<ValidationSummary> {
  const source = await openSource(parseTransportReference(ref), options(kind));
  try {
    return await validateImage(source);
  } finally {
    await source.close();
  }
}

function images(summary: ValidationSummary): ImageSummary[] {
  return summary.kind === "index" ? summary.images : [summary];
}

/** Same config bytes and diffIDs (the content), whatever a client did to manifests and compression. */
function assertSameContent(actual: ValidationSummary, wanted: ValidationSummary): void {
  const a = images(actual);
  const w = images(wanted);
  assert.equal(a.length, w.length);
  a.forEach((image, i) => {
    assert.ok(image.configBytes.equals(w[i]!.configBytes), "config bytes identical");
    assert.deepEqual(
      image.layers.map((l) => l.diffID),
      w[i]!.layers.map((l) => l.diffID),
      "diffIDs identical",
    );
  });
}

// skopeo compresses uncompressed layers for OCI destinations unless told not to; keep everything as it is.
const skopeoKeep = ["--preserve-digests", "--dest-oci-accept-uncompressed-layers"];

/** Same config bytes, layer digests, sizes and diffIDs; the same manifest digest when `sameManifest`. */
function assertSameImage(actual: ValidationSummary, wanted: ValidationSummary, sameManifest: boolean): void {
  assert.equal(actual.kind, wanted.kind);
  if (sameManifest) assert.equal(actual.manifestDigest, wanted.manifestDigest, "manifest digest kept");
  const a = images(actual);
  const w = images(wanted);
  assert.equal(a.length, w.length);
  a.forEach((image, i) => {
    const want = w[i]!;
    assert.ok(image.configBytes.equals(want.configBytes), "config bytes identical");
    assert.equal(image.configDigest, want.configDigest);
    assert.deepEqual(
      image.layers.map((l) => [l.digest, l.size, l.diffID]),
      want.layers.map((l) => [l.digest, l.size, l.diffID]),
      "layer digests, sizes and diffIDs identical",
    );
    if (sameManifest) assert.equal(image.manifestDigest, want.manifestDigest);
  });
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "ocify-conformance-"));
  fixture = join(work, "fixture");
  digests = writeFixtureLayout(fixture);
  for (const tag of ["base", "multi", "multi-gzip", "index"]) expected.set(tag, await validateRef(`oci:${fixture}:${tag}`, "oci"));
  await startTestRegistry();
});

after(async () => {
  await registry?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("the fixture itself", () => {
  it("validates: digests, sizes and diffIDs of the generated images are right", () => {
    const multi = expected.get("multi") as ImageSummary;
    assert.equal(multi.kind, "image");
    assert.equal(multi.manifestDigest, digests.multi);
    assert.deepEqual(
      multi.layers.map((l) => l.mediaType),
      [MediaType.ociLayerGzip, MediaType.ociLayerZstd, MediaType.ociLayer, MediaType.ociLayerGzip],
    );
    const index = expected.get("index")!;
    assert.equal(index.kind, "index");
    assert.equal(index.manifestDigest, digests.index);
    assert.equal(images(index).length, 2);
  });
});

const kinds = (): Kind[] => [...fileKinds, "docker"];

for (const tag of ["base", "multi"] as const) {
  describe(`transport pairs, ${tag} image`, () => {
    for (const a of kinds()) {
      for (const b of kinds()) {
        it(`${a} → ${b}`, async () => {
          const refA = newTarget(a, tag);
          await copyRef(`oci:${fixture}:${tag}`, refA, "oci", a);
          const fromA = await validateRef(refA, a);
          assertSameImage(fromA, expected.get(tag)!, a !== "docker-archive");
          const refB = newTarget(b, `${tag}-copy`);
          const written = await copyRef(refA, refB, a, b);
          const fromB = await validateRef(refB, b);
          assertSameImage(fromB, expected.get(tag)!, a !== "docker-archive" && b !== "docker-archive");
          if (b !== "docker-archive") assert.equal(fromB.manifestDigest, written, "the destination holds the manifest it was given");
          else assert.equal(fromB.mediaType, MediaType.dockerManifest, "docker-archive re-synthesizes a Docker manifest");
        });
      }
    }
  });
}

describe("transport pairs, multi-platform index", () => {
  const indexKinds: Kind[] = ["oci", "oci-archive", "docker"];
  for (const a of indexKinds) {
    for (const b of indexKinds) {
      it(`${a} → ${b}`, async () => {
        const refA = newTarget(a, "index");
        await copyRef(`oci:${fixture}:index`, refA, "oci", a);
        const refB = newTarget(b, "index-copy");
        await copyRef(refA, refB, a, b);
        assertSameImage(await validateRef(refB, b), expected.get("index")!, true);
      });
    }
  }

  it("docker-archive refuses an index with a one-line error and leaves no file", async () => {
    const path = join(work, "refused.tar");
    await assert.rejects(copyRef(`oci:${fixture}:index`, `docker-archive:${path}:x:y`, "oci", "docker-archive"), (e: unknown) => {
      assert.ok(e instanceof OcifyError);
      assert.match(e.message, /one image, not an index/);
      return true;
    });
    assert.deepEqual(
      readdirSync(work).filter((n) => n.includes("refused")),
      [],
    );
  });
});

describe("skopeo reads what we write", () => {
  for (const kind of fileKinds) {
    for (const tag of ["base", "multi"] as const) {
      it(`skopeo copy ${kind}: (${tag}) → oci:`, async () => {
        const ours = newTarget(kind, tag);
        await copyRef(`oci:${fixture}:${tag}`, ours, "oci", kind);
        const out = join(work, `skopeo-read-${++counter}`);
        if (kind === "docker-archive") {
          // skopeo's docker-archive reference takes no registry-qualified name; the file alone selects the only image.
          // It decompresses docker-archive layers as it reads them, so only the content can be compared.
          await exec("skopeo", ["copy", "-q", ours.slice(0, ours.indexOf(":example.com")), `oci:${out}:t`]);
          assertSameContent(await validateRef(`oci:${out}:t`, "oci"), expected.get(tag)!);
        } else {
          await exec("skopeo", ["copy", "-q", ...skopeoKeep, ours, `oci:${out}:t`]);
          assertSameImage(await validateRef(`oci:${out}:t`, "oci"), expected.get(tag)!, true);
        }
      });
    }
  }

  it("skopeo reads our docker-archive by the name in its RepoTags", async () => {
    const path = join(work, `named-${++counter}.tar`);
    await copyRef(`oci:${fixture}:base`, `docker-archive:${path}:busybox:named`, "oci", "docker-archive");
    const out = join(work, `skopeo-named-${++counter}`);
    await exec("skopeo", ["copy", "-q", `docker-archive:${path}:busybox:named`, `oci:${out}:t`]);
    assertSameContent(await validateRef(`oci:${out}:t`, "oci"), expected.get("base")!);
  });

  it("skopeo copies our multi-platform oci-archive with --all, keeping the index digest", async () => {
    const ours = newTarget("oci-archive", "index");
    await copyRef(`oci:${fixture}:index`, ours, "oci", "oci-archive");
    const out = join(work, `skopeo-index-${++counter}`);
    await exec("skopeo", ["copy", "-q", "--all", ...skopeoKeep, ours, `oci:${out}:t`]);
    assertSameImage(await validateRef(`oci:${out}:t`, "oci"), expected.get("index")!, true);
  });
});

describe("we read what skopeo writes", () => {
  for (const kind of ["oci", "oci-archive"] as const) {
    for (const tag of ["base", "multi", "index"] as const) {
      it(`skopeo copy oci: (${tag}) → ${kind}: reads back identical`, async () => {
        const ref = `${kind}:${join(work, `sk-${++counter}${kind === "oci" ? "" : ".tar"}`)}:t`;
        await exec("skopeo", ["copy", "-q", ...skopeoKeep, ...(tag === "index" ? ["--all"] : []), `oci:${fixture}:${tag}`, ref]);
        assertSameImage(await validateRef(ref, kind), expected.get(tag)!, true);
      });
    }
  }
  // skopeo cannot put zstd layers into a Docker image, hence multi-gzip.
  for (const tag of ["base", "multi-gzip"] as const) {
    it(`skopeo copy oci: (${tag}) → docker-archive: reads back with the same content`, async () => {
      const path = join(work, `skd-${++counter}.tar`);
      await exec("skopeo", ["copy", "-q", `oci:${fixture}:${tag}`, `docker-archive:${path}:example.com/skopeo/written:t`]);
      const summary = (await validateRef(`docker-archive:${path}:example.com/skopeo/written:t`, "docker-archive")) as ImageSummary;
      assertSameContent(summary, expected.get(tag)!);
      // skopeo stores docker-archive layers uncompressed: the file digest is the diffID.
      assert.deepEqual(
        summary.layers.map((l) => [l.digest, l.mediaType]),
        summary.layers.map((l) => [l.diffID, MediaType.dockerLayer]),
      );
      assertSameContent(await validateRef(`docker-archive:${path}`, "docker-archive"), expected.get(tag)!);
      assertSameContent(await validateRef(`docker-archive:${path}:@0`, "docker-archive"), expected.get(tag)!);
    });
  }
});

// umoci 0.4.7 (Debian 12) rejects zstd layers, hence multi-gzip.
describe("umoci unpacks our OCI layouts", () => {
  for (const tag of ["base", "multi-gzip"] as const) {
    it(`umoci unpack --rootless (${tag})`, async () => {
      const ref = newTarget("oci", tag);
      await copyRef(`oci:${fixture}:${tag}`, ref, "oci", "oci");
      const layout = ref.slice("oci:".length, ref.lastIndexOf(":"));
      const bundle = join(work, `bundle-${++counter}`);
      await exec("umoci", ["unpack", "--rootless", "--image", `${layout}:${tag}`, bundle]);
      const rootfs = join(bundle, "rootfs");
      if (tag === "base") {
        assert.match(readFileSync(join(rootfs, "etc/os-release"), "utf8"), /ocify-test-base/);
        if (existsSync(busyboxPath)) assert.ok(readFileSync(join(rootfs, "bin/busybox")).equals(readFileSync(busyboxPath)));
      } else {
        assert.equal(readFileSync(join(rootfs, "opt/app/plain.txt"), "utf8"), "plain 1\n");
        assert.equal(existsSync(join(rootfs, "opt/app/old.txt")), false, "whiteout applied");
        assert.equal(readFileSync(join(rootfs, "opt/app/big.bin")).length, 3 << 20);
      }
    });
  }
});
