/**
 * Pure edits of images: each function takes images and returns a new lazy one, leaving its inputs as they
 * were. Nothing is computed until the result is read, and then once. A derived manifest is written in
 * one fixed field order (schemaVersion, mediaType, artifactType, config, layers, subject, annotations),
 * whatever the order of its base's, so the same inputs always give the same bytes.
 */
import { convertLayerMediaType, familyMediaTypes, type ManifestFormat } from "../media-types.js";
import type { History, ImageConfig } from "./config.js";
import { parseImageConfig } from "./config.js";
import type { Descriptor, Platform } from "./descriptor.js";
import { formatOf, type Image, type ImageIndex, type IndexChild, lazy } from "./image.js";
import { bytesBlob, type ImageBlob, type Layer, withDescriptor } from "./layer.js";
import { encodeJson, type ImageManifest, type IndexManifest, type RawManifest, rawManifest } from "./manifest.js";

/** What an image is made of while it is being derived. */
interface Parts {
  manifest: ImageManifest;
  rawConfig(): Promise<Buffer>;
  configBlob(): Promise<ImageBlob>;
  layers: Layer[];
}

/** A layer to append and the history line that describes it; `layer` absent: a history line alone (`empty_layer`). */
export interface Addition {
  layer?: Layer;
  history?: History;
}

async function partsOf(image: Image): Promise<Parts> {
  const [manifest, layers] = await Promise.all([image.manifest(), image.layers()]);
  return { manifest, layers, rawConfig: () => image.rawConfig(), configBlob: () => image.configBlob() };
}

/** The manifest's fields in their fixed order. */
function ordered(manifest: ImageManifest): ImageManifest {
  const result: ImageManifest = { schemaVersion: 2 } as ImageManifest;
  if (manifest.mediaType !== undefined) result.mediaType = manifest.mediaType;
  if (manifest.artifactType !== undefined) result.artifactType = manifest.artifactType;
  result.config = manifest.config;
  result.layers = manifest.layers;
  if (manifest.subject !== undefined) result.subject = manifest.subject;
  if (manifest.annotations !== undefined && Object.keys(manifest.annotations).length > 0) result.annotations = manifest.annotations;
  return result;
}

/** An image made from `base` by `step`, computed once when first read. */
function derive(base: Image, step: (parts: Parts) => Promise<Parts> | Parts): Image {
  const parts = lazy(async () => {
    const made = await step(await partsOf(base));
    const manifest = ordered(made.manifest);
    return { ...made, manifest, raw: rawManifest(encodeJson(manifest), manifest.mediaType) };
  });
  const config = lazy(async () => parseImageConfig(await (await parts()).rawConfig(), `config of ${base.description}`));
  return {
    kind: "image",
    description: base.description,
    rawManifest: async (): Promise<RawManifest> => (await parts()).raw,
    manifest: async () => structuredClone((await parts()).manifest),
    rawConfig: async () => (await parts()).rawConfig(),
    config: async () => structuredClone(await config()),
    configBlob: async () => (await parts()).configBlob(),
    layers: async () => [...(await parts()).layers],
  };
}

/** New config bytes for `parts`: the manifest names them, the blob is fresh when `fresh`. */
function withConfig(parts: Parts, config: ImageConfig, fresh: boolean): Parts {
  const bytes = encodeJson(config);
  const blob = bytesBlob(bytes, parts.manifest.config.mediaType, "config", fresh);
  return {
    ...parts,
    manifest: { ...parts.manifest, config: blob.descriptor },
    rawConfig: async () => bytes,
    configBlob: async () => blob,
  };
}

async function configOf(parts: Parts, what: string): Promise<ImageConfig> {
  return parseImageConfig(await parts.rawConfig(), `config of ${what}`);
}

/**
 * Append layers (and their history lines) to an image: the manifest lists them after the base's, the
 * config's `rootfs.diff_ids` and `history` grow by them. The new config is `fresh` (sent without asking
 * a registry whether it has it) when a layer appended is.
 */
export function append(base: Image, additions: readonly (Layer | Addition)[]): Image {
  const adds: Addition[] = additions.map((a) => ("descriptor" in a ? { layer: a } : a));
  return derive(base, async (parts) => {
    const config = await configOf(parts, base.description);
    const layers = adds.flatMap((a) => (a.layer ? [a.layer] : []));
    const diffIDs = await Promise.all(layers.map((layer) => layer.diffID()));
    config.rootfs = { ...config.rootfs, diff_ids: [...config.rootfs.diff_ids, ...diffIDs] };
    const history = [...(config.history ?? [])];
    for (const add of adds) history.push(add.history ?? (add.layer ? { comment: "ocify" } : { comment: "ocify", empty_layer: true }));
    config.history = history;
    const next = withConfig(
      parts,
      config,
      layers.some((layer) => layer.fresh),
    );
    return {
      ...next,
      manifest: { ...next.manifest, layers: [...parts.manifest.layers, ...layers.map((l) => l.descriptor)] },
      layers: [...parts.layers, ...layers],
    };
  });
}

/** Edit an image's config with `edit`, which receives a copy and returns the new config. */
export function config(base: Image, edit: (config: ImageConfig) => ImageConfig | Promise<ImageConfig>): Image {
  return derive(base, async (parts) => withConfig(parts, await edit(await configOf(parts, base.description)), false));
}

/** Set manifest annotations: added to the base's, or instead of them with `replace`. */
export function annotations(base: Image, added: Readonly<Record<string, string>>, options: { replace?: boolean } = {}): Image {
  return derive(base, (parts) => {
    const kept = options.replace ? {} : (parts.manifest.annotations ?? {});
    return { ...parts, manifest: { ...parts.manifest, annotations: { ...kept, ...added } } };
  });
}

