/**
 * The `docker-archive:FILE[:name:tag | :@index]` transport: what `docker save` writes and `docker load` reads.
 * Written like Docker >= 25's `docker save`: an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
 * plus `manifest.json`, `repositories` and legacy `<id>/{VERSION,json,layer.tar}` entries, with layers kept in
 * the compression they arrive in. Read from both that layout and the classic one, through a tar index.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { detectCompression } from "../codec.js";
import { type Digest, digestOf, isDigest, shortDigest } from "../digest.js";
import { InputError, InvalidImageError } from "../errors.js";
import { type ImageConfig, parseImageConfig } from "../image/config.js";
import type { Descriptor } from "../image/descriptor.js";
import { encodeJson, type ImageManifest, maxManifestBytes, parseImageManifest, type RawManifest, rawManifest } from "../image/manifest.js";
import { isIndexMediaType, layerMediaType, MediaType } from "../media-types.js";
import { familiarName, formatReference, parseReference, type Reference } from "../reference.js";
import { indexEntry, mergeIndex, ociLayoutBytes, refNameAnnotation } from "./oci-layout.js";
import { ArchiveLayoutWriter, blobPath, type TarEntry, TarIndex, verifiedStream } from "./tar-archive.js";
import type { ImageDestination, ImageSource, TransportOptions } from "./types.js";

/** A docker-archive reference. */
export type DockerArchiveReference = { transport: "docker-archive"; path: string; name?: Reference; index?: number };

/** One entry of a docker-archive's manifest.json. */
export interface DockerArchiveManifestEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

function describe(ref: DockerArchiveReference): string {
  const suffix = ref.name ? `:${familiarName(ref.name)}:${ref.name.tag ?? "latest"}` : ref.index !== undefined ? `:@${ref.index}` : "";
  return `docker-archive:${ref.path}${suffix}`;
}

/** The RepoTags string `docker load` shows for a name (`busybox:latest`, `localhost:5000/app:1`). */
export function repoTag(name: Reference): string {
  return `${familiarName(name)}:${name.tag ?? "latest"}`;
}

/** Chain IDs of a layer stack (image-spec config.md#layer-chainid), used as the legacy layer IDs. */
export function chainIDs(diffIDs: readonly string[]): Digest[] {
  const ids: Digest[] = [];
  for (const diffID of diffIDs) {
    const parent = ids.at(-1);
    ids.push(parent === undefined ? (diffID as Digest) : digestOf(`${parent} ${diffID}`));
  }
  return ids;
}

function hex(digest: string): string {
  return digest.slice(digest.indexOf(":") + 1);
}

class DockerArchiveDestination implements ImageDestination {
  readonly acceptsIndex = false;
  readonly requiresForeignBlobs = true;
  #top: RawManifest | undefined;

  constructor(
    readonly description: string,
    readonly writer: ArchiveLayoutWriter,
    readonly name: Reference | undefined,
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
    if (isIndexMediaType(manifest.mediaType)) {
      throw new InputError(`${this.description}: a docker-archive holds one image, not an index`, {
        hint: "choose one `platform`, or write to oci: / oci-archive:",
      });
    }
    parseImageManifest(manifest, `${this.description}: manifest`);
    await this.writer.putBlobBytes(manifest.digest, manifest.bytes);
    if (options.top) this.#top = manifest;
  }

