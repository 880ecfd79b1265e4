/**
 * Layer builds: files → deterministic tar → diffID → compressed blocks → blob digest, in one streaming
 * pass with bounded memory (produce.ts). Blocks compress in parallel on worker threads and are cached by
 * what went into them, so a rebuild recompresses only the blocks whose files changed; when no file changed
 * at all (change detectors equal, racy-clean) the recorded layer is reused without reading any content.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { touchCacheEntry } from "../cache-prune.js";
import type { Digest } from "../digest.js";
import { InputError, withSystemPath } from "../errors.js";
import { removeStaleTemps, tempPathFor, trackTemp, untrackTemp, writeFileAtomic } from "../fs-atomic.js";
import type { Descriptor } from "../image/descriptor.js";
import type { Compression } from "../media-types.js";
import type { ProgressSink } from "../progress.js";
import { BlockCache } from "./block-cache.js";
import { type PackedPlan, packPlan } from "./blocks.js";
import { type BlockCodec, createCodec, type GzipEngine } from "./compression.js";
import { layerSourceKind } from "./plan.js";
import { writePlanFile } from "./plan-file.js";
import {
  encodeRecord,
  type LayerRecord,
  type LayerSource,
  layerFingerprint,
  type PlannedLayer,
  type PlanOptions,
  planKeyOf,
  planLayer,
  recordVersion,
  statIndexPath,
} from "./prepare.js";
import { produce } from "./produce.js";

export { parseLayerFlag } from "./plan.js";
export { isRacy, type LayerSource, type PlannedLayer } from "./prepare.js";

/** How to build a layer. */
export interface LayerBuildOptions {
  /** The ocify cache root; blocks go to `<cacheDir>/blocks`, layer records to `<cacheDir>/layers`. */
  cacheDir: string;
  compression: Compression;
  /** Compression level; default gzip 1, zstd 3 (see docs/compression.md). */
  level?: number;
  /** The deflate that makes gzip members: libdeflate (default) or Node's zlib (to compare them, or as a way out). */
  gzipEngine?: GzipEngine | undefined;
  /**
   * Which thread reads the files and hashes the tar: a thread of its own, or the calling one. By default
   * a rebuild of a large layer mostly in the block cache uses a thread (for tests and measurements).
   */
  producer?: "worker" | "inline" | undefined;
  /**
   * Run V8's collector after every 16 MiB of compressed output while its heap is small (under 32 MiB),
   * which keeps a build's peak memory flat (docs/compression.md); default true.
   */
  garbageNudges?: boolean | undefined;
  /** The media type the descriptor gets. */
  mediaType: string;
  /** Owner of every entry (default 0:0). */
  chown?: { uid: number; gid: number };
  /** Keep on-disk (or in-archive) owners, as `ocify import` does. */
  preserveOwners?: boolean;
  /** Seconds since the epoch for every entry's mtime (SOURCE_DATE_EPOCH, default 0). */
  mtime?: number;
  signal?: AbortSignal;
  /** Receives phase start/progress/done events of kind "build"; bytes count the uncompressed tar. */
  progress?: ProgressSink;
  /**
   * Receives the compressed blob as it is produced (a concurrent upload); awaited, and it applies backpressure.
   * Not called when the layer is unchanged since the recorded build (nothing is produced then), nor when
   * its blocks are the recorded build's (the blob is then most likely one the destination has).
   */
  tee?: (content: Readable) => Promise<void>;
  /** The history line; default "ocify layer KIND -> DEST", KIND as layerSourceKind says (never a host path). */
  createdBy?: string;
  /** Hears, in one line, what a source holds that the layer cannot keep (the CLI prints it as a warning). */
  warn?: (message: string) => void;
}

/** A layer in the cache. */
export interface BuiltLayer {
  /** The compressed blob's media type, digest and size. */
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar. */
  diffID: Digest;
  /** A history line for the image config. */
  createdBy: string;
  /** The compressed blob again, read from the cache and verified while it streams. */
  open(): Readable;
  /** Size of the uncompressed tar. */
  tarSize: number;
  /** Blocks in the blob, and how many were taken from the cache instead of compressed. */
  blocks: number;
  reusedBlocks: number;
  /**
   * Of the reused blocks, how many were taken on the previous build's word (same key, no racy file)
   * without comparing them with the files' bytes again.
   */
  trustedBlocks: number;
  /**
   * Of the trusted blocks, how many gave the diffID their bytes unpacked from the cache rather than read
   * from the files (blocks of many small files, on a rebuild that reads few blocks).
   */
  unpackedBlocks: number;
  /** Whether nothing was read: no file changed since the recorded build. */
  unchanged: boolean;
  /**
   * Whether its blocks differ from the recorded build's: a blob no registry is likely to have, sent without
   * asking (a layer read again only because a file looked racy has the recorded blocks, so most likely the
   * recorded blob, and is asked about).
   */
  fresh: boolean;
  /**
   * Make the layer's cached blocks whole again after open() found one damaged (it removed it): the layer
   * is built again, recompressing what is missing. Fails when the files changed meanwhile (another blob).
   */
  repair(): Promise<void>;
}

