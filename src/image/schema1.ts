/**
 * Docker image manifest v2 schema 1 (distribution manifest-v2-1.md), read and converted to schema 2 as
 * skopeo (containers/image) converts it, so both give the same config and manifest bytes: fsLayers and
 * history reversed (schema 1 lists the newest first), entries repeating the previous ID dropped, the
 * `throwaway` entries kept in the history (`empty_layer`) but not as layers, other layers kept even when
 * they repeat a blob (old images have one empty layer per ENV or CMD), and the config made from the newest
 * entry's v1Compatibility with `rootfs.diff_ids` and a history added. The diffIDs are not in a schema 1
 * manifest: the caller reads them from the layers (LayerFacts).
 */
import { type Digest, digestOf, isDigest } from "../digest.js";
import { InvalidImageError } from "../errors.js";
import { type Compression, layerMediaType, MediaType } from "../media-types.js";
import type { Descriptor } from "./descriptor.js";
import { goObject, goString, goTime, rawMembers } from "./go-json.js";
import { parsePrettyJws, verifyPrettyJws } from "./jws.js";
import { type ImageManifest, type RawManifest, rawManifest } from "./manifest.js";

/** The fields of a v1Compatibility entry the conversion reads. */
interface V1Compatibility {
  id?: unknown;
  parent?: unknown;
  created?: unknown;
  author?: unknown;
  comment?: unknown;
  throwaway?: unknown;
  container_config?: { Cmd?: unknown } | null;
}

/** One history entry of a schema 1 manifest with its layer. */
export interface Schema1Entry {
  blobSum: Digest;
  /** The v1Compatibility JSON text as the manifest holds it. */
  text: string;
  v1: V1Compatibility;
  throwaway: boolean;
}

/** A parsed schema 1 manifest, its entries newest first (as listed), repeated IDs removed. */
export interface Schema1Image {
  name: string;
  tag: string;
  entries: Schema1Entry[];
}

/** What a layer blob is, found by reading it: its size, compression, and the digest of the tar inside. */
export interface LayerFacts {
  size: number;
  compression: Compression;
  diffID: Digest;
}

const v1ID = /^[a-f0-9]{64}$/;

function parseEntry(blobSum: unknown, history: unknown, index: number, what: string): Schema1Entry {
  const text = (history as { v1Compatibility?: unknown } | null)?.v1Compatibility;
  if (typeof blobSum !== "string" || !isDigest(blobSum) || typeof text !== "string") {
    throw new InvalidImageError(`${what}: fsLayers[${index}] or history[${index}] is malformed`);
  }
  let v1: V1Compatibility;
  try {
    v1 = JSON.parse(text) as V1Compatibility;
  } catch (error) {
    throw new InvalidImageError(`${what}: history[${index}].v1Compatibility is not valid JSON`, { cause: error });
  }
  if (typeof v1 !== "object" || v1 === null || Array.isArray(v1)) {
    throw new InvalidImageError(`${what}: history[${index}].v1Compatibility is not a JSON object`);
  }
  if (typeof v1.id !== "string" || !v1ID.test(v1.id)) {
    throw new InvalidImageError(`${what}: history[${index}] has no valid image ID (64 hex digits)`);
  }
  if (v1.throwaway !== undefined && typeof v1.throwaway !== "boolean") {
    throw new InvalidImageError(`${what}: history[${index}].throwaway is not a boolean`);
  }
  return { blobSum, text, v1, throwaway: v1.throwaway === true };
}

/** Drop an entry that repeats the ID of the one after it, and check that each entry's parent is the next. */
function chainEntries(entries: Schema1Entry[], what: string): Schema1Entry[] {
  const ids = entries.map((e) => e.v1.id as string);
  if (entries.at(-1)?.v1.parent) throw new InvalidImageError(`${what}: the base layer's history entry has a parent`);
  const seen = new Set<string>();
  for (const [i, id] of ids.entries()) {
    if (id !== ids[i - 1] && seen.has(id)) throw new InvalidImageError(`${what}: image ID ${id} appears more than once`);
    seen.add(id);
  }
  const kept: Schema1Entry[] = [];
  for (const [i, entry] of entries.entries()) {
    const next = entries[i + 1];
    if (next === undefined) kept.push(entry);
    else if (entry.v1.id === next.v1.id) continue;
    else if ((entry.v1.parent ?? "") !== next.v1.id) {
      throw new InvalidImageError(`${what}: history entry ${i} names parent ${String(entry.v1.parent)}, not ${String(next.v1.id)}`);
    } else kept.push(entry);
  }
  return kept;
}

/**
 * Parse a schema 1 manifest, signed or not; the signatures of a signed one are verified. Throws
 * InvalidImageError naming `what`.
 */
