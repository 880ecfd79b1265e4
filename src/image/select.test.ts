/**
 * Index shapes found in real registries, in a real registry: a nested index with buildx-style attestation
 * manifests, platforms with variant, os.version and os.features, and the withdrawn OCI artifact manifest.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runOcify, runOk } from "../test-support/cli.js";
import {
  attestation,
  entry,
  pushRawBlob,
  pushRawImage,
  pushRawManifest,
  type RawImage,
  rawImage,
  rawIndex,
} from "../test-support/raw-images.js";
import { type RegistryProxy, startRegistry, startRegistryProxy, type TestRegistry } from "../test-support/registry.js";

const skopeo = (args: string[]) => runOk("skopeo", [...args.slice(0, 1), "--tls-verify=false", ...args.slice(1)]);
const sha256 = (bytes: Uint8Array): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

const amdPlatform = { architecture: "amd64", os: "linux", "os.version": "6.1", "os.features": ["sse4"] };
const armPlatform = { architecture: "arm64", os: "linux", variant: "v8" };
const artifactType = "application/vnd.oci.artifact.manifest.v1+json";

describe("index shapes: nested indexes, attestations, platforms, artifacts", () => {
  let registry: TestRegistry;
  let host: string;
  let work: string;
  let proxy: RegistryProxy | undefined;
  let amd: RawImage;
  let arm: RawImage;
  let nestedDigest: string;
  const env = (): NodeJS.ProcessEnv => ({ OCIFY_CACHE_DIR: join(work, "cache"), SOURCE_DATE_EPOCH: "0" });
  const artifact = Buffer.from(
    JSON.stringify({
      mediaType: artifactType,
      artifactType: "application/example",
      blobs: [{ mediaType: "text/plain", digest: sha256(Buffer.from("x")), size: 1 }],
    }),
  );

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "ocify-select-test-"));
    registry = await startRegistry();
    host = registry.host;
    const repo = "sel/img";
    amd = rawImage({ architecture: "amd64" });
    arm = rawImage({ architecture: "arm64", variant: "v8" });
    const armAttestation = attestation(arm);
    for (const image of [amd, arm]) await pushRawImage(registry.url, repo, image);
    for (const blob of armAttestation.blobs) await pushRawBlob(registry.url, repo, blob);
    await pushRawManifest(registry.url, repo, armAttestation.manifest.digest, armAttestation.manifest);
    // As buildx writes it: images and their attestations (unknown/unknown) in one index…
    const inner = rawIndex([entry(amd, { platform: amdPlatform }), entry(arm, { platform: armPlatform }), armAttestation.entry]);
    await pushRawManifest(registry.url, repo, inner.digest, inner);
    // …listed in another one (imagetools create, registries that group tags).
    const nested = rawIndex([entry(inner)]);
    nestedDigest = nested.digest;
    await pushRawManifest(registry.url, repo, "nested", nested);
    await pushRawManifest(registry.url, repo, "flat", inner);
    // An attestation entry that claims a real platform, listed first: never the image to run.
    const claiming = { ...armAttestation.entry, platform: { architecture: "arm64", os: "linux" } };
    await pushRawManifest(registry.url, repo, "attestation-first", rawIndex([claiming, entry(arm, { platform: armPlatform })]));
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("selects a platform through a nested index: copy, inspect and build", async () => {
    const copied = await runOcify(["copy", "--platform", "linux/arm64", `${host}/sel/img:nested`, `${host}/sel/out:arm`], { env: env() });
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.stdout.split(" ")[0], arm.digest);
    const inspected = await runOcify(["inspect", "--json", "--platform", "linux/amd64", `${host}/sel/img:nested`], { env: env() });
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.equal(JSON.parse(inspected.stdout).imageDigest, amd.digest);
    const dir = join(work, "built-arm");
    const built = await runOcify(["build", "--from", `${host}/sel/img:nested`, "--platform", "linux/arm64", "-t", `oci:${dir}`], {
      env: env(),
    });
    assert.equal(built.code, 0, built.stderr);
    assert.equal(JSON.parse(await skopeo(["inspect", "--config", `oci:${dir}`])).architecture, "arm64");
    const missing = await runOcify(["copy", "-q", "--platform", "linux/s390x", `${host}/sel/img:nested`, `${host}/sel/out:s390x`], {
      env: env(),
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no image for linux\/s390x \(available: linux\/amd64, linux\/arm64\/v8;/);
  });

  it("copies a nested index whole with --all, keeping every digest", async () => {
    const toRegistry = await runOcify(["copy", "--all", `${host}/sel/img:nested`, `${host}/sel/all:1`], { env: env() });
    assert.equal(toRegistry.code, 0, toRegistry.stderr);
    assert.equal(toRegistry.stdout.split(" ")[0], nestedDigest);
    const layout = join(work, "all-layout");
    const toLayout = await runOcify(["copy", "--all", `${host}/sel/img:nested`, `oci:${layout}:1`], { env: env() });
    assert.equal(toLayout.code, 0, toLayout.stderr);
    assert.equal(toLayout.stdout.split(" ")[0], nestedDigest);
    // skopeo reads the arm64 image back out of the copied index.
    assert.equal(JSON.parse(await skopeo(["inspect", `docker://${host}/sel/all@${arm.digest}`])).Architecture, "arm64");
  });

  it("never chooses an attestation manifest, whatever platform its entry claims", async () => {
    const copied = await runOcify(["copy", "--platform", "linux/arm64", `${host}/sel/img:attestation-first`, `oci:${join(work, "att")}`], {
      env: env(),
    });
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.stdout.split(" ")[0], arm.digest);
  });

  it("keeps variant, os.version and os.features in the index of a multi-platform build", async () => {
    for (const tag of ["flat", "nested"]) {
      const built = await runOcify(
        ["build", "--from", `${host}/sel/img:${tag}`, "--platform", "linux/amd64,linux/arm64", "-t", `${host}/sel/built:${tag}`],
        { env: env() },
      );
      assert.equal(built.code, 0, built.stderr);
      const index = JSON.parse(await skopeo(["inspect", "--raw", `docker://${host}/sel/built:${tag}`]));
      assert.deepEqual(
        index.manifests.map((m: { platform: unknown }) => m.platform),
        [amdPlatform, armPlatform],
      );
    }
  });

  it("names the media type of a manifest that is not an image (the withdrawn OCI artifact manifest)", async () => {
    const layout = join(work, "artifact-layout");
    const blobs = join(layout, "blobs", "sha256");
    mkdirSync(blobs, { recursive: true });
    writeFileSync(join(blobs, sha256(artifact).slice(7)), artifact);
    const index = rawIndex([
      entry({ bytes: artifact, mediaType: artifactType, digest: sha256(artifact) }, { platform: { architecture: "amd64", os: "linux" } }),
    ]);
    writeFileSync(join(blobs, index.digest.slice(7)), index.bytes);
    writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    const top = (digest: string, mediaType: string, size: number, tag: string) => ({
      mediaType,
      digest,
      size,
      annotations: { "org.opencontainers.image.ref.name": tag },
    });
    writeFileSync(
      join(layout, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          top(sha256(artifact), artifactType, artifact.length, "artifact"),
          top(index.digest, index.mediaType, index.bytes.length, "index"),
        ],
      }),
    );
    proxy = await startRegistryProxy(host, {
      intercept(req, res) {
        if (req.method !== "GET" || !req.url?.endsWith("/manifests/artifact")) return false;
        res.writeHead(200, { "content-type": artifactType, "docker-content-digest": sha256(artifact) });
        res.end(artifact);
        return true;
      },
    });
    for (const from of [`oci:${layout}:artifact`, `oci:${layout}:index`, `${proxy.host}/sel/img:artifact`]) {
      const result = await runOcify(["copy", "-q", "--platform", "linux/amd64", from, `oci:${join(work, "artifact-out")}`], { env: env() });
      assert.equal(result.code, 1, from);
      assert.match(result.stderr, /has media type application\/vnd\.oci\.artifact\.manifest\.v1\+json, not an image manifest/, from);
      assert.doesNotMatch(result.stderr, /schema 1/, from);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    }
  });
});
