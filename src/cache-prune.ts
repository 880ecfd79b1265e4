/**
 * Keeping the cache bounded: what it holds (`ocify cache info`), and removing what was used least
 * recently until it fits a size, or what was not used for a while (`ocify cache prune`). A layer record
 * counts as used when a build reads it (builds touch it), and its blocks as used when it is; kept blobs
 * when they are opened. What a running build relies on may go: the next read finds it missing and
 * rebuilds or fetches it (a damaged or missing entry is never a failed build). Temp files of killed runs
 * always go.
 */
import { readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { UsageError } from "./errors.js";
import { removeStaleTemps } from "./fs-atomic.js";

/** What a cache entry is. */
export type CacheEntryKind = "layer" | "block" | "blob" | "location" | "upload";

/** One entry: a layer (its record, stat index and plan), a block, a kept blob, a location or upload note. */
export interface CacheEntry {
  kind: CacheEntryKind;
  paths: string[];
  size: number;
  /** When it was last used (ms since the epoch). */
  usedMs: number;
}

/** What `ocify cache info` shows. */
export interface CacheSummary {
  dir: string;
  size: number;
  kinds: Record<CacheEntryKind, { count: number; size: number }>;
  oldestUseMs?: number;
  newestUseMs?: number;
}

/** The bound applied after builds when OCIFY_CACHE_MAX_SIZE does not say otherwise. */
export const defaultCacheMaxSize = 10 * 2 ** 30;
/** The automatic bound runs at most this often, and keeps what was used this recently. */
const boundEveryMs = 3600_000;

const entryKinds: readonly CacheEntryKind[] = ["layer", "block", "blob", "location", "upload"];
const noFiles = (): string[] => [];

/**
 * A file's size and last use: its mtime (touchCacheEntry sets it on each use), or its atime when later. A
 * layer record's atime is not a use (`recordsOnly`): reading records here, for their blocks, moves it.
 */
async function usedAt(path: string, recordsOnly = false): Promise<{ size: number; usedMs: number } | undefined> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) return undefined;
  return { size: info.size, usedMs: recordsOnly ? info.mtimeMs : Math.max(info.mtimeMs, info.atimeMs) };
}

async function layerEntries(dir: string, blockUse: Map<string, number>): Promise<CacheEntry[]> {
  const layers = join(dir, "layers");
  const names = await readdir(layers).catch(noFiles);
  const entries: CacheEntry[] = [];
  for (const name of names.filter((n) => n.endsWith(".json"))) {
    const record = join(layers, name);
    const used = await usedAt(record, true);
    if (!used) continue;
    const entry: CacheEntry = { kind: "layer", paths: [record], size: used.size, usedMs: used.usedMs };
    for (const extra of [`${record}.stat`, `${record}.plan`]) {
      const more = await usedAt(extra);
      if (more) {
        entry.paths.push(extra);
        entry.size += more.size;
      }
    }
    try {
      const { blocks } = JSON.parse(await readFile(record, "utf8")) as { blocks?: { key?: unknown }[] };
      for (const block of blocks ?? []) {
        if (typeof block.key === "string") blockUse.set(block.key, Math.max(blockUse.get(block.key) ?? 0, entry.usedMs));
      }
    } catch {
      // A damaged record protects no block; it goes with its age like any other.
    }
    entries.push(entry);
  }
  return entries;
}

async function filesUnder(dir: string, kind: CacheEntryKind, depth: number, use?: Map<string, number>): Promise<CacheEntry[]> {
  const entries: CacheEntry[] = [];
  for (const name of await readdir(dir).catch(noFiles)) {
    if (name.startsWith(".")) continue; // temp files: removeStaleTemps' business
    const path = join(dir, name);
    if (depth > 0) {
      entries.push(...(await filesUnder(path, kind, depth - 1, use)));
      continue;
    }
    const used = await usedAt(path);
    if (used) entries.push({ kind, paths: [path], size: used.size, usedMs: Math.max(used.usedMs, use?.get(name) ?? 0) });
  }
  return entries;
}

/** Every entry of the cache at `dir`. */
export async function cacheEntries(dir: string): Promise<CacheEntry[]> {
  const blockUse = new Map<string, number>();
  const layers = await layerEntries(dir, blockUse);
  return [
    ...layers,
    ...(await filesUnder(join(dir, "blocks"), "block", 1, blockUse)),
    ...(await filesUnder(join(dir, "blobs"), "blob", 1)),
    ...(await filesUnder(join(dir, "locations"), "location", 0)),
    ...(await filesUnder(join(dir, "uploads"), "upload", 0)),
  ];
}