function layerOf(
  record: LayerRecord,
  cache: BlockCache,
  mediaType: string,
  createdBy: string,
  counts: { unchanged: boolean; same?: boolean; reused: number; trusted: number; unpacked?: number },
  rebuild: () => Promise<BuiltLayer>,
): BuiltLayer {
  const descriptor: Descriptor = { mediaType, digest: record.digest, size: record.size };
  return {
    async repair() {
      const again = await rebuild();
      if (again.descriptor.digest !== record.digest) {
        throw new InputError(`layer ${createdBy}: its files changed while the image was being built`, {
          hint: "run the build again once they stay put",
        });
      }
    },
    descriptor,
    diffID: record.diffID,
    createdBy,
    tarSize: record.tarSize,
    blocks: record.blocks.length,
    reusedBlocks: counts.reused,
    trustedBlocks: counts.trusted,
    unpackedBlocks: counts.unpacked ?? 0,
    unchanged: counts.unchanged,
    fresh: !counts.unchanged && !counts.same,
    open: () => cache.open(record.blocks, descriptor, `layer ${record.digest}`),
  };
}

/** Keep a stat index beside its record; failing to is harmless (the next build lists the files). */
async function writeStatIndex(recordPath: string, index: Uint8Array): Promise<void> {
  await writeFileAtomic(statIndexPath(recordPath), index).catch(() => {});
}

/** The planning inputs of a build's options, with the codec's id. */
export function planOptionsOf(options: LayerBuildOptions, codecId: string): PlanOptions {
  return { cacheDir: options.cacheDir, codecId, chown: options.chown, preserveOwners: options.preserveOwners, mtime: options.mtime };
}

/** Where a layer's record lives and the fingerprint its sources have now (for tests and diagnostics). */
export async function layerState(source: LayerSource, options: LayerBuildOptions): Promise<{ recordPath: string; fingerprint: string }> {
  const codec = await createCodec(options.compression, options.level, options.gzipEngine);
  try {
    return layerFingerprint(source, planOptionsOf(options, codec.id));
  } finally {
    await codec.close();
  }
}

/** A layer the recorded build made, none of its files changed: nothing is read. */
async function unchangedLayer(
  plan: PlannedLayer & { kind: "unchanged" },
  cache: BlockCache,
  options: LayerBuildOptions,
  createdBy: string,
  label: string,
  rebuild: () => Promise<BuiltLayer>,
): Promise<BuiltLayer> {
  const { record } = plan;
  await touchCacheEntry(plan.recordPath); // its blocks count as used now (cache-prune.ts)
  if (plan.statIndex) await writeStatIndex(plan.recordPath, plan.statIndex);
  options.progress?.({ phase: "skipped", kind: "build", id: label, bytes: record.tarSize, total: record.tarSize });
  // No tee: the blob was produced before, and the caller asks the destination whether it has it.
  const blocks = record.blocks.length;
  return layerOf(record, cache, options.mediaType, createdBy, { unchanged: true, reused: blocks, trusted: blocks }, rebuild);
}

/** The packed plan of a tree, or of a tarball read now (its contents spooled to a temp file removed by `cleanup`). */
async function packedPlanOf(
  source: LayerSource,
  plan: PlannedLayer & { kind: "tree" | "tarball" },
  options: LayerBuildOptions,
): Promise<{ packed: PackedPlan; cleanup(): void }> {
  if (plan.kind === "tree") return { packed: plan.packed, cleanup() {} };
  const tmp = join(options.cacheDir, "tmp");
  mkdirSync(tmp, { recursive: true });
  await removeStaleTemps(tmp, "spool"); // spools of killed runs
  const spool = tempPathFor(join(tmp, "spool"));
  trackTemp(spool);
  const cleanup = (): void => {
    rmSync(spool, { force: true });
    untrackTemp(spool);
  };
  try {
    // Loaded here: a build from directories has no use for the tarball reader, and skips loading it.
    const { planTarball } = await import("./tarball.js");
    const spooling = planTarball(source.source, source.dest, plan.entryOptions, spool, plan.stat, options.signal, options.warn);
    return { packed: packPlan(await withSystemPath(tmp, () => spooling)), cleanup };
  } catch (error) {
    cleanup();
    throw error;
  }
}

