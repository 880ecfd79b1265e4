import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
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

/**
 * `real`, with its putBlob held for `held` until every other blob of `total` is written: the copy must have
 * them all in flight at once (a sequential copy never gets past the held one), and they arrive out of order.
 */
function holdingFirst(real: ImageDestination, held: string, total: number): ImageDestination {
  let others = 0;
  let release: () => void = () => {};
  const othersDone = new Promise<void>((resolve) => {
    release = resolve;
  });
  const putBlob: ImageDestination["putBlob"] = async (descriptor, content, options) => {
    if (descriptor.digest === held) {
      await othersDone;
      return real.putBlob(descriptor, content, options);
    }
    await real.putBlob(descriptor, content, options);
    if (++others === total - 1) release();
  };
  return new Proxy(real, {
    get(target, key) {
      if (key === "putBlob") return putBlob;
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("copyImage into an archive", () => {
  for (const transport of ["docker-archive", "oci-archive"]) {
    it(`writes the blobs of a ${transport} destination concurrently, each where it would be had they come one by one`, {
      timeout: 120_000,
    }, async () => {
      const image = await base();
      const layers = await image.layers();
      const blobs = new Set([...layers.map((l) => l.descriptor.digest), (await image.configBlob()).descriptor.digest]);
      assert.ok(blobs.size >= 3, "the fixture has several blobs");
      const first = layers[0]?.descriptor.digest as string;
      const inOrder = join(work, `${transport}-in-order.tar`);
      const outOfOrder = join(work, `${transport}-out-of-order.tar`);
      await copyImage(image, await destination(`${transport}:${inOrder}`), { jobs: 1 });
      await copyImage(image, holdingFirst(await destination(`${transport}:${outOfOrder}`), first, blobs.size), { jobs: blobs.size });
      assert.ok(readFileSync(outOfOrder).equals(readFileSync(inOrder)), "the same bytes whatever order the blobs came in");
      const summary = await validateImage(await openSource(parseTransportReference(`${transport}:${outOfOrder}`)));
      assert.equal(summary.kind === "image" && summary.layers.length, layers.length);
    });
  }
});