/** Name the manifest this image refers to (an SBOM or signature names the image it describes), or none. */
export function subject(base: Image, descriptor: Descriptor | undefined): Image {
  return derive(base, (parts) => {
    const manifest = { ...parts.manifest };
    if (descriptor) manifest.subject = descriptor;
    else delete manifest.subject;
    return { ...parts, manifest };
  });
}

/**
 * The image in the other manifest family (Docker schema 2 ⇄ OCI), as skopeo converts it for a
 * destination that needs it: media types change, config and layer bytes stay, so only the manifest's
 * digest changes. Docker manifests have no annotations or subject: they are dropped. An image already in
 * `format` is returned as it is.
 */
export function format(base: Image, target: ManifestFormat): Image {
  const types = familyMediaTypes(target);
  const converted = derive(base, async (parts) => {
    const configDescriptor = { ...parts.manifest.config, mediaType: types.config };
    const layers = parts.layers.map((layer) =>
      withDescriptor(layer, { ...layer.descriptor, mediaType: convertLayerMediaType(layer.descriptor.mediaType, target) }),
    );
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: types.manifest,
      config: configDescriptor,
      layers: parts.manifest.layers.map((d) => ({ ...d, mediaType: convertLayerMediaType(d.mediaType, target) })),
    };
    if (target === "oci" && parts.manifest.annotations) manifest.annotations = parts.manifest.annotations;
    return { ...parts, manifest, layers, configBlob: async () => withDescriptor(await parts.configBlob(), configDescriptor) };
  });
  return lazyImage(base, async () => ((await formatOf(base)) === target ? base : converted));
}

/** An image that is `pick()`'s image, decided when first read. */
function lazyImage(base: Image, pick: () => Promise<Image>): Image {
  const chosen = lazy(pick);
  return {
    kind: "image",
    description: base.description,
    rawManifest: async () => (await chosen()).rawManifest(),
    manifest: async () => (await chosen()).manifest(),
    rawConfig: async () => (await chosen()).rawConfig(),
    config: async () => (await chosen()).config(),
    configBlob: async () => (await chosen()).configBlob(),
    layers: async () => (await chosen()).layers(),
  };
}

/** An entry of an index to make: an image (or index) and the platform it runs on. */
export interface IndexEntry {
  image: Image | ImageIndex;
  platform?: Platform | undefined;
  annotations?: Record<string, string> | undefined;
}

/** Options of `index`. */
export interface IndexOptions {
  /** The index's family (default OCI). */
  format?: ManifestFormat;
  /** Index annotations (OCI only). */
  annotations?: Record<string, string> | undefined;
  description?: string;
}

/** An index over images, each with its platform, in the order given. */
export function index(entries: readonly IndexEntry[], options: IndexOptions = {}): ImageIndex {
  const target = options.format ?? "oci";
  const types = familyMediaTypes(target);
  const made = lazy(async () => {
    const children: IndexChild[] = [];
    for (const entry of entries) {
      const raw = await entry.image.rawManifest();
      const descriptor: Descriptor = { mediaType: raw.mediaType, digest: raw.digest, size: raw.bytes.length };
      if (entry.platform) descriptor.platform = entry.platform;
      if (entry.annotations && Object.keys(entry.annotations).length > 0) descriptor.annotations = entry.annotations;
      children.push({ descriptor, read: async () => entry.image });
    }
    const manifest: IndexManifest = { schemaVersion: 2, mediaType: types.index, manifests: children.map((c) => c.descriptor) };
    if (target === "oci" && options.annotations && Object.keys(options.annotations).length > 0) manifest.annotations = options.annotations;
    return { manifest, children, raw: rawManifest(encodeJson(manifest), types.index) };
  });
  return {
    kind: "index",
    description: options.description ?? "an index",
    rawManifest: async () => (await made()).raw,
    manifest: async () => structuredClone((await made()).manifest),
    children: async () => [...(await made()).children],
  };
}

/**
 * An index whose every image is in `target`'s family (for an OCI layout): the children converted
 * (nested indexes too), and the index written again in that family when any entry changed. An index
 * with nothing to convert is returned as it is, its bytes kept.
 */
export function formatIndex(base: ImageIndex, target: ManifestFormat): ImageIndex {
  const types = familyMediaTypes(target);
  const made = lazy(async () => {
    const children: IndexChild[] = [];
    let changed = false;
    for (const child of await base.children()) {
      const original = await child.read();
      const converted = original.kind === "image" ? format(original, target) : formatIndex(original, target);
      const raw = await converted.rawManifest();
      changed ||= raw.digest !== child.descriptor.digest;
      const descriptor = { ...child.descriptor, mediaType: raw.mediaType, digest: raw.digest, size: raw.bytes.length };
      children.push({ descriptor, read: async () => converted });
    }
    if (!changed) return { raw: await base.rawManifest(), manifest: await base.manifest(), children };
    const old = await base.manifest();
    const manifest: IndexManifest = { schemaVersion: 2, mediaType: types.index, manifests: children.map((c) => c.descriptor) };
    if (target === "oci" && old.annotations) manifest.annotations = old.annotations;
    return { raw: rawManifest(encodeJson(manifest), types.index), manifest, children };
  });
  return {
    kind: "index",
    description: base.description,
    rawManifest: async () => (await made()).raw,
    manifest: async () => structuredClone((await made()).manifest),
    children: async () => [...(await made()).children],
  };
}
