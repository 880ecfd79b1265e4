/**
 * Layer planning: everything decided before any file content is read. A layer's sources are listed and
 * stat'ed, fingerprinted, and compared with the record the previous build of the same sources left; an
 * unchanged layer is reused as recorded, a changed one leaves with its packed plan (block cuts and
 * headers in shared memory). Runs on the main thread or in the planner worker (planner.ts): it is
 * synchronous and does no I/O but listing, lstat and reading the small record.
 */
import { createHash } from "node:crypto";
import { type BigIntStats, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Digest } from "../digest.js";
import { UsageError } from "../errors.js";
import { BlockCache, type BlockInfo } from "./block-cache.js";
import { type PackedPlan, packPlan, planFingerprint } from "./blocks.js";
import {
  Detectors,
  detectorSize,
  type EntryOptions,
  isStreamSource,
  isTarballName,
  type LayerSource,
  planPath,
  statLayerSource,
} from "./plan.js";
import { patchPlan, readPlanFile } from "./plan-file.js";
import { compareStats, isContentChange, type StatChange, StatIndexBuilder, updatedStatIndex } from "./stat-index.js";
import { readXattrs } from "./xattrs.js";

export type { LayerSource } from "./plan.js";

/** What decides a layer's bytes besides its files. */
export interface PlanOptions {
  /** The ocify cache root (records in `<cacheDir>/layers`, blocks in `<cacheDir>/blocks`). */
  cacheDir: string;
  /** The block codec's id (compression, level, implementation). */
  codecId: string;
  /** Owner of every entry (default 0:0). */
  chown?: { uid: number; gid: number } | undefined;
  /** Keep on-disk (or in-archive) owners. */
  preserveOwners?: boolean | undefined;
  /** Seconds since the epoch for every entry's mtime. */
  mtime?: number | undefined;
}

/** What a build of a layer leaves in `<cacheDir>/layers`, keyed by the layer's identity. */
export interface LayerRecord {
  version: number;
  fingerprint: string;
  /** When the build that wrote this record started listing files (ns since the epoch), for the racy-clean check. */
  scanStartNs: string;
  diffID: Digest;
  digest: Digest;
  size: number;
  tarSize: number;
  blocks: BlockInfo[];
  /** Some entry of a directory layer had xattrs: a directory whose ctime alone moved may have lost them. */
  xattrs?: boolean;
}

/** 2: records carry a check of their own bytes. */
export const recordVersion = 2;

/** The blocks of a layer's previous build, and when that build began listing files. */
export interface Previous {
  scanStartNs: string;
  blocks: BlockInfo[];
}

/**
 * A planned layer. Plain data (shared memory for the plan), so it crosses from the planner worker as is.
 * `key` says which options it was planned with (planKeyOf): a plan is used only by a build with the same.
 */
export type PlannedLayer =
  /**
   * No file changed since the recorded build (detectors equal, racy-clean) and every block is cached.
   * `statIndex` is a fresh stat index to keep beside the record, when the layer had to be listed.
   */
  | { kind: "unchanged"; key: string; record: LayerRecord; recordPath: string; statIndex?: Uint8Array | undefined }
  /**
   * A directory or file source to build: its packed plan, and what the previous build of the same
   * sources recorded (its blocks, trusted where no file changed: see build.ts).
   */
  | {
      kind: "tree";
      key: string;
      recordPath: string;
      fingerprint: string;
      scanStartNs: string;
      packed: PackedPlan;
      previous?: Previous | undefined;
      /** The stat index to keep beside the new record. */
      statIndex: Uint8Array;
      /** Made by patching the previous build's plan (plan-file.ts), not by listing the tree. */
      patched: boolean;
      /** Some entry has xattrs (LayerRecord.xattrs). */
      xattrs: boolean;
    }
  /**
   * A tarball: planned while it is read (asynchronously), on the main thread. `stat` is the file's; a
   * tarball that arrives as a stream (standard input, a FIFO) has none, and leaves no record: it can be
   * read only once, and nothing tells whether the next one is the same.
   */
  | {
      kind: "tarball";
      key: string;
      recordPath: string;
      fingerprint: string;
      scanStartNs: string;
      entryOptions: EntryOptions;
      stat?: BigIntStats | undefined;
    };

/** Where a record's stat index lives. */
export function statIndexPath(recordPath: string): string {
  return `${recordPath}.stat`;
}

function readStatIndex(recordPath: string): Buffer | undefined {
  try {
    return readFileSync(statIndexPath(recordPath));
  } catch {
    return undefined;
  }
}

/** A record as stored: its JSON with a `check` field last, a hash of the JSON before it. */
export function encodeRecord(record: LayerRecord): string {
  const json = JSON.stringify(record);
  return `${json.slice(0, -1)},"check":"${recordCheck(json)}"}`;
}

function recordCheck(json: string): string {
  return createHash("sha256").update(json).digest("hex").slice(0, 32);
}

/**
 * The record at `path`; undefined when it is missing, of another version or damaged (its check does not
 * match: a flipped digest or CRC would otherwise make the build trust blocks that are not the layer's).
 */