/** Produce a changed layer from its plan and record it (the record first, then what names it: stat index, plan file). */
async function changedLayer(
  source: LayerSource,
  plan: PlannedLayer & { kind: "tree" | "tarball" },
  codec: BlockCodec,
  cache: BlockCache,
  options: LayerBuildOptions,
  createdBy: string,
  rebuild: () => Promise<BuiltLayer>,
): Promise<BuiltLayer> {
  const { packed, cleanup } = await packedPlanOf(source, plan, options);
  try {
    const { recordPath, fingerprint, scanStartNs } = plan;
    const statIndex = plan.kind === "tree" ? plan.statIndex : undefined;
    const previous = plan.kind === "tree" ? plan.previous : undefined;
    const xattrs = plan.kind === "tree" && plan.xattrs;
    const produced = await produce(packed, codec, cache, options, source.source, previous);
    const built: LayerRecord = {
      version: recordVersion,
      fingerprint,
      scanStartNs,
      diffID: produced.diffID,
      digest: produced.digest,
      size: produced.size,
      tarSize: packed.cuts[packed.cuts.length - 1] as number,
      blocks: produced.blocks,
      ...(xattrs ? { xattrs } : {}),
    };
    // A tarball read as a stream has no record: nothing tells whether the next one is the same.
    if (recordPath !== "") await writeFileAtomic(recordPath, encodeRecord(built));
    // After the record: an index or a plan names the record it belongs to, so one left from another
    // build is ignored.
    if (statIndex) await writeStatIndex(recordPath, statIndex);
    if (statIndex) await writePlanFile(recordPath, fingerprint, packed);
    return layerOf(built, cache, options.mediaType, createdBy, { unchanged: false, ...produced }, rebuild);
  } finally {
    cleanup();
  }
}

/** The history line of a layer: the options' own, or "ocify layer KIND -> DEST" (never a host path). */
export function createdByOf(source: LayerSource, options: Pick<LayerBuildOptions, "createdBy" | "preserveOwners">): string {
  return options.createdBy ?? `ocify layer ${layerSourceKind(source.source, options.preserveOwners ?? false)} -> ${source.dest}`;
}

/**
 * Build a layer from a directory, a file or a tarball into the cache (or reuse what an earlier build left
 * there). `planned` is the layer's plan made ahead (by the planner thread, while the base image was being
 * resolved); without it, or when it was made with other options, the layer is planned here.
 */
export async function buildLayer(
  source: LayerSource,
  options: LayerBuildOptions,
  planned?: Promise<PlannedLayer | undefined>,
): Promise<BuiltLayer> {
  options.signal?.throwIfAborted();
  const createdBy = createdByOf(source, options);
  // A repair plans the layer anew (the damaged blocks are gone by then) and sends nothing while it builds.
  const rebuild = () => {
    const { tee: _sent, ...quiet } = options;
    return buildLayer(source, quiet);
  };
  const cache = new BlockCache(options.cacheDir);
  const codec = await createCodec(options.compression, options.level, options.gzipEngine);
  try {
    const planOptions = planOptionsOf(options, codec.id);
    let plan = await planned;
    if (plan?.key !== planKeyOf(planOptions)) plan = planLayer(source, planOptions);
    if (plan.kind === "unchanged") return await unchangedLayer(plan, cache, options, createdBy, source.source, rebuild);
    return await changedLayer(source, plan, codec, cache, options, createdBy, rebuild);
  } finally {
    await codec.close();
  }
}

/** `docker import`: a root filesystem directory or tarball as one layer at "/", owners, modes, devices and links kept. */
export function importRootfs(path: string, options: Omit<LayerBuildOptions, "preserveOwners">): Promise<BuiltLayer> {
  return buildLayer(
    { source: path, dest: "/" },
    { createdBy: `ocify import ${layerSourceKind(path, true)}`, ...options, preserveOwners: true },
  );
}
