/**
 * `ocify attach`: an SBOM attached to an image as an OCI 1.1 referrer, in Debian's docker-registry (no
 * referrers API: the tag scheme's index), in an OCI layout and in an OCI archive. Checked with skopeo
 * (it reads the referrers index and the artifact manifest) and by hashing the blobs it fetches.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { run, runOcify, runOk } from "../test-support/cli.js";
import { pushOciLayout, startRegistry, type TestRegistry } from "../test-support/registry.js";

const spdxType = "application/spdx+json";

function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** A manifest fetched with skopeo (an independent client): bytes exactly as the registry holds them. */
async function skopeoManifest(ref: string): Promise<{ bytes: string; json: Record<string, unknown> }> {
  const bytes = await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", ref]);
  return { bytes, json: JSON.parse(bytes) };
}

describe("ocify attach", () => {
  let registry: TestRegistry;
  let dir: string;
  let sbom: string;
  let sbom2: string;
  let layout: string;

  before(async () => {
    registry = await startRegistry();
    dir = mkdtempSync(join(tmpdir(), "ocify-attach-"));
    sbom = join(dir, "image.spdx.json");
    writeFileSync(sbom, JSON.stringify({ spdxVersion: "SPDX-2.2", name: "image", packages: [{ name: "busybox" }] }));
    sbom2 = join(dir, "busybox.spdx.json");
    writeFileSync(sbom2, JSON.stringify({ spdxVersion: "SPDX-2.2", name: "busybox" }));
    layout = join(dir, "layout");
    writeBaseImageLayout(layout, "1");
  });
  after(async () => {
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("pushes an artifact manifest with subject and lists it in the referrers tag index, keeping other referrers", async () => {
    const image = `${registry.host}/yocto/app:1`;
    await pushOciLayout(layout, "1", image);
    const subject = await skopeoManifest(`docker://${image}`);
    const first = await runOcify(["attach", "--subject", image, "--artifact-type", spdxType, sbom, sbom2]);
    assert.equal(first.code, 0, first.stderr);
    const [digest, , how] = first.stdout.trim().split(" ");
    assert.equal(how, "(referrers-tag)", "Debian's docker-registry has no referrers API");
    const artifact = await skopeoManifest(`docker://${registry.host}/yocto/app@${digest}`);
    assert.equal(sha256(artifact.bytes), digest);
    assert.equal(artifact.json.artifactType, spdxType);
    assert.deepEqual(artifact.json.config, {
      mediaType: "application/vnd.oci.empty.v1+json",
      digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
      size: 2,
      data: "e30=",
    });
    assert.deepEqual(artifact.json.subject, {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: sha256(subject.bytes),
      size: Buffer.byteLength(subject.bytes),
    });
    const layers = artifact.json.layers as { digest: string; size: number; mediaType: string; annotations: Record<string, string> }[];
    assert.deepEqual(
      layers.map((l) => [l.mediaType, l.annotations["org.opencontainers.image.title"], l.digest, l.size]),
      [sbom, sbom2].map((f) => [spdxType, f.split("/").pop(), sha256(readFileSync(f)), readFileSync(f).length]),
    );
    // The blob the registry serves is the file, byte for byte.
    const blobDir = join(dir, "blob");
    await runOk("skopeo", ["copy", "--src-tls-verify=false", `docker://${registry.host}/yocto/app@${digest}`, `dir:${blobDir}`]);
    assert.equal(sha256(readFileSync(join(blobDir, (layers[0] as { digest: string }).digest.slice(7)))), sha256(readFileSync(sbom)));

    // A second artifact of another type: the index now lists both.
    const report = join(dir, "report.txt");
    writeFileSync(report, "scan: clean\n");
    const second = await runOcify(["attach", "--subject", image, "--artifact-type", "text/vnd.example.report", report]);
    assert.equal(second.code, 0, second.stderr);
    const tag = `sha256-${sha256(subject.bytes).slice(7)}`;
    const index = await skopeoManifest(`docker://${registry.host}/yocto/app:${tag}`);
    assert.equal(index.json.mediaType, "application/vnd.oci.image.index.v1+json");
    const entries = index.json.manifests as { digest: string; artifactType: string }[];
    assert.deepEqual(
      entries.map((e) => [e.digest, e.artifactType]),
      [
        [digest, spdxType],
        [second.stdout.split(" ")[0], "text/vnd.example.report"],
      ],
    );
    // Attaching the same files again changes nothing: same digest, listed once.
    const again = await runOcify(["attach", "--subject", image, "--artifact-type", spdxType, sbom, sbom2]);
    assert.equal(again.stdout.split(" ")[0], digest);
    const after2 = await skopeoManifest(`docker://${registry.host}/yocto/app:${tag}`);
    assert.equal((after2.json.manifests as unknown[]).length, 2);
  });

  it("adds the referrer to an OCI archive, which skopeo still reads by tag", async () => {
    const archive = join(dir, "image.oci.tar");
    await runOk("skopeo", ["copy", `oci:${layout}:1`, `oci-archive:${archive}:1`]);
    const before = await skopeoManifest(`oci-archive:${archive}:1`);
    const result = await runOcify(["attach", "--subject", `oci-archive:${archive}:1`, "--artifact-type", spdxType, sbom]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\(index\.json\)/);
    const digest = result.stdout.split(" ")[0] as string;
    assert.equal((await skopeoManifest(`oci-archive:${archive}:1`)).bytes, before.bytes, "the tagged image is unchanged");
    const unpacked = join(dir, "unpacked");
    await runOk("mkdir", ["-p", unpacked]);
    await runOk("tar", ["-xf", archive, "-C", unpacked]);
    const index = JSON.parse(readFileSync(join(unpacked, "index.json"), "utf8"));
    const entry = index.manifests.find((m: { digest: string }) => m.digest === digest);
    assert.equal(entry.artifactType, spdxType);
    const manifest = JSON.parse(readFileSync(join(unpacked, "blobs/sha256", digest.slice(7)), "utf8"));
    assert.equal(manifest.subject.digest, sha256(before.bytes));
    assert.equal(sha256(readFileSync(join(unpacked, "blobs/sha256", manifest.layers[0].digest.slice(7)))), sha256(readFileSync(sbom)));
    // umoci validates every blob and manifest of the layout, the artifact's included.
    const check = await run("umoci", ["stat", "--image", `${unpacked}:1`]);
    assert.equal(check.code, 0, check.stderr);
  });

  it("adds referrers to an OCI layout directory as untagged index.json entries, the tagged image and the others kept", async () => {
    const dirLayout = join(dir, "dir-layout");
    await runOk("skopeo", ["copy", `oci:${layout}:1`, `oci:${dirLayout}:1`]);
    const before = await skopeoManifest(`oci:${dirLayout}:1`);
    const report = join(dir, "scan.txt");
    writeFileSync(report, "scan: clean\n");
    const digests: string[] = [];
    for (const [type, file] of [
      [spdxType, sbom],
      ["text/vnd.example.report", report],
      [spdxType, sbom],
    ] as const) {
      const result = await runOcify(["attach", "--subject", `oci:${dirLayout}:1`, "--artifact-type", type, file]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /\(index\.json\)\n$/);
      digests.push(result.stdout.split(" ")[0] as string);
    }
    assert.equal(digests[2], digests[0], "the same file attached again gives the same artifact");
    assert.equal((await skopeoManifest(`oci:${dirLayout}:1`)).bytes, before.bytes, "the tagged image is unchanged");
    const index = JSON.parse(readFileSync(join(dirLayout, "index.json"), "utf8")) as {
      manifests: { digest: string; artifactType?: string; annotations?: Record<string, string> }[];
    };
    assert.deepEqual(
      index.manifests.map((m) => [m.digest, m.artifactType, m.annotations?.["org.opencontainers.image.ref.name"]]),
      [
        [sha256(before.bytes), undefined, "1"],
        [digests[1], "text/vnd.example.report", undefined],
        [digests[0], spdxType, undefined],
      ],
      "each referrer listed once (the one attached again, last)",
    );
    const manifest = JSON.parse(readFileSync(join(dirLayout, "blobs/sha256", (digests[1] as string).slice(7)), "utf8"));
    assert.equal(manifest.subject.digest, sha256(before.bytes));
    assert.equal(readFileSync(join(dirLayout, "blobs/sha256", manifest.layers[0].digest.slice(7)), "utf8"), "scan: clean\n");
    const check = await run("umoci", ["stat", "--image", `${dirLayout}:1`]);
    assert.equal(check.code, 0, check.stderr);
  });

  it("refuses a docker-archive subject and a missing file with one line", async () => {
    const docker = await runOcify(["attach", "--subject", "docker-archive:x.tar", "--artifact-type", spdxType, sbom]);
    assert.equal(docker.code, 2);
    assert.match(docker.stderr, /^ocify: .*docker-archive cannot hold referrers.*\n$/);
    const missing = await runOcify(["attach", "--subject", `oci:${layout}:1`, "--artifact-type", spdxType, join(dir, "nope.json")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^ocify: .*nope\.json: does not exist.*\n$/);
  });
});
