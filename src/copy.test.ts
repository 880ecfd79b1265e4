import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { copyImage } from "./copy.js";
import { digestOf } from "./digest.js";
import { type Image, readImage } from "./image/image.js";
import type { Layer } from "./image/layer.js";
import * as mutate from "./image/mutate.js";
import { MediaType } from "./media-types.js";
import { writeFixtureLayout } from "./transport/fixtures.test.js";
import { openDestination, openSource, parseTransportReference } from "./transport/transport.js";
import type { ImageDestination } from "./transport/types.js";
import { validateImage } from "./validate.js";

let work: string;
let layout: string;

before(() => {
  work = mkdtempSync(join(tmpdir(), "ocify-copy-"));
  layout = join(work, "layout");
  writeFixtureLayout(layout);
});
after(() => rmSync(work, { recursive: true, force: true }));

async function base(): Promise<Image> {
  return (await readImage(await openSource(parseTransportReference(`oci:${layout}:multi-gzip`)))) as Image;
}

async function destination(ref: string): Promise<ImageDestination> {
  return openDestination(parseTransportReference(ref));
}

describe("copyImage", () => {
  it("writes one image to several destinations, each committed only once all have it", async () => {
    const results = await copyImage(await base(), [
      await destination(`oci:${join(work, "a")}:t`),
      await destination(`docker-archive:${join(work, "b.tar")}:x/y:1`),
      await destination(`oci-archive:${join(work, "c.tar")}:t`),
    ]);
    assert.equal(results.length, 3);
    assert.equal(results[0]?.digest, results[2]?.digest);
    for (const ref of [`oci:${join(work, "a")}:t`, `docker-archive:${join(work, "b.tar")}`, `oci-archive:${join(work, "c.tar")}:t`]) {
      const summary = await validateImage(await openSource(parseTransportReference(ref)));
      assert.equal(summary.kind === "image" && summary.layers.length, 3, ref);
    }
  });

  it("leaves no destination behind when one blob cannot be read", async () => {
    const broken: Layer = {
      descriptor: { mediaType: MediaType.ociLayerGzip, digest: digestOf("never"), size: 5 },
      kind: "layer",
      open: async () => Readable.from([Buffer.from("wrong")]),
      diffID: async () => digestOf("tar"),
    };
    const image = mutate.append(await base(), [broken]);
    const dir = join(work, "fail-layout");
    const archive = join(work, "fail.tar");
    await assert.rejects(copyImage(image, [await destination(`oci:${dir}:t`), await destination(`oci-archive:${archive}`)]), /digest/);
    assert.equal(existsSync(dir), false, "the new layout is removed");
    assert.deepEqual(
      readdirSync(work).filter((n) => n.startsWith("fail") || n.startsWith(".fail")),
      [],
      "no archive or temp file left",
    );
  });

  it("waits for an upload already under way instead of sending the blob again", async () => {
    const target = await destination(`oci:${join(work, "pending")}:t`);
    const image = await base();
    const [first] = await image.layers();
    assert.ok(first);
    const opened: string[] = [];
    // The "upload" puts the blob there itself, as a registry upload streamed during a build would; it
    // starts when the copy asks for it, so a copy that does not wait for it opens the blob first.
    const upload = async (): Promise<void> => target.putBlob(first.descriptor, await first.open());
    let started: Promise<void> | undefined;
    const pending = {
      destination: target,
      get done() {
        started ??= upload();
        return started;
      },
    };
    const streamed: Layer = {
      ...first,
      open: async () => {
        opened.push("streamed");
        return first.open();
      },
      pending,
    };
    const derived = mutate.append(
      mutate.config(image, (c) => c),
      [streamed],
    );
    await copyImage(derived, target);
    assert.deepEqual(opened, [], "the blob was not sent by the copy");
  });

  it("refuses an index for a destination that holds one image, before writing anything", async () => {
    const source = await openSource(parseTransportReference(`oci:${layout}:index`));
    const path = join(work, "index.tar");
    await assert.rejects(copyImage(source, await destination(`docker-archive:${path}`), { all: true }), /one image, not an index/);
    assert.equal(existsSync(path), false);
  });
});
