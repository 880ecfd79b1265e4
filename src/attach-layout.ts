/**
 * Adding a referrer to an OCI image layout (a directory or an oci-archive tar): its blobs and manifest
 * beside the others, and an untagged index.json entry with its `artifactType`, the way the image-layout
 * spec lets a layout list manifests that refer to others. index.json is written last (a directory) or the
 * archive is written anew beside itself and renamed (a tar), so a failure leaves the layout as it was.
 */
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { addReferrer, bytesStream, emptyConfig, emptyConfigBytes, parseReferrersIndex, type Referrer } from "./attach.js";
import { createVerifier, type Digest, shortDigest } from "./digest.js";
import { InputError } from "./errors.js";
import { openAtomicFile, writeFileAtomic } from "./fs-atomic.js";
import type { Descriptor } from "./image/descriptor.js";
import { maxManifestBytes } from "./image/manifest.js";
import { DirectoryLayoutReader, ociLayoutBytes } from "./transport/oci-layout.js";
import { ArchiveLayoutWriter, blobPath, TarIndex } from "./transport/tar-archive.js";

async function addToDirectory(root: string, referrer: Referrer): Promise<void> {
  const reader = new DirectoryLayoutReader(root);
  const what = `oci:${root}: index.json`;
  const index = parseReferrersIndex(await reader.readFile("index.json", maxManifestBytes, what), what);
  if (!index) throw new InputError(`oci:${root} has no index.json`, { hint: "attach to an image layout written before" });
  const put = async (descriptor: Descriptor, open: () => Readable) => {
    const path = join(root, blobPath(descriptor.digest));
    if ((await reader.openFile(blobPath(descriptor.digest)))?.size === descriptor.size) return;
    const file = await openAtomicFile(path);
    try {
      await pipeline(open(), createVerifier(descriptor, `${root}: blob ${shortDigest(descriptor.digest)}`), file.stream);
      await file.commit();
    } catch (error) {
      await file.abort();
      throw error;
    }
  };
  await put(emptyConfig, () => bytesStream(emptyConfigBytes));
  for (const blob of referrer.blobs) await put(blob.descriptor, blob.open);
  await put(referrer.entry, () => bytesStream(referrer.manifest.bytes));
  await writeFileAtomic(join(root, "index.json"), addReferrer(index, referrer.entry).bytes);
}

async function addToArchive(path: string, referrer: Referrer): Promise<void> {
  const description = `oci-archive:${path}`;
  const tar = await TarIndex.open(path, description);
  try {
    const what = `${description}: index.json`;
    const indexEntry = tar.find("index.json");
    const index = parseReferrersIndex(indexEntry && (await tar.readBytes(indexEntry, maxManifestBytes, what)), what);
    if (!index) throw new InputError(`${description} has no index.json`, { hint: "attach to an OCI archive written before" });
    const writer = await ArchiveLayoutWriter.create(path);
    try {
      // The archive's blobs, verified on the way (their names are their digests), then the new ones.
      for (const entry of tar.entries.values()) {
        const match = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(entry.name);
        if (entry.type !== "file" || !match) continue;
        const descriptor = { digest: `sha256:${match[1]}` as Digest, size: entry.size };
        await writer.putBlob(descriptor, tar.stream(entry), `${description}: blob ${shortDigest(descriptor.digest)}`);
      }
      const blobs: [Descriptor, () => Readable][] = [
        [emptyConfig, () => bytesStream(emptyConfigBytes)],
        ...referrer.blobs.map((b): [Descriptor, () => Readable] => [b.descriptor, b.open]),
      ];
      for (const [descriptor, open] of blobs) {
        if (!writer.hasBlob(descriptor)) await writer.putBlob(descriptor, open(), `${description}: blob ${shortDigest(descriptor.digest)}`);
      }
      await writer.putBlobBytes(referrer.manifest.digest, referrer.manifest.bytes);
      await writer.tar.addBytes("oci-layout", ociLayoutBytes);
      await writer.tar.addBytes("index.json", addReferrer(index, referrer.entry).bytes);
      await writer.tar.commit();
    } catch (error) {
      await writer.tar.abort();
      throw error;
    }
  } finally {
    await tar.close();
  }
}

/** Add the referrer to `oci:DIR` or `oci-archive:FILE`. */
export async function addReferrerToLayout(ref: { transport: "oci" | "oci-archive"; path: string }, referrer: Referrer): Promise<void> {
  if (ref.transport === "oci") await addToDirectory(ref.path, referrer);
  else await addToArchive(ref.path, referrer);
}
