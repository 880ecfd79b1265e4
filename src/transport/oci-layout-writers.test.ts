/** Several writers in one OCI layout at once: the index.json lock, and aborts that leave other writers' images whole. */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { copyImage } from "../copy.js";
import { digestOf } from "../digest.js";
import type { Descriptor } from "../image/descriptor.js";
import { MediaType } from "../media-types.js";
import { writeBaseImageLayout } from "../test-support/base-image.js";
import { validateImage } from "../validate.js";
import { blobPath } from "./tar-archive.js";
import { openDestination, openSource, parseTransportReference } from "./transport.js";

const open = (ref: string) => openSource(parseTransportReference(ref));
const dest = (ref: string) => openDestination(parseTransportReference(ref));

function tagsIn(dir: string): string[] {
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as { manifests: { annotations?: Record<string, string> }[] };
  return index.manifests.map((m) => m.annotations?.["org.opencontainers.image.ref.name"] ?? "").sort();
}

describe("writers sharing one OCI layout", () => {
  let work: string;
  let base: string;
  let n = 0;
  before(() => {
    work = mkdtempSync(join(tmpdir(), "ocify-layout-writers-"));
    base = join(work, "base");
    writeBaseImageLayout(base, "latest", { seed: 31 });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("commits of many writers at once keep every tag", async () => {
    const dir = join(work, `many-${++n}`);
    const tags = Array.from({ length: 12 }, (_, i) => `t${i}`);
    await Promise.all(tags.map(async (tag) => copyImage(await open(`oci:${base}:latest`), await dest(`oci:${dir}:${tag}`))));
    assert.deepEqual(tagsIn(dir), [...tags].sort());
    assert.deepEqual(readdirSync(dir).sort(), ["blobs", "index.json", "oci-layout"]);
    await validateImage(await open(`oci:${dir}:t7`));
  });

  it("a writer that gives up keeps the blobs another writer is relying on", async () => {
    const dir = join(work, `abort-${++n}`);
    await copyImage(await open(`oci:${base}:latest`), await dest(`oci:${dir}:first`));
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
    const descriptor: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length };
    const quitter = await dest(`oci:${dir}:quitter`);
    const keeper = await dest(`oci:${dir}:keeper`);
    await quitter.putBlob(descriptor, Readable.from([config]));
    assert.ok(await keeper.hasBlob(descriptor), "the keeper finds the blob and will not send it");
    await quitter.abort();
    assert.ok(existsSync(join(dir, blobPath(descriptor.digest))), "kept while another writer is at work");
    await keeper.abort();

    // Alone, a writer that gives up removes what it added.
    const alone = await dest(`oci:${dir}:alone`);
    const other = Buffer.from('{"alone":true}');
    const otherDescriptor: Descriptor = { mediaType: MediaType.ociConfig, digest: digestOf(other), size: other.length };
    await alone.putBlob(otherDescriptor, Readable.from([other]));
    await alone.abort();
    assert.ok(!existsSync(join(dir, blobPath(otherDescriptor.digest))));
    assert.deepEqual(tagsIn(dir), ["first"]);
    assert.deepEqual(readdirSync(dir).sort(), ["blobs", "index.json", "oci-layout"]);
  });

  it("a layout two writers created at once survives the one that gives up", async () => {
    const dir = join(work, `created-${++n}`);
    const quitter = await dest(`oci:${dir}:quitter`);
    const keeper = await dest(`oci:${dir}:keeper`);
    await quitter.abort();
    assert.ok(existsSync(dir));
    await copyImage(await open(`oci:${base}:latest`), keeper);
    assert.deepEqual(tagsIn(dir), ["keeper"]);
    await validateImage(await open(`oci:${dir}:keeper`));
  });
});
