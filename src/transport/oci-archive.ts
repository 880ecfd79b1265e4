/**
 * The `oci-archive:FILE[:tag]` transport: a tar of an OCI image layout. Read through an index of the tar's
 * entries (no extraction); written by streaming blobs into a temp tar, `oci-layout` and `index.json` last.
 */
import type { Readable } from "node:stream";
import { shortDigest } from "../digest.js";
import { InputError, InvalidImageError } from "../errors.js";
import type { Descriptor } from "../image/descriptor.js";
import { manifestDescriptor, type RawManifest } from "../image/manifest.js";
import { indexEntry, type LayoutReader, mergeIndex, OciLayoutSource, ociLayoutBytes } from "./oci-layout.js";
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

class OciArchiveDestination implements ImageDestination {
  readonly acceptsIndex = true;
  readonly preferredManifestFormat = "oci" as const;
  #top: Descriptor | undefined;

  constructor(
    readonly description: string,
    readonly writer: ArchiveLayoutWriter,
    readonly tag: string | undefined,
  ) {}

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    return this.writer.hasBlob(descriptor);
  }

  async putBlob(descriptor: Descriptor, content: Readable): Promise<void> {
    await this.writer.putBlob(descriptor, content, `${this.description}: blob ${shortDigest(descriptor.digest)}`);
  }

  async putManifest(manifest: RawManifest, options: { top: boolean }): Promise<void> {
    await this.writer.putBlobBytes(manifest.digest, manifest.bytes);
    if (options.top) this.#top = manifestDescriptor(manifest);
  }

  async commit(): Promise<void> {
    if (!this.#top) throw new InvalidImageError(`${this.description}: no manifest was written`);
    await this.writer.tar.addBytes("oci-layout", ociLayoutBytes);
    await this.writer.tar.addBytes("index.json", mergeIndex(undefined, indexEntry(this.#top, this.tag)));
    await this.writer.tar.commit();
  }

  async abort(): Promise<void> {
    await this.writer.tar.abort();
  }
}

/** Open `oci-archive:FILE[:tag]` for writing; the file appears only on commit(). */
export async function openOciArchiveDestination(
  ref: { transport: "oci-archive"; path: string; tag?: string },
  options: TransportOptions = {},
): Promise<ImageDestination> {
  return new OciArchiveDestination(describe(ref), await ArchiveLayoutWriter.create(ref.path, options.signal), ref.tag);
}