export function readRecord(path: string): LayerRecord | undefined {
  try {
    const { check, ...record } = JSON.parse(readFileSync(path, "utf8")) as LayerRecord & { check?: unknown };
    if (record.version !== recordVersion || !Array.isArray(record.blocks)) return undefined;
    return check === recordCheck(JSON.stringify(record)) ? record : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a file could have changed without its change detector changing: its mtime is too close to (or
 * after) the moment the recorded build began listing files. Like git's racy-clean rule; a coarse
 * timestamp (whole seconds) gets a 2 s margin, a fine one 100 ms.
 */
export function isRacy(mtimeNs: bigint, scanStartNs: bigint): boolean {
  const margin = mtimeNs % 1_000_000_000n === 0n ? 2_000_000_000n : 100_000_000n;
  return mtimeNs + margin >= scanStartNs;
}

function anyRacy(detectors: Detectors, scanStartNs: bigint): boolean {
  for (let i = 0; i < detectors.count; i++) if (isRacy(detectors.mtimeNs(i), scanStartNs)) return true;
  return false;
}

/** anyRacy over a packed plan's detectors (an entry without content has none). */
function anyRacyPacked(packed: PackedPlan, scanStartNs: bigint): boolean {
  const words = new BigUint64Array(packed.detectors.buffer, packed.detectors.byteOffset, packed.detectors.length / 8);
  for (let i = 0; i < packed.size.length; i++) {
    if ((packed.size[i] as number) > 0 && isRacy(words[(i * detectorSize) / 8 + 1] as bigint, scanStartNs)) return true;
  }
  return false;
}

function entryOptionsOf(options: PlanOptions): EntryOptions {
  return {
    uid: options.chown?.uid ?? 0,
    gid: options.chown?.gid ?? 0,
    preserveOwners: options.preserveOwners ?? false,
    mtime: options.mtime ?? 0,
  };
}

/**
 * Where a layer's record lives: a digest of its identity (the source's absolute path, destination, codec
 * and entry options). The media type is not part of it: Docker and OCI layers have the same bytes.
 */
function identityOf(source: LayerSource, options: PlanOptions, tarball: boolean): { identity: string; recordPath: string } {
  const identity = JSON.stringify([
    recordVersion,
    resolve(source.source),
    source.dest,
    options.codecId,
    entryOptionsOf(options),
    // "tarball-2": tarball layers keep owners, owner names and xattrs since; records of before are not theirs.
    tarball ? "tarball-2" : "tree",
  ]);
  const recordPath = join(options.cacheDir, "layers", `${createHash("sha256").update(identity).digest("hex")}.json`);
  return { identity, recordPath };
}

/** Everything in the options that decides a plan: a plan made with another key is not this build's. */
export function planKeyOf(options: PlanOptions): string {
  return JSON.stringify([options.cacheDir, options.codecId, entryOptionsOf(options)]);
}

/** Where a layer's record lives and the fingerprint its sources have now (for tests and diagnostics). */
export function layerFingerprint(source: LayerSource, options: PlanOptions): { recordPath: string; fingerprint: string } {
  const planned = planLayer(source, options);
  const fingerprint = planned.kind === "unchanged" ? planned.record.fingerprint : planned.fingerprint;
  return { recordPath: planned.recordPath, fingerprint };
}

/** List and stat a layer's sources and decide: reuse the recorded layer, or build from this plan. */
export function planLayer(source: LayerSource, options: PlanOptions): PlannedLayer {
  const scanStartNs = BigInt(Date.now()) * 1_000_000n;
  if (!source.dest.startsWith("/"))
    throw new UsageError(`layer destination "${source.dest}" is not an absolute path`, { hint: "write SRC:/path" });
  const entryOptions = entryOptionsOf(options);
  const key = planKeyOf(options);
  // A tarball's entries keep the owners the archive gives them, unless --chown says otherwise.
  const tarOptions = { ...entryOptions, preserveOwners: entryOptions.preserveOwners || options.chown === undefined };
  if (isStreamSource(source.source))
    return { kind: "tarball", key, recordPath: "", fingerprint: "", scanStartNs: String(scanStartNs), entryOptions: tarOptions };
  const top = statLayerSource(source.source);
  const tarball = top.isFile() && (isTarballName(source.source) || entryOptions.preserveOwners);
  const { identity, recordPath } = identityOf(source, options, tarball);
  const record = readRecord(recordPath);
  const blocksCached = (recorded: LayerRecord): boolean => new BlockCache(options.cacheDir).has(recorded.blocks);
  const reusable = (fingerprint: string, detectors: Detectors): LayerRecord | undefined => {
    if (!record || record.fingerprint !== fingerprint || anyRacy(detectors, BigInt(record.scanStartNs))) return undefined;
    return blocksCached(record) ? record : undefined;
  };
  if (tarball) {
    const detectors = new Detectors();
    detectors.add(top);
    const fingerprint = createHash("sha256").update(identity).update(detectors.bytes(0)).digest("hex");
    const reused = reusable(fingerprint, detectors);
    if (reused) return { kind: "unchanged", key, record: reused, recordPath };
    return { kind: "tarball", key, recordPath, fingerprint, scanStartNs: String(scanStartNs), entryOptions: tarOptions, stat: top };
  }
  // The quick way first: the paths the recorded build listed, stat'ed again. When only files' contents
  // changed, the recorded build's plan is patched (plan-file.ts); when anything else changed, the listing
  // below takes the fresh lstats from here and only lists the directories.
  let known: Map<string, BigIntStats> | undefined;
  if (record) {
    const quick = quickPlan({ key, identity, recordPath, record, scanStartNs, blocksCached });
    if (quick && "kind" in quick) return quick;
    known = quick?.known;
  }
  const index = new StatIndexBuilder();
  const plan = planPath(source.source, source.dest, entryOptions, index, known);
  const packed = packPlan(plan);
  const fingerprint = planFingerprint(packed, identity);
  const statIndex = index.encode(fingerprint, scanStartNs);
  const reused = reusable(fingerprint, plan.detectors);
  if (reused) return { kind: "unchanged", key, record: reused, recordPath, statIndex };
  return treePlan(
    key,
    recordPath,
    fingerprint,
    scanStartNs,
    packed,
    record,
    statIndex,
    plan.entries.some((entry) => entry.pax),
  );
}

/** What the quick way needs: the layer's identity and record, and the planLayer's own arguments. */
interface QuickInputs {
  key: string;
  identity: string;
  recordPath: string;
  record: LayerRecord;
  scanStartNs: bigint;
  blocksCached(record: LayerRecord): boolean;
}

/**
 * The quick way of planLayer: compare the recorded build's stat index with the files. Returns the plan
 * (unchanged, or the recorded plan patched), or the fresh lstats for the listing to take (`known`), or
 * undefined when there is no index.
 */
function quickPlan(inputs: QuickInputs): PlannedLayer | { known: Map<string, BigIntStats> | undefined } | undefined {
  const { key, identity, recordPath, record, scanStartNs, blocksCached } = inputs;
  const index = readStatIndex(recordPath);
  if (!index) return undefined;
  const compared = compareStats(index, record.fingerprint, isRacy);
  const refreshed = compared.refreshed ?? [];
  // xattrs are not in the index: a path whose ctime moved may have gained or lost some, which the listing reads.
  if (xattrsMayHaveMoved(record, compared.changes, refreshed)) return { known: compared.stats };
  if (compared.unchanged && blocksCached(record)) {
    // Directories whose ctime alone moved keep their new lstat, so the next build need not read their names.
    // Nothing was racy against the recorded scan, so the index may say it was taken now.
    const statIndex = refreshed.length > 0 ? updatedStatIndex(index, refreshed, record.fingerprint, scanStartNs) : undefined;
    return { kind: "unchanged", key, record, recordPath, ...(statIndex ? { statIndex } : {}) };
  }
  const { changes } = compared;
  const recorded = changes?.every(isContentChange) ? readPlanFile(recordPath, record.fingerprint) : undefined;
  const patched = recorded && changes && patchPlan(recorded, changes);
  if (patched && changes) {
    const fingerprint = planFingerprint(patched, identity);
    const statIndex = updatedStatIndex(index, [...changes, ...refreshed], fingerprint, scanStartNs);
    if (fingerprint === record.fingerprint && !anyRacyPacked(patched, BigInt(record.scanStartNs)) && blocksCached(record)) {
      return { kind: "unchanged", key, record, recordPath, statIndex };
    }
    const plan = treePlan(key, recordPath, fingerprint, scanStartNs, patched, record, statIndex, record.xattrs ?? false);
    return { ...plan, patched: true };
  }
  return { known: compared.stats };
}

/**
 * Whether a path the stat check found changed may have gained or lost xattrs that the recorded plan does
 * not show: a changed path that has layer xattrs now (one llistxattr each; a file that had some has a pax
 * header, which patchPlan does not patch), or a directory whose ctime alone moved in a layer that had any.
 */
function xattrsMayHaveMoved(record: LayerRecord, changes: readonly StatChange[] | undefined, refreshed: readonly StatChange[]): boolean {
  if (record.xattrs && refreshed.length > 0) return true;
  return [...(changes ?? []), ...refreshed].some((change) => readXattrs(change.path) !== undefined);
}

function treePlan(
  key: string,
  recordPath: string,
  fingerprint: string,
  scanStartNs: bigint,
  packed: PackedPlan,
  record: LayerRecord | undefined,
  statIndex: Uint8Array,
  xattrs: boolean,
): PlannedLayer & { kind: "tree" } {
  const previous = record && { scanStartNs: record.scanStartNs, blocks: record.blocks };
  return {
    kind: "tree",
    key,
    recordPath,
    fingerprint,
    scanStartNs: String(scanStartNs),
    packed,
    previous,
    statIndex,
    patched: false,
    xattrs,
  };
}
