/**
 * The `oci:DIR[:tag]` transport: an OCI image layout directory (image-spec image-layout.md). Reading selects
 * an index.json entry by its `org.opencontainers.image.ref.name`; writing adds blobs (temp file + rename)
 * and merges index.json last, so an existing layout is never left half-written.
 */

import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, readdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createVerifier, type Digest, shortDigest, verifyBytes } from "../digest.js";
import { fromSystemError, InputError, InvalidImageError, withSystemPath } from "../errors.js";
import { isWriterScratch, openAtomicFile, ownerTag, removeStaleOwned, removeStaleTemps, writeFileAtomic } from "../fs-atomic.js";
import { withFileLock } from "../fs-lock.js";
import type { Descriptor } from "../image/descriptor.js";
import {
  encodeJson,
  type IndexManifest,
  manifestDescriptor,
  maxManifestBytes,
  parseImageIndex,
  type RawManifest,
  rawManifest,
} from "../image/manifest.js";
import { isIndexMediaType, MediaType } from "../media-types.js";
import { blobPath, verifiedStream } from "./tar-archive.js";
import type { ImageDestination, ImageSource, TransportOptions } from "./types.js";

/** The annotation holding an index.json entry's tag (image-spec annotations.md). */
export const refNameAnnotation = "org.opencontainers.image.ref.name";

/** The `oci-layout` file's content (image-spec image-layout.md). */
export const ociLayoutBytes = Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" }));

/** Read access to the files of an OCI layout, wherever it lives (a directory or a tar). */
export interface LayoutReader {
  /** A small file's bytes (at most `cap`), or undefined when it does not exist. */
  readFile(path: string, cap: number, what: string): Promise<Buffer | undefined>;
  /** A file's size and a stream of it, or undefined when it does not exist. */
  openFile(path: string): Promise<{ size: number; stream: () => Readable } | undefined>;
  close(): Promise<void>;
}

function tooLarge(what: string, size: number, cap: number): InvalidImageError {
  return new InvalidImageError(`${what} is ${size} bytes, more than the ${cap} allowed`, { hint: "it is not an image manifest or config" });
}

/** A LayoutReader over a directory. */
export class DirectoryLayoutReader implements LayoutReader {
  constructor(readonly root: string) {}