/** What the cache holds, by kind. */
export async function cacheInfo(dir: string): Promise<CacheSummary> {
  const entries = await cacheEntries(dir);
  const kinds = Object.fromEntries(entryKinds.map((k) => [k, { count: 0, size: 0 }])) as CacheSummary["kinds"];
  const summary: CacheSummary = { dir, size: 0, kinds };
  for (const entry of entries) {
    kinds[entry.kind].count++;
    kinds[entry.kind].size += entry.size;
    summary.size += entry.size;
    summary.oldestUseMs = Math.min(summary.oldestUseMs ?? entry.usedMs, entry.usedMs);
    summary.newestUseMs = Math.max(summary.newestUseMs ?? entry.usedMs, entry.usedMs);
  }
  return summary;
}

/** How to prune. */
export interface PruneOptions {
  /** Remove least recently used entries until the cache holds at most this many bytes. */
  maxSize?: number | undefined;
  /** Remove entries not used for this long (ms). */
  olderThanMs?: number | undefined;
  /** Never remove entries used this recently (ms); default 0. */
  keepRecentMs?: number | undefined;
  now?: number | undefined;
}

/** What a prune did. */
export interface PruneResult {
  removed: number;
  freed: number;
  /** Bytes left. */
  size: number;
}

/** Remove entries as `options` ask, least recently used first, and the temp files of killed runs. */
export async function pruneCache(dir: string, options: PruneOptions): Promise<PruneResult> {
  await removeCacheTemps(dir);
  const now = options.now ?? Date.now();
  const entries = (await cacheEntries(dir)).sort((a, b) => a.usedMs - b.usedMs);
  let size = entries.reduce((sum, e) => sum + e.size, 0);
  const result: PruneResult = { removed: 0, freed: 0, size };
  for (const entry of entries) {
    if (options.keepRecentMs !== undefined && now - entry.usedMs < options.keepRecentMs) break;
    const old = options.olderThanMs !== undefined && now - entry.usedMs > options.olderThanMs;
    const over = options.maxSize !== undefined && size > options.maxSize;
    if (!old && !over) break; // the rest were used more recently still
    await Promise.all(entry.paths.map((path) => rm(path, { force: true })));
    size -= entry.size;
    result.removed++;
    result.freed += entry.size;
  }
  result.size = size;
  return result;
}

async function removeCacheTemps(dir: string): Promise<void> {
  await removeStaleTemps(join(dir, "tmp"));
  for (const sub of ["layers", "locations", "uploads", join("blobs", "sha256")]) await removeStaleTemps(join(dir, sub));
  for (const shard of await readdir(join(dir, "blocks")).catch(noFiles)) await removeStaleTemps(join(dir, "blocks", shard));
}

/**
 * The bound applied after a build: at most once an hour (a stamp file says when it last ran), the least
 * recently used entries go until the cache fits OCIFY_CACHE_MAX_SIZE (default 10 GiB; `off` disables
 * it); what was used in the last hour stays. Failing to is harmless.
 */
export async function boundCacheAfterBuild(dir: string, env: NodeJS.ProcessEnv = process.env): Promise<PruneResult | undefined> {
  const setting = env.OCIFY_CACHE_MAX_SIZE;
  if (setting === "off" || setting === "0") return undefined;
  const maxSize = setting ? parseSize(setting, "OCIFY_CACHE_MAX_SIZE") : defaultCacheMaxSize;
  const stamp = join(dir, "pruned");
  const last = await stat(stamp).catch(() => undefined);
  if (last && Date.now() - last.mtimeMs < boundEveryMs) return undefined;
  try {
    await writeFile(stamp, "");
    const now = new Date();
    await utimes(stamp, now, now);
    return await pruneCache(dir, { maxSize, keepRecentMs: boundEveryMs });
  } catch {
    return undefined;
  }
}

/** Mark a cache file as used now (the bound keeps what was used recently); failing to is harmless. */
export async function touchCacheEntry(path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch(() => {});
}

const sizeUnits: Record<string, number> = { "": 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** A size such as `500M`, `10G`, `1.5GiB`, `4096` (bytes); binary units. */
export function parseSize(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  const unit = sizeUnits[(match?.[2] ?? "").toLowerCase()];
  if (!match || unit === undefined) throw new UsageError(`${what} ${text}: expected a size such as 500M, 10G or 1.5GiB`);
  return Math.floor(Number(match[1]) * unit);
}

const durationUnits: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** A duration such as `30m`, `12h`, `7d`, `2w`. */
export function parseDuration(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  const unit = durationUnits[(match?.[2] ?? "").toLowerCase()];
  if (!match || unit === undefined) throw new UsageError(`${what} ${text}: expected a duration such as 12h, 7d or 2w`);
  return Number(match[1]) * unit;
}

/** A size for people: 1.5 GiB. */
export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}