export function parseSchema1(raw: RawManifest, what: string): Schema1Image {
  const jws = parsePrettyJws(raw.bytes, what);
  if (jws) verifyPrettyJws(jws, what);
  let json: { schemaVersion?: unknown; name?: unknown; tag?: unknown; fsLayers?: unknown; history?: unknown };
  try {
    json = JSON.parse((jws?.payload ?? raw.bytes).toString("utf8")) as typeof json;
  } catch (error) {
    throw new InvalidImageError(`${what}: the signed payload is not valid JSON`, { cause: error });
  }
  if (json.schemaVersion !== 1) throw new InvalidImageError(`${what} has schemaVersion ${String(json.schemaVersion)}, expected 1`);
  const { fsLayers, history } = json;
  if (!Array.isArray(fsLayers) || !Array.isArray(history) || fsLayers.length !== history.length || fsLayers.length === 0) {
    throw new InvalidImageError(`${what}: fsLayers and history must be lists of the same, non-zero length`);
  }
  const entries = fsLayers.map((layer: { blobSum?: unknown } | null, i) => parseEntry(layer?.blobSum, history[i], i, what));
  return { name: String(json.name ?? ""), tag: String(json.tag ?? ""), entries: chainEntries(entries, what) };
}

/** The layer blobs the converted image has (not throwaway), oldest first, each once. */
export function schema1LayerBlobs(image: Schema1Image): Digest[] {
  return [...new Set(image.entries.filter((e) => !e.throwaway).map((e) => e.blobSum))].reverse();
}

function historyItem(entry: Schema1Entry, what: string): string {
  const { v1 } = entry;
  const cmd = v1.container_config?.Cmd ?? [];
  if (!Array.isArray(cmd) || !cmd.every((c) => typeof c === "string")) {
    throw new InvalidImageError(`${what}: container_config.Cmd of image ${String(v1.id)} is not a list of strings`);
  }
  for (const field of ["author", "comment"] as const) {
    if (v1[field] !== undefined && v1[field] !== null && typeof v1[field] !== "string") {
      throw new InvalidImageError(`${what}: ${field} of image ${String(v1.id)} is not a string`);
    }
  }
  const fields = [`"created":${goString(goTime(v1.created, `${what}: created of image ${String(v1.id)}`))}`];
  if (v1.author) fields.push(`"author":${goString(v1.author as string)}`);
  const createdBy = cmd.join(" ");
  if (createdBy) fields.push(`"created_by":${goString(createdBy)}`);
  if (v1.comment) fields.push(`"comment":${goString(v1.comment as string)}`);
  if (entry.throwaway) fields.push(`"empty_layer":true`);
  return `{${fields.join(",")}}`;
}

/**
 * The schema 2 config: the newest entry's v1Compatibility without the v1 bookkeeping fields (`id`,
 * `parent`, `Size`…), plus `rootfs` and `history`, encoded as Go encodes a map (keys sorted, values
 * compacted). Images written by Docker before 1.8.3 are re-encoded by skopeo first; ocify does not, so
 * their config (not their content) differs from skopeo's.
 */
function schema2Config(image: Schema1Image, diffIDs: readonly Digest[], what: string): Buffer {
  const members = rawMembers((image.entries[0] as Schema1Entry).text);
  for (const dropped of ["id", "parent", "parent_id", "layer_id", "throwaway", "Size"]) members.delete(dropped);
  members.set("rootfs", `{"type":"layers","diff_ids":[${diffIDs.map((d) => `"${d}"`).join(",")}]}`);
  const history = [...image.entries].reverse().map((entry) => historyItem(entry, what));
  members.set("history", `[${history.join(",")}]`);
  return Buffer.from(goObject(members), "utf8");
}

/**
 * Convert a parsed schema 1 image to a Docker schema 2 manifest and its config, given what each layer
 * blob is. Field order and encoding follow skopeo's, so the digests are the same.
 */
export function convertSchema1(
  image: Schema1Image,
  facts: ReadonlyMap<string, LayerFacts>,
  what: string,
): { manifest: RawManifest; config: Buffer } {
  const layers: Descriptor[] = [];
  const diffIDs: Digest[] = [];
  for (const entry of [...image.entries].reverse()) {
    if (entry.throwaway) continue;
    const fact = facts.get(entry.blobSum);
    if (!fact) throw new Error(`no facts for layer ${entry.blobSum}`);
    // Key order as Go writes a schema 2 descriptor: mediaType, size, digest.
    layers.push({ mediaType: layerMediaType("docker", fact.compression), size: fact.size, digest: entry.blobSum } as Descriptor);
    diffIDs.push(fact.diffID);
  }
  const config = schema2Config(image, diffIDs, what);
  // Written in Go's struct order (not encodeJson's sorted keys): the bytes, so the digest, skopeo makes.
  const manifest = rawManifest(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.dockerManifest,
        config: { mediaType: MediaType.dockerConfig, size: config.length, digest: digestOf(config) },
        layers,
      } satisfies ImageManifest),
    ),
    MediaType.dockerManifest,
  );
  return { manifest, config };
}
