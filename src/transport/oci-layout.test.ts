import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { digestOf } from "../digest.js";
import { DigestMismatchError, InputError, InvalidImageError, OcifyError } from "../errors.js";
import type { IndexManifest } from "../image/manifest.js";
import { manifestDescriptor, rawManifest } from "../image/manifest.js";
import { MediaType } from "../media-types.js";
import { validateImage } from "../validate.js";
import { addIndexEntry, copyAll, writeFixtureLayout } from "./fixtures.test.js";
import { refNameAnnotation } from "./oci-layout.js";
import { openDestination, openSource, parseTransportReference } from "./transport.js";

let work: string;
let fixture: string;
let digests: ReturnType<typeof writeFixtureLayout>;
let n = 0;

before(() => {
  work = mkdtempSync(join(tmpdir(), "ocify-oci-layout-"));
  fixture = join(work, "fixture");
  digests = writeFixtureLayout(fixture);
});
after(() => rmSync(work, { recursive: true, force: true }));

async function copy(from: string, to: string): Promise<void> {
  await copyAll(await openSource(parseTransportReference(from)), await openDestination(parseTransportReference(to)));
}

function index(dir: string): IndexManifest {
  return JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as IndexManifest;
}

function tags(dir: string): (string | undefined)[] {
  return index(dir).manifests.map((d) => d.annotations?.[refNameAnnotation]);
}

