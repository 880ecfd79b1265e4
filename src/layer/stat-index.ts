/**
 * The stat index of a directory layer: every path the build listed, with its lstat, kept beside the
 * layer's record. The next build can then tell that nothing changed by stat'ing those paths again, without
 * listing directories or planning the tar: a name added, removed or renamed changes its directory's mtime
 * and ctime; a mode, owner, size, link count or content change changes the entry's ctime (and mtime). A
 * difference anywhere, or a racy timestamp, sends the build back to the full listing, but for a
 * directory whose ctime alone moved and whose names are still the recorded ones.
 *
 * The paths are kept in the tar's order (the root, then the others sorted as the tar's entries are), so
 * the first difference a comparison meets is the first the tar has: every block that ends before it is
 * the previous build's, which lets a rebuild start sending those while the check goes on (prepare.ts).
 */
import { type BigIntStats, lstatSync, readdirSync, type Stats, statSync } from "node:fs";
import { fsPath } from "./fs-path.js";

/**
 * Fields compared per path: what lstat says about the entry and its place in the tree, as the numbers a
 * plain (not bigint) lstat gives: comparing those costs no BigInt, and checking 20,000 paths took 20-30%
 * less time than with bigint stats (the collector had most of the difference). Times are then in
 * milliseconds with a fraction (~0.25 µs steps today): a change closer than that to the recorded time
 * would also have to keep the size, inode and ctime step to go unseen.
 */
const fields = 10;
/** Paths per chunk of a builder's values (640 KiB). */
const chunkPaths = 8192;
const magic = 0x34697473; // "sti4" (sti3 held bigint stats, sti2 kept the walk's order)
/** magic, count, the record's fingerprint, the walk's start (ns). */
const headSize = 4 + 4 + 64 + 8;

/** Collects the lstat of every path a directory walk visits, in visit order. */
export class StatIndexBuilder {
  readonly #paths: string[] = [];
  /**
   * The values, `chunkPaths` paths' worth a chunk: growing adds a chunk and copies nothing (doubling one
   * array held up to twice what 300,000 paths need, and both arrays while it grew).
   */
  readonly #chunks: Float64Array[] = [];