  async commit(): Promise<void> {
    if (!this.#top) throw new InvalidImageError(`${this.description}: no manifest was written`);
    const manifest = parseImageManifest(this.#top, `${this.description}: manifest`);
    for (const blob of [manifest.config, ...manifest.layers]) {
      if (!this.writer.hasBlob(blob)) {
        throw new InvalidImageError(`${this.description}: blob ${shortDigest(blob.digest)} of the manifest was not written`, {
          hint: "write every blob before the manifest",
        });
      }
    }
    const configBytes = await this.writer.tar.readBack(blobPath(manifest.config.digest), maxManifestBytes);
    if (!configBytes) {
      throw new InvalidImageError(`${this.description}: the config is larger than ${maxManifestBytes} bytes`, {
        hint: "it is not an image config",
      });
    }
    const config = parseImageConfig(configBytes, `${this.description}: config`);
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
      throw new InvalidImageError(
        `${this.description}: ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff_ids in the config`,
        { hint: "the manifest and config do not belong together" },
      );
    }
    const tar = this.writer.tar;
    const ids = await this.#writeLegacyLayers(manifest, config);
    const entry: DockerArchiveManifestEntry = {
      Config: blobPath(manifest.config.digest),
      RepoTags: this.name ? [repoTag(this.name)] : null,
      Layers: manifest.layers.map((l) => blobPath(l.digest)),
    };
    await tar.addBytes("oci-layout", ociLayoutBytes);
    const top = ids.at(-1);
    if (this.name && top) {
      await tar.addBytes("repositories", JSON.stringify({ [familiarName(this.name)]: { [this.name.tag ?? "latest"]: hex(top) } }));
    }
    await tar.addBytes("manifest.json", JSON.stringify([entry]));
    const descriptor = indexEntry({ mediaType: this.#top.mediaType, digest: this.#top.digest, size: this.#top.bytes.length }, undefined);
    if (this.name) {
      descriptor.annotations = { "io.containerd.image.name": formatReference(this.name), [refNameAnnotation]: this.name.tag ?? "latest" };
    }
    await tar.addBytes("index.json", mergeIndex(undefined, descriptor));
    await tar.commit();
  }

  /** `<id>/VERSION`, `<id>/json` and a `<id>/layer.tar` symlink to the blob, for engines that read the v1 layout. */
  async #writeLegacyLayers(manifest: ImageManifest, config: ImageConfig): Promise<Digest[]> {
    const ids = chainIDs(config.rootfs.diff_ids);
    const { rootfs: _rootfs, history: _history, ...imageFields } = config;
    for (const [i, id] of ids.entries()) {
      const dir = hex(id);
      if (this.writer.tar.has(dir)) continue; // the same stack twice cannot happen, but a name must be unique
      const parent = i > 0 ? hex(ids[i - 1]!) : undefined;
      const v1: Record<string, unknown> =
        i === ids.length - 1 ? { ...imageFields, id: dir } : { id: dir, created: config.created ?? "1970-01-01T00:00:00Z", os: config.os };
      if (parent) v1.parent = parent;
      await this.writer.tar.addBytes(dir, undefined);
      await this.writer.tar.addBytes(`${dir}/VERSION`, "1.0");
      await this.writer.tar.addBytes(`${dir}/json`, JSON.stringify(v1));
      await this.writer.tar.addBytes(`${dir}/layer.tar`, "", { linkname: `../${blobPath(manifest.layers[i]!.digest)}` });
    }
    return ids;
  }

  async abort(): Promise<void> {
    await this.writer.tar.abort();
  }
}

/** Open `docker-archive:FILE[:name:tag]` for writing; the file appears only on commit(). */
export async function openDockerArchiveDestination(ref: DockerArchiveReference, options: TransportOptions = {}): Promise<ImageDestination> {
  if (ref.index !== undefined) {
    throw new InputError(`${describe(ref)}: @index selects an image to read, it cannot name one to write`, {
      hint: "write docker-archive:FILE or docker-archive:FILE:NAME:TAG",
    });
  }
  return new DockerArchiveDestination(describe(ref), await ArchiveLayoutWriter.create(ref.path, options.signal), ref.name);
}

const notDockerSave = "give a file written by docker save, skopeo or ocify";

function parseArchiveManifest(bytes: Buffer, description: string): DockerArchiveManifestEntry[] {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new InvalidImageError(`${description}: manifest.json is not valid JSON`, { hint: notDockerSave, cause: error });
  }
  const valid =
    Array.isArray(json) &&
    json.every(
      (e: Partial<DockerArchiveManifestEntry> | null) =>
        typeof e === "object" &&
        e !== null &&
        typeof e.Config === "string" &&
        Array.isArray(e.Layers) &&
        e.Layers.every((l) => typeof l === "string") &&
        (e.RepoTags == null || (Array.isArray(e.RepoTags) && e.RepoTags.every((t) => typeof t === "string"))),
    );
  if (!valid)
    throw new InvalidImageError(`${description}: manifest.json is not a list of {Config, RepoTags, Layers}`, { hint: notDockerSave });
  return json as DockerArchiveManifestEntry[];
}

function sameName(tag: string, wanted: Reference): boolean {
  try {
    const parsed = parseReference(tag);
    return parsed.registry === wanted.registry && parsed.repository === wanted.repository && (parsed.tag ?? "latest") === wanted.tag;
  } catch {
    return false;
  }
}

function listImages(entries: DockerArchiveManifestEntry[]): string {
  return entries.map((e, i) => (e.RepoTags?.length ? e.RepoTags.join(" ") : `@${i} (untagged)`)).join(", ");
}

function selectImage(entries: DockerArchiveManifestEntry[], ref: DockerArchiveReference, description: string): DockerArchiveManifestEntry {
  if (entries.length === 0) throw new InvalidImageError(`${description}: manifest.json lists no image`, { hint: notDockerSave });
  if (ref.index !== undefined) {
    const entry = entries[ref.index];
    if (!entry) {
      throw new InputError(`${description}: there is no image @${ref.index}; the archive holds ${entries.length}`, {
        hint: `use @0…@${entries.length - 1}`,
      });
    }
    return entry;
  }
  if (ref.name) {
    const name = ref.name;
    const entry = entries.find((e) => e.RepoTags?.some((t) => sameName(t, name)));
    if (!entry)
      throw new InputError(`${description}: no image named ${repoTag(name)} in the archive`, { hint: `images: ${listImages(entries)}` });
    return entry;
  }
  if (entries.length > 1) {
    throw new InputError(`${description}: the archive holds ${entries.length} images; choose one`, {
      hint: `append :NAME:TAG or :@INDEX; images: ${listImages(entries)}`,
    });
  }
  return entries[0]!;
}

class DockerArchiveSource implements ImageSource {
  constructor(
    readonly description: string,
    readonly tar: TarIndex,
    readonly manifest: RawManifest,
    readonly blobs: Map<string, TarEntry>,
  ) {}

