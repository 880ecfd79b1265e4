/**
 * The `oci-archive:FILE[:tag]` transport: a tar of an OCI image layout. Read through an index of the tar's
 * entries (no extraction); written by streaming blobs into a temp tar, `oci-layout` and `index.json` last.
 * Written to, an archive is replaced, as skopeo replaces it; opened to `keep` what it holds (to add a
 * referrer to it), its blobs and index.json entries go into the new archive too.
 */
import type { Readable } from "node:stream";
import { type Digest, shortDigest } from "../digest.js";
import { InputError, InvalidImageError } from "../errors.js";
import type { Descriptor } from "../image/descriptor.js";
import { type IndexManifest, maxManifestBytes, parseImageIndex, type RawManifest, rawManifest } from "../image/manifest.js";
import { MediaType } from "../media-types.js";
import { indexEntry, type LayoutReader, mergeIndex, OciLayoutSource, ociLayoutBytes, topDescriptor } from "./oci-layout.js";
import { ArchiveLayoutWriter, TarIndex } from "./tar-archive.js";
import type { ImageDestination, ImageSource, TransportOptions } from "./types.js";

/** A LayoutReader over the entries of a tar file. */
export class TarLayoutReader implements LayoutReader {
  constructor(readonly tar: TarIndex) {}

  async readFile(path: string, cap: number, what: string): Promise<Buffer | undefined> {
    const entry = this.tar.find(path);
    return entry ? this.tar.readBytes(entry, cap, what) : undefined;
  }

  async openFile(path: string): Promise<{ size: number; stream: () => Readable } | undefined> {
    const entry = this.tar.find(path);
    return entry ? { size: entry.size, stream: () => this.tar.stream(entry) } : undefined;
  }

  async close(): Promise<void> {
    await this.tar.close();
  }
}

function describe(ref: { path: string; tag?: string }): string {
  return `oci-archive:${ref.path}${ref.tag ? `:${ref.tag}` : ""}`;
}

/** Open `oci-archive:FILE[:tag]` for reading. */
export async function openOciArchiveSource(
  ref: { transport: "oci-archive"; path: string; tag?: string },
  _options: TransportOptions = {},
): Promise<ImageSource> {
  const description = describe(ref);
  const tar = await TarIndex.open(ref.path, description);
  try {
    if (!tar.find("oci-layout") && tar.find("manifest.json")) {
      throw new InputError(`${description}: ${ref.path} is not an OCI archive (no oci-layout file)`, {
        hint: "it is a docker save archive; read it with docker-archive:",
      });
    }
    return await new OciLayoutSource(description, new TarLayoutReader(tar), ref.tag).init();
  } catch (error) {
    await tar.close();
    throw error;
  }
}

/** What an archive being added to holds: its tar (read while the new one is written) and its index.json. */
interface KeptArchive {
  tar: TarIndex;
  index: IndexManifest;
}

async function openKept(path: string, description: string): Promise<KeptArchive> {
  const tar = await TarIndex.open(path, description);
  try {
    const what = `${description}: index.json`;
    const entry = tar.find("index.json");
    const bytes = entry && (await tar.readBytes(entry, maxManifestBytes, what));
    if (!tar.find("oci-layout") || bytes === undefined) {
      throw new InputError(`${description} is not an OCI archive (no oci-layout or index.json)`, {
        hint: "give an OCI archive written by ocify, skopeo or buildah",
      });
    }
    return { tar, index: parseImageIndex(rawManifest(bytes, MediaType.ociIndex), what) };
  } catch (error) {
    await tar.close();
    throw error;
  }
}

class OciArchiveDestination implements ImageDestination {
  readonly acceptsIndex = true;
  readonly preferredManifestFormat = "oci" as const;
  #top: Descriptor | undefined;

  constructor(
    readonly description: string,
    readonly writer: ArchiveLayoutWriter,
    readonly tag: string | undefined,
    readonly kept?: KeptArchive,
  ) {}

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    return this.writer.hasBlob(descriptor);
  }

  async expectBlobs(descriptors: readonly Descriptor[]): Promise<void> {
    await this.writer.expectBlobs(descriptors);
  }

  async putBlob(descriptor: Descriptor, content: Readable): Promise<void> {
    await this.writer.putBlob(descriptor, content, `${this.description}: blob ${shortDigest(descriptor.digest)}`);
  }

  async putManifest(manifest: RawManifest, options: { top: boolean }): Promise<void> {
    await this.writer.putBlobBytes(manifest.digest, manifest.bytes);
    if (options.top) this.#top = topDescriptor(manifest);
  }

  /** The kept archive's blobs that were not written again, verified on the way (their names are their digests). */
  async #copyKept(kept: KeptArchive): Promise<void> {
    for (const entry of kept.tar.entries.values()) {
      const match = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(entry.name);
      if (entry.type !== "file" || !match) continue;
      const descriptor = { digest: `sha256:${match[1]}` as Digest, size: entry.size };
      if (this.writer.hasBlob(descriptor)) continue;
      await this.writer.putBlob(descriptor, kept.tar.stream(entry), `${this.description}: blob ${shortDigest(descriptor.digest)}`);
    }
  }

  async commit(): Promise<void> {
    if (!this.#top) throw new InvalidImageError(`${this.description}: no manifest was written`);
    if (this.kept) await this.#copyKept(this.kept);
    await this.writer.tar.addBytes("oci-layout", ociLayoutBytes);
    await this.writer.tar.addBytes("index.json", mergeIndex(this.kept?.index, indexEntry(this.#top, this.tag)));
    await this.writer.tar.commit();
    await this.kept?.tar.close();
  }

  async abort(): Promise<void> {
    await this.writer.tar.abort();
    await this.kept?.tar.close();
  }
}

/**
 * Open `oci-archive:FILE[:tag]` for writing; the file appears only on commit(). With `keep`, FILE must be
 * an OCI archive, and what it holds is kept beside what is written (an untagged top manifest is added to
 * its index.json; a tagged one replaces the entry with that tag).
 */
export async function openOciArchiveDestination(
  ref: { transport: "oci-archive"; path: string; tag?: string },
  options: TransportOptions = {},
  { keep = false }: { keep?: boolean } = {},
): Promise<ImageDestination> {
  const description = describe(ref);
  const kept = keep ? await openKept(ref.path, description) : undefined;
  try {
    return new OciArchiveDestination(description, await ArchiveLayoutWriter.create(ref.path, options.signal), ref.tag, kept);
  } catch (error) {
    await kept?.tar.close();
    throw error;
  }
}