  async readFile(path: string, cap: number, what: string): Promise<Buffer | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(join(this.root, path), "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      if (size > cap) throw tooLarge(what, size, cap);
      const bytes = Buffer.alloc(size);
      const { bytesRead } = await handle.read(bytes, 0, size, 0);
      return bytes.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async openFile(path: string): Promise<{ size: number; stream: () => Readable } | undefined> {
    const full = join(this.root, path);
    try {
      const info = await stat(full);
      if (!info.isFile()) return undefined;
      return { size: info.size, stream: () => createReadStream(full, { highWaterMark: 1 << 20 }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  async close(): Promise<void> {}
}

function tagsOf(index: IndexManifest): string[] {
  return index.manifests.map((d) => d.annotations?.[refNameAnnotation]).filter((t): t is string => t !== undefined);
}

/** An ImageSource over an OCI layout; `oci:` and `oci-archive:` differ only in their LayoutReader. */
export class OciLayoutSource implements ImageSource {
  #known = new Map<string, Descriptor>();
  #top: Descriptor | undefined;

  constructor(
    readonly description: string,
    readonly reader: LayoutReader,
    readonly tag: string | undefined,
  ) {}

  /** Read oci-layout and index.json and select the top descriptor; throws a one-line error on bad input. */
  async init(): Promise<this> {
    const layout = await this.reader.readFile("oci-layout", 1 << 16, `${this.description}: oci-layout`);
    if (layout === undefined) {
      throw new InputError(`${this.description} is not an OCI image layout (no oci-layout file)`, {
        hint: "give an image layout written by ocify, skopeo, umoci or buildah",
      });
    }
    let version: unknown;
    try {
      version = (JSON.parse(layout.toString("utf8")) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch (error) {
      throw new InvalidImageError(`${this.description}: oci-layout is not valid JSON`, { hint: "the layout is damaged", cause: error });
    }
    if (typeof version !== "string" || !version.startsWith("1.")) {
      throw new InvalidImageError(`${this.description}: unsupported imageLayoutVersion ${JSON.stringify(version)}`, {
        hint: "expected 1.0.0",
      });
    }
    const bytes = await this.reader.readFile("index.json", maxManifestBytes, `${this.description}: index.json`);
    if (bytes === undefined) {
      throw new InvalidImageError(`${this.description} has no index.json`, { hint: "the layout is incomplete; write the image again" });
    }
    const index = parseImageIndex(rawManifest(bytes, MediaType.ociIndex), `${this.description}: index.json`);
    this.#top = await this.#select(index);
    return this;
  }

  async #select(index: IndexManifest): Promise<Descriptor> {
    const tag = this.tag;
    if (tag === undefined) {
      const only = index.manifests[0];
      if (index.manifests.length === 1 && only) return only;
      if (index.manifests.length === 0) {
        throw new InvalidImageError(`${this.description} holds no image`, { hint: "index.json lists no manifests" });
      }
      const tags = tagsOf(index);
      throw new InputError(`${this.description} holds ${index.manifests.length} images; choose one by tag`, {
        hint: tags.length ? `tags: ${tags.join(", ")}` : "the entries have no tags; use a tool that writes one image per layout",
      });
    }
    const found = await this.#findTag(index, tag, 0);
    if (found) return found;
    const tags = tagsOf(index);
    throw new InputError(`${this.description}: tag "${tag}" not found`, {
      hint: tags.length ? `tags: ${tags.join(", ")}` : "the layout has no tags",
    });
  }

  async #findTag(index: IndexManifest, tag: string, depth: number): Promise<Descriptor | undefined> {
    const direct = index.manifests.find((d) => d.annotations?.[refNameAnnotation] === tag);
    if (direct || depth >= 4) return direct;
    // Some tools tag the children of a nested index rather than index.json's own entries.
    for (const entry of index.manifests) {
      if (!isIndexMediaType(entry.mediaType)) continue;
      const nested = parseImageIndex(await this.#readManifest(entry), `${this.description}: index ${shortDigest(entry.digest)}`);
      const found = await this.#findTag(nested, tag, depth + 1);
      if (found) return found;
    }
    return undefined;
  }

  async #readManifest(descriptor: Pick<Descriptor, "digest"> & Partial<Descriptor>): Promise<RawManifest> {
    const what = `${this.description}: manifest ${shortDigest(descriptor.digest)}`;
    const bytes = await this.reader.readFile(blobPath(descriptor.digest), maxManifestBytes, what);
    if (bytes === undefined) throw missingBlob(this.description, descriptor.digest);
    verifyBytes(bytes, { digest: descriptor.digest, size: descriptor.size }, what);
    const raw = rawManifest(bytes, descriptor.mediaType);
    raw.digest = descriptor.digest as Digest;
    if (isIndexMediaType(raw.mediaType)) {
      for (const child of parseImageIndex(raw, what).manifests) this.#known.set(child.digest, child);
    }
    return raw;
  }

  async getManifest(digest?: Digest): Promise<RawManifest> {
    const descriptor = digest === undefined ? this.#top : (this.#known.get(digest) ?? { digest });
    if (!descriptor) throw new Error("OciLayoutSource used before init()");
    return this.#readManifest(descriptor);
  }

  async getBlob(descriptor: Descriptor): Promise<Readable> {
    const file = await this.reader.openFile(blobPath(descriptor.digest));
    if (!file) throw missingBlob(this.description, descriptor.digest);
    return verifiedStream(file.stream(), descriptor, `${this.description}: blob ${shortDigest(descriptor.digest)}`);
  }

  async close(): Promise<void> {
    await this.reader.close();
  }
}

/** The error for a blob the index refers to but the layout lacks. */
export function missingBlob(description: string, digest: string): InvalidImageError {
  return new InvalidImageError(`${description}: blob ${shortDigest(digest)} is missing`, {
    hint: "the image is incomplete; copy it again",
  });
}

/** The index.json entry for a top manifest, tagged when `tag` is given; an artifact's keeps its artifactType. */
export function indexEntry(top: Descriptor, tag: string | undefined): Descriptor {
  const entry: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.size };
  if (top.artifactType !== undefined) entry.artifactType = top.artifactType;
  if (tag !== undefined) entry.annotations = { [refNameAnnotation]: tag };
  return entry;
}

/**
 * A top manifest's descriptor, with the `artifactType` an artifact manifest names (image-spec
 * descriptor.md), so that index.json says what an untagged referrer is without reading it.
 */
export function topDescriptor(manifest: RawManifest): Descriptor {
  const descriptor = manifestDescriptor(manifest);
  if (manifest.mediaType !== MediaType.ociManifest) return descriptor;
  const { artifactType } = JSON.parse(manifest.bytes.toString("utf8")) as { artifactType?: unknown };
  if (typeof artifactType === "string") descriptor.artifactType = artifactType;
  return descriptor;
}

/**
 * index.json with `entry` added: an entry with the same tag is replaced (an untagged one only by the same
 * digest untagged); every other entry and field is kept.
 */
export function mergeIndex(existing: IndexManifest | undefined, entry: Descriptor): Buffer {
  const tag = entry.annotations?.[refNameAnnotation];
  const base: IndexManifest = existing ?? { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const kept = base.manifests.filter((d) => {
    const other = d.annotations?.[refNameAnnotation];
    return tag !== undefined ? other !== tag : !(other === undefined && d.digest === entry.digest);
  });
  return encodeJson({ ...base, manifests: [...kept, entry] });
}

/** Open `oci:DIR[:tag]` for reading. */
export async function openOciLayoutSource(
  ref: { transport: "oci"; path: string; tag?: string },
  _options: TransportOptions = {},
): Promise<ImageSource> {
  const description = `oci:${ref.path}${ref.tag ? `:${ref.tag}` : ""}`;
  const info = await stat(ref.path).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new InputError(`${description}: ${ref.path} ${info ? "is not a directory" : "does not exist"}`, {
      hint: info ? "oci: takes a layout directory; for a tar use oci-archive:" : "check the path",
    });
  }
  return new OciLayoutSource(description, new DirectoryLayoutReader(ref.path), ref.tag).init();
}

const writerMarkerPrefix = ".ocify-writing.";
const indexLockName = ".index.json.lock";

class OciLayoutDestination implements ImageDestination {
  readonly acceptsIndex = true;
  readonly preferredManifestFormat = "oci" as const;
  #created: boolean;
  #newFiles = new Set<string>();
  #top: Descriptor | undefined;

  constructor(
    readonly description: string,
    readonly root: string,
    readonly tag: string | undefined,
    created: boolean,
    /** This writer's marker file: other writers keep the blobs it may rely on while it exists. */
    readonly marker: string,
    readonly signal: AbortSignal | undefined,
  ) {
    this.#created = created;
  }

  async #present(path: string, size: number): Promise<boolean> {
    const info = await stat(join(this.root, path)).catch(() => undefined);
    return info?.isFile() === true && info.size === size;
  }

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    return this.#present(blobPath(descriptor.digest), descriptor.size);
  }

  /** Each blob is a file of its own, written under a temp name: any number at once, in any order. */
  async expectBlobs(): Promise<void> {}

  async putBlob(descriptor: Descriptor, content: Readable): Promise<void> {
    const path = blobPath(descriptor.digest);
    if (await this.#present(path, descriptor.size)) {
      content.resume();
      return;
    }
    const file = await withSystemPath(this.root, () => openAtomicFile(join(this.root, path)));
    try {
      const verifier = createVerifier(descriptor, `${this.description}: blob ${shortDigest(descriptor.digest)}`);
      await pipeline(content, verifier, file.stream, ...(this.signal ? [{ signal: this.signal }] : []));
      this.#newFiles.add(path);
      await file.commit();
    } catch (error) {
      await file.abort();
      throw fromSystemError(error, this.root) ?? error;
    }
  }

  async putManifest(manifest: RawManifest, options: { top: boolean }): Promise<void> {
    const path = blobPath(manifest.digest);
    if (!(await this.#present(path, manifest.bytes.length))) {
      this.#newFiles.add(path);
      await writeFileAtomic(join(this.root, path), manifest.bytes);
    }
    if (options.top) this.#top = topDescriptor(manifest);
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.root, indexLockName), fn, { what: `${this.description}: index.json`, signal: this.signal });
  }

  /** index.json is read, merged and replaced under the layout's lock: a concurrent writer's tag is never lost. */
  async commit(): Promise<void> {
    if (!this.#top) throw new Error(`${this.description}: commit() before the top manifest was written`);
    const top = this.#top;
    this.signal?.throwIfAborted();
    await this.#locked(async () => {
      if ((await new DirectoryLayoutReader(this.root).readFile("oci-layout", 1 << 16, "oci-layout")) === undefined) {
        await writeFileAtomic(join(this.root, "oci-layout"), ociLayoutBytes);
      }
      const what = `${this.description}: existing index.json`;
      const existing = await new DirectoryLayoutReader(this.root).readFile("index.json", maxManifestBytes, what);
      const index = existing === undefined ? undefined : parseImageIndex(rawManifest(existing, MediaType.ociIndex), what);
      this.signal?.throwIfAborted();
      await writeFileAtomic(join(this.root, "index.json"), mergeIndex(index, indexEntry(top, this.tag)));
    });
    this.#newFiles.clear();
    this.#created = false;
    await rm(this.marker, { force: true });
  }