  /** Record a path (a latin1 string, as the walk uses) and its lstat (its stat for the walk's root). */
  add(path: string, stat: BigIntStats): void {
    const n = this.#paths.length;
    if (n % chunkPaths === 0) this.#chunks.push(new Float64Array(fields * chunkPaths));
    writeBigTuple(this.#chunks[this.#chunks.length - 1] as Float64Array, (n % chunkPaths) * fields, stat);
    this.#paths.push(path);
  }

  /**
   * The index as bytes, in the tar's order (the root first, then by path: the paths below one root sort
   * as their entries' names do), tied to the record whose fingerprint is given, with the moment the walk
   * began (for the racy check: the stats are as of then).
   */
  encode(fingerprint: string, scanStartNs: bigint): Buffer {
    const paths = this.#paths;
    const count = paths.length;
    const order = Array.from({ length: count }, (_, i) => i);
    // latin1 strings hold one byte per UTF-16 unit, so comparing them compares the bytes.
    order.sort((a, b) => (a === 0 ? -1 : b === 0 ? 1 : (paths[a] as string) < (paths[b] as string) ? -1 : 1));
    const pathBytes = paths.reduce((sum, p) => sum + 2 + p.length, 0);
    const head = headSize;
    const valuesAt = align8(head + pathBytes);
    const out = Buffer.alloc(valuesAt + count * fields * 8);
    out.writeUInt32LE(magic, 0);
    out.writeUInt32LE(count, 4);
    out.write(fingerprintField(fingerprint), 8, "latin1");
    out.writeBigUInt64LE(BigInt.asUintN(64, scanStartNs), 72);
    const values = new Float64Array(out.buffer, out.byteOffset + valuesAt, count * fields);
    let at = head;
    for (const [i, from] of order.entries()) {
      const path = paths[from] as string;
      at = out.writeUInt16LE(path.length, at);
      at += out.write(path, at, "latin1");
      const chunk = this.#chunks[Math.floor(from / chunkPaths)] as Float64Array;
      const source = (from % chunkPaths) * fields;
      for (let f = 0; f < fields; f++) values[i * fields + f] = chunk[source + f] as number;
    }
    return out;
  }
}

/** A record's fingerprint as the 64-byte field an index or a plan file carries (latin1). */
export function fingerprintField(fingerprint: string): string {
  return fingerprint.padEnd(64, " ").slice(0, 64);
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** A plain lstat's tuple. */
function writeTuple(values: Float64Array, at: number, stat: Stats): void {
  values[at] = stat.mode;
  values[at + 1] = stat.uid;
  values[at + 2] = stat.gid;
  values[at + 3] = stat.size;
  values[at + 4] = stat.mtimeMs;
  values[at + 5] = stat.ctimeMs;
  values[at + 6] = stat.ino;
  values[at + 7] = stat.dev;
  values[at + 8] = stat.nlink;
  values[at + 9] = stat.rdev;
}

/** The tuple a plain lstat of the same entry gives, from a bigint lstat (the walk's). */
function writeBigTuple(values: Float64Array, at: number, stat: BigIntStats): void {
  values[at] = Number(stat.mode);
  values[at + 1] = Number(stat.uid);
  values[at + 2] = Number(stat.gid);
  values[at + 3] = Number(stat.size);
  values[at + 4] = millisecondsOf(stat.mtimeNs);
  values[at + 5] = millisecondsOf(stat.ctimeNs);
  values[at + 6] = Number(stat.ino);
  values[at + 7] = Number(stat.dev);
  values[at + 8] = Number(stat.nlink);
  values[at + 9] = Number(stat.rdev);
}

const nsPerSecond = 1_000_000_000n;

/** A time in ns as Node's plain stats give it in ms: the same arithmetic on the same seconds and ns, so the same double. */
export function millisecondsOf(ns: bigint): number {
  let seconds = ns / nsPerSecond;
  let rest = ns - seconds * nsPerSecond;
  if (rest < 0n) {
    seconds -= 1n;
    rest += nsPerSecond;
  }
  return Number(seconds) * 1e3 + Number(rest) / 1e6;
}

/** The widest racy margin (isRacy's, for whole-second times), in ms, and a little more for rounding. */
const widestRacyMarginMs = 2000 + 1;

/**
 * Whether every path of the index still has the lstat it had, none of them racy (`isRacy`) against the
 * moment the index's walk began, and the index belongs to the record (`fingerprint`). The first path (the
 * walk's root) is stat'ed, the others lstat'ed, as the walk did. False on any doubt: a damaged index, a
 * missing path, a difference.
 */
export function unchangedSince(index: Buffer, fingerprint: string, isRacy: (ns: bigint, scanStartNs: bigint) => boolean): boolean {
  return compareStats(index, fingerprint, isRacy).unchanged;
}

/**
 * A path whose lstat differs from the index's: its position in the index, its tuple then (`before`,
 * `fields` values) and its lstat now.
 */
export interface StatChange {
  at: number;
  path: string;
  before: Float64Array;
  stat: BigIntStats;
}

const fileType = 0o170000;
const regularFile = 0o100000;
/** Tuple fields (see writeTuple) a content change keeps: mode, uid, gid, inode, device, links, rdev. */
const steadyFields = [0, 1, 2, 6, 7, 8, 9];

/**
 * Whether a change is a change of a regular file's contents only: a file with content before and after,
 * not hard-linked, the same inode, mode and owner; only its size and times differ. Such a change moves
 * no name in the tree; any other does, or changes a header field that only a listing sets right.
 */
export function isContentChange(change: StatChange): boolean {
  const { before, stat } = change;
  const now = new Float64Array(fields);
  writeBigTuple(now, 0, stat);
  if (((now[0] as number) & fileType) !== regularFile || now[8] !== 1 || before[3] === 0 || now[3] === 0) return false;
  return steadyFields.every((f) => before[f] === now[f]);
}

const directory = 0o040000;
const ctimeField = 5;

/**
 * Whether only a directory's ctime moved: its mode, owner, size, mtime, inode and links are as recorded.
 * A name added, removed or renamed in it changes its mtime too, unless a tool put the mtime back (as tar
 * and rsync do), so the names are compared before such a directory counts as unchanged (`sameNames`).
 * Tools that only touch metadata do this: umoci's rootless mode changes a directory's permissions and
 * puts them back while it reads a tree, chmod or chown to the same values, setting an ACL or an xattr.
 */
function isDirectoryCtimeOnly(before: Float64Array, now: Float64Array): boolean {
  if (((now[0] as number) & fileType) !== directory) return false;
  for (let f = 0; f < fields; f++) if (f !== ctimeField && before[f] !== now[f]) return false;
  return true;
}

/** What comparing an index with the files found. */
export interface StatComparison {
  unchanged: boolean;
  /**
   * Directories whose ctime alone moved and whose names are the recorded ones: the same for the tar, their
   * fresh lstat to keep in the next index (updatedStatIndex).
   */
  refreshed?: StatChange[];
  /**
   * The fresh lstat of every path after the first change that is not a content change (isContentChange):
   * the walk takes them from here. When every change is a content change, none is kept.
   */
  stats?: Map<string, BigIntStats>;
  /** The paths that differ (not those only racy). Absent when the index is damaged or a path is gone. */
  changes?: StatChange[];
}

/** An index's paths and recorded values, when it is whole and belongs to the record of `fingerprint`. */
function readIndex(index: Buffer, fingerprint: string): { scanStartNs: bigint; paths: string[]; values: Float64Array } | undefined {
  if (index.length < headSize || index.readUInt32LE(0) !== magic) return undefined;
  if (index.toString("latin1", 8, 72) !== fingerprintField(fingerprint)) return undefined;
  const scanStartNs = index.readBigUInt64LE(72);
  const count = index.readUInt32LE(4);
  const paths: string[] = [];
  let at = headSize;
  for (let i = 0; i < count; i++) {
    const length = index.readUInt16LE(at);
    paths.push(index.toString("latin1", at + 2, at + 2 + length));
    at += 2 + length;
  }
  const valuesAt = align8(at);
  if (index.length !== valuesAt + count * fields * 8) return undefined;
  return { scanStartNs, paths, values: new Float64Array(index.buffer.slice(index.byteOffset + valuesAt, index.byteOffset + index.length)) };
}

/**
 * Whether a directory holds the names the index recorded below it (read from disk as `name`). The
 * recorded names of every directory are gathered the first time one is needed.
 */
function recordedNames(paths: readonly string[]): (dir: string, name: string | Buffer) => boolean {
  let children: Map<string, string[]> | undefined;
  return (dir, name) => {
    if (!children) {
      children = new Map();
      for (let j = 1; j < paths.length; j++) {
        const p = paths[j] as string;
        const cut = p.lastIndexOf("/");
        const parent = p.slice(0, cut);
        const list = children.get(parent);
        if (list) list.push(p.slice(cut + 1));
        else children.set(parent, [p.slice(cut + 1)]);
      }
    }
    const recorded = children.get(dir) ?? [];
    const present = readdirSync(name, { encoding: "latin1" });
    if (present.length !== recorded.length) return false;
    present.sort();
    const sorted = [...recorded].sort();
    return present.every((n, k) => n === sorted[k]);
  };
}

/**
 * unchangedSince, and the paths that differ. When they all changed contents only, the previous plan is
 * patched with them (plan-file.ts); otherwise the walk that follows takes the fresh lstat of the paths
 * after the first other change from `stats` instead of stat'ing them a second time (a patchable or
 * unchanged layer keeps none: holding 20,000 stats costs time in the collector). No `changes` when the
 * index is damaged or a path is gone.
 */
export function compareStats(index: Buffer, fingerprint: string, isRacy: (ns: bigint, scanStartNs: bigint) => boolean): StatComparison {
  try {
    const read = readIndex(index, fingerprint);
    if (!read) return { unchanged: false };
    const { scanStartNs, paths, values } = read;
    const count = paths.length;
    // Within the widest racy margin of the walk's start, isRacy decides on the exact (bigint) times.
    const racyFromMs = millisecondsOf(scanStartNs) - widestRacyMarginMs;
    const now = new Float64Array(fields);
    const stats = new Map<string, BigIntStats>();
    const changes: StatChange[] = [];
    const refreshed: StatChange[] = [];
    let unchanged = true;
    let listing = false;
    const sameNames = recordedNames(paths);
    for (let i = 0; i < count; i++) {
      const path = paths[i] as string;
      const name = fsPath(path);
      // A listing to come takes every stat from here on, as bigint stats (its detectors keep ns).
      let big: BigIntStats | undefined;
      if (listing) {
        big = statOf(i, name, true);
        stats.set(path, big);
        writeBigTuple(now, 0, big);
      } else writeTuple(now, 0, statOf(i, name, false));
      const at = i * fields;
      let same = true;
      for (let f = 0; f < fields && same; f++) if (now[f] !== values[at + f]) same = false;
      // Its names compared now, such a directory is the same whatever its times say: not racy either.
      let verified = false;
      if (!same && !listing && isDirectoryCtimeOnly(values.subarray(at, at + fields), now) && sameNames(path, name)) {
        big ??= statOf(i, name, true);
        refreshed.push({ at: i, path, before: values.subarray(at, at + fields), stat: big });
        same = true;
        verified = true;
      }
      const near = !verified && ((now[4] as number) >= racyFromMs || (now[5] as number) >= racyFromMs);
      if (!same || (unchanged && near)) big ??= statOf(i, name, true);
      if (!same) {
        const change = { at: i, path, before: values.subarray(at, at + fields), stat: big as BigIntStats };
        changes.push(change);
        if (!listing && (i === 0 || !isContentChange(change))) listing = true;
      }
      if (unchanged && (!same || (near && big && (isRacy(big.mtimeNs, scanStartNs) || isRacy(big.ctimeNs, scanStartNs))))) {
        unchanged = false;
      }
    }
    return unchanged ? { unchanged, refreshed } : { unchanged, stats, changes, refreshed };
  } catch {
    return { unchanged: false };
  }
}

/** The stat of an index's path `i` as the walk took it: the root's followed (stat), the others' not (lstat). */
function statOf(i: number, name: string | Buffer, bigint: true): BigIntStats;
function statOf(i: number, name: string | Buffer, bigint: false): Stats;
function statOf(i: number, name: string | Buffer, bigint: boolean): Stats | BigIntStats {
  return i === 0 ? statSync(name, { bigint }) : lstatSync(name, { bigint });
}

/**
 * The index of the same paths after `changes` (their fresh tuples), tied to another record and scan: what
 * a walk of the same tree would have found, without the walk. The order is kept (every path is compared
 * anyway).
 */
export function updatedStatIndex(index: Buffer, changes: readonly StatChange[], fingerprint: string, scanStartNs: bigint): Buffer {
  const out = Buffer.from(index);
  out.write(fingerprintField(fingerprint), 8, "latin1");
  out.writeBigUInt64LE(BigInt.asUintN(64, scanStartNs), 72);
  const count = out.readUInt32LE(4);
  const valuesAt = out.length - count * fields * 8;
  const tuple = new Float64Array(fields);
  for (const change of changes) {
    writeBigTuple(tuple, 0, change.stat);
    Buffer.from(tuple.buffer).copy(out, valuesAt + change.at * fields * 8);
  }
  return out;
}
