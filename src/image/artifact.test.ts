import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { copyImage } from "../copy.js";
import { type Digest, digestOf } from "../digest.js";
import { MediaType } from "../media-types.js";
import { openDestination, openSource } from "../transport/transport.js";
import { artifact, emptyDescriptor } from "./artifact.js";
import { readImage } from "./image.js";
import { bytesBlob } from "./layer.js";
import * as mutate from "./mutate.js";

let work: string;
before(() => {
  work = mkdtempSync(join(tmpdir(), "ocify-artifact-"));
});
after(() => rmSync(work, { recursive: true, force: true }));

const sbom = bytesBlob(Buffer.from('{"spdxVersion":"SPDX-2.3"}'), "application/spdx+json", "artifact");
const subject = { mediaType: MediaType.ociManifest, digest: `sha256:${"1".repeat(64)}` as Digest, size: 123 };

describe("artifact", () => {
  it("is a manifest with the artifact type, the empty descriptor as config and the blobs as layers", async () => {
    const image = artifact("application/spdx+json", [sbom]);
    const manifest = await image.manifest();
    assert.equal(manifest.artifactType, "application/spdx+json");
    assert.deepEqual(manifest.config, emptyDescriptor);
    assert.equal(digestOf(Buffer.from("{}")), emptyDescriptor.digest, "the empty descriptor names the bytes {}");
    assert.deepEqual(manifest.layers, [sbom.descriptor]);
    assert.equal((await image.configBlob()).descriptor.digest, emptyDescriptor.digest);
    assert.equal((await image.layers())[0]?.descriptor.digest, sbom.descriptor.digest);
    await assert.rejects(image.config(), /has no image config/);
  });

  it("takes a subject and annotations from mutate, leaving the artifact it was made from as it was", async () => {
    const bare = artifact("application/spdx+json", [sbom]);
    const attached = mutate.annotations(mutate.subject(bare, subject), { "org.example.k": "v" });
    const manifest = JSON.parse((await attached.rawManifest()).bytes.toString("utf8"));
    assert.deepEqual(manifest.subject, subject);
    assert.deepEqual(manifest.annotations, { "org.example.k": "v" });
    assert.equal(manifest.artifactType, "application/spdx+json");
    assert.equal((await bare.manifest()).subject, undefined);
    const again = mutate.annotations(mutate.subject(artifact("application/spdx+json", [sbom]), subject), { "org.example.k": "v" });
    assert.equal((await again.rawManifest()).digest, (await attached.rawManifest()).digest, "the same inputs give the same digest");
  });

  it("is written by copyImage like an image, and read back with the same digest and blobs", async () => {
    const attached = mutate.subject(artifact("application/spdx+json", [sbom]), subject);
    const layout = join(work, "layout");
    const written = await copyImage(attached, await openDestination({ transport: "oci", path: layout, tag: "sbom" }));
    assert.equal(written.digest, (await attached.rawManifest()).digest);
    const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
    assert.equal(index.manifests[0].artifactType, "application/spdx+json", "index.json says what the entry is");
    assert.equal(readFileSync(join(layout, "blobs/sha256", emptyDescriptor.digest.slice(7)), "utf8"), "{}");
    const source = await openSource({ transport: "oci", path: layout, tag: "sbom" });
    try {
      const read = await readImage(source);
      assert.equal(read.kind, "image");
      assert.equal((await read.rawManifest()).digest, written.digest);
      const blob = (await read.manifest()).layers[0];
      assert.ok(blob);
      const chunks: Buffer[] = [];
      for await (const chunk of await source.getBlob(blob)) chunks.push(chunk as Buffer);
      assert.equal(Buffer.concat(chunks).toString("utf8"), '{"spdxVersion":"SPDX-2.3"}');
    } finally {
      await source.close();
    }
  });
});