  /**
   * Remove what this writer added, unless another writer is at work in the layout (its image may use a
   * blob this one added): then the blobs stay, unreferenced, and nothing is lost. A layout this writer
   * created goes whole when nobody else wrote an index into it.
   */
  async abort(): Promise<void> {
    await this.#locked(async () => {
      await rm(this.marker, { force: true });
      const names = await readdir(this.root).catch(() => [] as string[]);
      const others = names.filter((n) => n.startsWith(writerMarkerPrefix));
      if (others.length > 0) return;
      if (this.#created && !names.includes("index.json")) {
        await rm(this.root, { recursive: true, force: true });
        return;
      }
      await Promise.all([...this.#newFiles].map((path) => rm(join(this.root, path), { force: true })));
    }).catch(() => {});
    this.#newFiles.clear();
    this.#created = false;
  }
}

/** Open `oci:DIR[:tag]` for writing: a new directory, or an existing OCI layout to add an image to. */
export async function openOciLayoutDestination(
  ref: { transport: "oci"; path: string; tag?: string },
  options: TransportOptions = {},
): Promise<ImageDestination> {
  const description = `oci:${ref.path}${ref.tag ? `:${ref.tag}` : ""}`;
  const info = await stat(ref.path).catch(() => undefined);
  let created = false;
  if (!info) {
    await mkdirOrFail(ref.path, description);
    created = true;
    // At once: a writer that comes into the directory meanwhile then finds a layout, not a stranger's directory.
    await writeFileAtomic(join(ref.path, "oci-layout"), ociLayoutBytes);
  } else if (!info.isDirectory()) {
    throw new InputError(`${description}: ${ref.path} exists and is not a directory`, { hint: "for a tar file use oci-archive:" });
  } else {
    const entries = (await readdir(ref.path)).filter((name) => !isWriterScratch(name));
    if (entries.length > 0 && !entries.includes("oci-layout")) {
      throw new InputError(`${description}: ${ref.path} is not empty and not an OCI layout`, {
        hint: "choose a new or empty directory, or an existing layout",
      });
    }
    if (entries.includes("index.json")) {
      // Fail now, not after copying every blob, when the existing index cannot be merged.
      const what = `${description}: existing index.json`;
      const bytes = await new DirectoryLayoutReader(ref.path).readFile("index.json", maxManifestBytes, what);
      if (bytes) parseImageIndex(rawManifest(bytes, MediaType.ociIndex), what);
    }
    // What killed writers left: their temp files and markers.
    await Promise.all([
      removeStaleTemps(ref.path),
      removeStaleTemps(join(ref.path, "blobs", "sha256")),
      removeStaleOwned(ref.path, writerMarkerPrefix),
    ]);
  }
  const marker = join(ref.path, `${writerMarkerPrefix}${ownerTag()}-${randomBytes(4).toString("hex")}`);
  await writeFile(marker, "");
  return new OciLayoutDestination(description, ref.path, ref.tag, created, marker, options.signal);
}

async function mkdirOrFail(path: string, description: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (error) {
    throw new InputError(`${description}: cannot create ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {
      cause: error,
    });
  }
}