  async getManifest(digest?: Digest): Promise<RawManifest> {
    if (digest !== undefined && digest !== this.manifest.digest) {
      throw new InvalidImageError(`${this.description}: no manifest ${shortDigest(digest)}`, {
        hint: "a docker-archive image has one manifest",
      });
    }
    return this.manifest;
  }

  async getBlob(descriptor: Descriptor): Promise<Readable> {
    const entry = this.blobs.get(descriptor.digest);
    if (!entry) {
      throw new InvalidImageError(`${this.description}: no blob ${shortDigest(descriptor.digest)} in the archive`, {
        hint: "the manifest was not read from this archive",
      });
    }
    return verifiedStream(this.tar.stream(entry), descriptor, `${this.description}: blob ${shortDigest(descriptor.digest)}`);
  }

  async close(): Promise<void> {
    await this.tar.close();
  }
}

async function hashEntry(tar: TarIndex, entry: TarEntry): Promise<Digest> {
  const hash = createHash("sha256");
  await pipeline(tar.stream(entry), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) hash.update(chunk);
  });
  return `sha256:${hash.digest("hex")}`;
}

/**
 * Open `docker-archive:FILE[:name:tag | :@index]` for reading: the selected image's manifest is synthesized
 * as Docker schema 2 from manifest.json, each layer described as its file is stored (digest, size, compression).
 */
export async function openDockerArchiveSource(ref: DockerArchiveReference, _options: TransportOptions = {}): Promise<ImageSource> {
  const description = describe(ref);
  const tar = await TarIndex.open(ref.path, description);
  try {
    return await readDockerArchive(ref, description, tar);
  } catch (error) {
    await tar.close();
    throw error;
  }
}

async function readDockerArchive(ref: DockerArchiveReference, description: string, tar: TarIndex): Promise<ImageSource> {
  const manifestEntry = tar.find("manifest.json");
  if (!manifestEntry) {
    const oci = tar.find("index.json") !== undefined;
    throw new InputError(`${description}: ${ref.path} has no manifest.json`, {
      hint: oci ? "it is an OCI archive; read it with oci-archive:" : "give a file written by docker save, skopeo or ocify",
    });
  }
  const entries = parseArchiveManifest(await tar.readBytes(manifestEntry, maxManifestBytes, `${description}: manifest.json`), description);
  const image = selectImage(entries, ref, description);
  const find = (path: string, what: string): TarEntry => {
    if (path.startsWith("/") || posix.normalize(path).split("/")[0] === "..") {
      throw new InvalidImageError(`${description}: manifest.json names ${what} "${path}", outside the archive`, {
        hint: "the archive is damaged or hostile; write it again",
      });
    }
    const entry = tar.find(path);
    if (!entry)
      throw new InvalidImageError(`${description}: ${what} ${path} is missing from the archive`, { hint: "the archive is incomplete" });
    return entry;
  };
  const configEntry = find(image.Config, "config");
  const configBytes = await tar.readBytes(configEntry, maxManifestBytes, `${description}: config`);
  const config = parseImageConfig(configBytes, `${description}: config ${image.Config}`);
  const diffIDs = config.rootfs.diff_ids;
  if (diffIDs.length !== image.Layers.length) {
    throw new InvalidImageError(
      `${description}: manifest.json lists ${image.Layers.length} layers but the config has ${diffIDs.length} diff_ids`,
      { hint: notDockerSave },
    );
  }
  const configDigest = digestOf(configBytes);
  const blobs = new Map<string, TarEntry>([[configDigest, configEntry]]);
  const layers: Descriptor[] = [];
  for (const [i, path] of image.Layers.entries()) {
    const entry = find(path, `layer ${i}`);
    const compression = detectCompression(await tar.readHead(entry, 4));
    const named = /(?:^|\/)blobs\/sha256\/([a-f0-9]{64})$/.exec(entry.name)?.[1];
    const diffID = diffIDs[i]!;
    // The file's digest: from its name in the OCI layout, the diffID when stored uncompressed, else hashed once.
    let digest: Digest;
    if (named) digest = `sha256:${named}`;
    else if (compression === "none" && isDigest(diffID)) digest = diffID;
    else digest = await hashEntry(tar, entry);
    blobs.set(digest, entry);
    layers.push({ mediaType: layerMediaType("docker", compression), digest, size: entry.size });
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: MediaType.dockerConfig, digest: configDigest, size: configBytes.length },
    layers,
  };
  return new DockerArchiveSource(description, tar, rawManifest(encodeJson(manifest), MediaType.dockerManifest), blobs);
}