/** Every file under a directory with its bytes, to prove nothing changed. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string, prefix: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${prefix}${e.name}/`);
      else files.set(`${prefix}${e.name}`, digestOf(readFileSync(join(d, e.name))));
    }
  };
  walk(dir, "");
  return files;
}

describe("oci: destination", () => {
  it("merges index.json: a new tag adds an entry, the same tag replaces only its own", async () => {
    const dir = join(work, `merge-${++n}`);
    await copy(`oci:${fixture}:base`, `oci:${dir}:one`);
    await copy(`oci:${fixture}:multi`, `oci:${dir}:two`);
    assert.deepEqual(tags(dir), ["one", "two"]);
    await copy(`oci:${fixture}:multi-gzip`, `oci:${dir}:one`);
    assert.deepEqual(tags(dir), ["two", "one"]);
    assert.equal(index(dir).manifests[1]?.digest, digests["multi-gzip"]);
    await copy(`oci:${fixture}:base`, `oci:${dir}`);
    await copy(`oci:${fixture}:base`, `oci:${dir}`);
    assert.deepEqual(tags(dir), ["two", "one", undefined], "an untagged entry is added once");
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "oci-layout"), "utf8")), { imageLayoutVersion: "1.0.0" });
    // Other writers' entries and fields survive a merge.
    const json = index(dir) as IndexManifest & { annotations?: Record<string, string> };
    json.annotations = { "org.example.kept": "yes" };
    writeFileSync(join(dir, "index.json"), JSON.stringify(json));
    await copy(`oci:${fixture}:base`, `oci:${dir}:three`);
    assert.equal((index(dir) as { annotations?: Record<string, string> }).annotations?.["org.example.kept"], "yes");
    assert.deepEqual(tags(dir), ["two", "one", undefined, "three"]);
  });

  it("stores an index as the tagged entry, with its children", async () => {
    const dir = join(work, `index-${++n}`);
    await copy(`oci:${fixture}:index`, `oci:${dir}:multi-arch`);
    const entry = index(dir).manifests[0]!;
    assert.equal(entry.mediaType, MediaType.ociIndex);
    assert.equal(entry.digest, digests.index);
    const summary = await validateImage(await openSource(parseTransportReference(`oci:${dir}:multi-arch`)));
    assert.equal(summary.kind, "index");
  });

  it("a failed copy into an existing layout changes nothing there", async () => {
    const dir = join(work, `fail-${++n}`);
    await copy(`oci:${fixture}:base`, `oci:${dir}:keep`);
    const before = snapshot(dir);
    const source = await openSource(parseTransportReference(`oci:${fixture}:multi`));
    const destination = await openDestination(parseTransportReference(`oci:${dir}:keep`));
    const top = await source.getManifest();
    const manifest = JSON.parse(top.bytes.toString()) as {
      config: never;
      layers: { digest: `sha256:${string}`; size: number; mediaType: string }[];
    };
    await destination.putBlob(manifest.config, await source.getBlob(manifest.config));
    const layer = manifest.layers[0]!;
    const corrupt = Readable.from([Buffer.alloc(layer.size, 1)]);
    await assert.rejects(destination.putBlob(layer, corrupt), DigestMismatchError);
    await destination.abort();
    assert.deepEqual(snapshot(dir), before, "existing layout untouched (no new blobs, same index.json)");
    assert.deepEqual(
      readdirSync(join(dir, "blobs", "sha256")).filter((f) => f.endsWith(".tmp")),
      [],
    );
  });

  it("abort() removes a layout it created; a non-layout directory or a file is refused up front", async () => {
    const dir = join(work, `new-${++n}`);
    const destination = await openDestination(parseTransportReference(`oci:${dir}:x`));
    const config = Buffer.from("{}");
    await destination.putBlob({ mediaType: MediaType.ociConfig, digest: digestOf(config), size: 2 }, Readable.from([config]));
    await destination.abort();
    assert.throws(() => readdirSync(dir), /ENOENT/);

    const other = join(work, `other-${++n}`);
    mkdirSync(other);
    writeFileSync(join(other, "notes.txt"), "mine");
    await assert.rejects(openDestination(parseTransportReference(`oci:${other}:x`)), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /not empty and not an OCI layout/);
      return true;
    });
    await assert.rejects(openDestination(parseTransportReference(`oci:${join(other, "notes.txt")}`)), /exists and is not a directory/);
    const broken = join(work, `broken-${++n}`);
    mkdirSync(broken);
    writeFileSync(join(broken, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(broken, "index.json"), "{ not json");
    await assert.rejects(openDestination(parseTransportReference(`oci:${broken}:x`)), InvalidImageError);
    assert.equal(readFileSync(join(broken, "index.json"), "utf8"), "{ not json", "an unreadable index.json is not overwritten");
  });

  it("skips blobs that are already there", async () => {
    const dir = join(work, `skip-${++n}`);
    await copy(`oci:${fixture}:multi`, `oci:${dir}:a`);
    const destination = await openDestination(parseTransportReference(`oci:${dir}:b`));
    const source = await openSource(parseTransportReference(`oci:${fixture}:multi`));
    const manifest = JSON.parse((await source.getManifest()).bytes.toString()) as { layers: never[] };
    for (const layer of manifest.layers) assert.equal(await destination.hasBlob(layer), true);
    await destination.abort();
    assert.deepEqual(tags(dir), ["a"]);
  });
});

describe("oci: source", () => {
  it("selects by tag, or the only entry; several and no tag is a one-line error listing the tags", async () => {
    const single = join(work, `single-${++n}`);
    await copy(`oci:${fixture}:base`, `oci:${single}:only`);
    const only = await openSource(parseTransportReference(`oci:${single}`));
    assert.equal((await only.getManifest()).digest, digests.base);
    await assert.rejects(openSource(parseTransportReference(`oci:${fixture}`)), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /holds \d+ images; choose one by tag/);
      assert.match(e.hint ?? "", /base, multi/);
      assert.doesNotMatch(e.userMessage, /\n/);
      return true;
    });
    await assert.rejects(openSource(parseTransportReference(`oci:${fixture}:nope`)), /tag "nope" not found/);
  });

  it("finds a tag on a child of a nested index, and reads children by digest", async () => {
    const dir = join(work, `nested-${++n}`);
    execFileSync("cp", ["-r", fixture, dir]);
    // index.json → an untagged index whose children carry the tags (as some tools write it).
    const inner = JSON.parse(readFileSync(join(dir, "blobs", "sha256", digests.index.slice(7)), "utf8")) as IndexManifest;
    inner.manifests[1]!.annotations = { [refNameAnnotation]: "arm-inside" };
    const bytes = Buffer.from(JSON.stringify(inner));
    const raw = rawManifest(bytes, MediaType.ociIndex);
    writeFileSync(join(dir, "blobs", "sha256", raw.digest.slice(7)), bytes);
    writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [manifestDescriptor(raw)] }));
    const source = await openSource(parseTransportReference(`oci:${dir}:arm-inside`));
    const top = await source.getManifest();
    assert.equal(top.digest, inner.manifests[1]!.digest);
    assert.equal(JSON.parse(readFileSync(join(dir, "blobs", "sha256", top.digest.slice(7)), "utf8")).mediaType, MediaType.ociManifest);
    const whole = await openSource(parseTransportReference(`oci:${dir}`));
    const summary = await validateImage(whole);
    assert.equal(summary.kind, "index");
  });

  it("bad layouts fail with one line and a hint: not a layout, missing blob, corrupt blob", async () => {
    await assert.rejects(openSource(parseTransportReference(`oci:${join(work, "absent")}`)), /does not exist/);
    const empty = join(work, `empty-${++n}`);
    mkdirSync(empty);
    await assert.rejects(openSource(parseTransportReference(`oci:${empty}`)), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /not an OCI image layout/);
      assert.ok(e.hint);
      return true;
    });
    const dir = join(work, `damaged-${++n}`);
    execFileSync("cp", ["-r", fixture, dir]);
    const source = await openSource(parseTransportReference(`oci:${dir}:multi`));
    const manifest = JSON.parse((await source.getManifest()).bytes.toString()) as { layers: { digest: string }[] };
    const [first, second] = manifest.layers;
    rmSync(join(dir, "blobs", "sha256", first!.digest.slice(7)));
    const blob = join(dir, "blobs", "sha256", second!.digest.slice(7));
    const bytes = readFileSync(blob);
    bytes[100] = (bytes[100] ?? 0) ^ 0xff;
    writeFileSync(blob, bytes);
    await assert.rejects(validateImage(source), (e: unknown) => {
      assert.ok(e instanceof OcifyError);
      assert.match(e.message, /is missing/);
      return true;
    });
    const layer = JSON.parse((await source.getManifest()).bytes.toString()).layers[1];
    await assert.rejects(async () => {
      for await (const _ of await source.getBlob(layer)) {
        // drain
      }
    }, DigestMismatchError);
    addIndexEntry(dir, { mediaType: MediaType.ociManifest, digest: digestOf("gone"), size: 4 }, "dangling");
    await assert.rejects((await openSource(parseTransportReference(`oci:${dir}:dangling`))).getManifest(), /blob sha256:\w+ is missing/);
  });
});
