/**
 * The packed plan of a directory layer's last build, kept beside its record (`<record>.plan`). When the
 * next build's stat check finds that only regular files' contents changed (same paths, types, modes,
 * owners, inodes; other sizes or times), the new plan is this one with those files' sizes, headers and
 * change detectors patched and the block cuts computed again. No directory is listed and no header is
 * rebuilt: on a 20,000-file tree that was ~0.5 s before the first byte of a one-file rebuild.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { writeFileAtomic } from "../fs-atomic.js";
import { recordSize, rewriteUstarSize } from "../tar/header.js";
import { cutBlocks, type PackedPlan } from "./blocks.js";
import { compactInto, compactLength, expandInto } from "./compact-heads.js";
import { detectorSize } from "./plan.js";
import { fingerprintField, isContentChange, type StatChange } from "./stat-index.js";

const magic = 0x326e6c70; // "pln2": headers compacted (compact-heads.ts)
/** magic, entries, sources, cuts, the record's fingerprint, heads' and paths' byte lengths. */
const headSize = 4 + 4 + 4 + 4 + 64 + 8 + 8;

/** Where a record's plan lives. */
export function planFilePath(recordPath: string): string {
  return `${recordPath}.plan`;
}

const align8 = (n: number): number => (n + 7) & ~7;

/** Where each array of a packed plan lies in the file (8-aligned), and the file's size. */
function layoutOf(n: number, sources: number, cuts: number, headBytes: number, pathBytes: number) {
  const parts = [
    ["heads", headBytes],
    ["headEnd", n * 8],
    ["size", n * 8],
    ["sourceOffset", n * 8],
    ["detectors", n * detectorSize],
    ["source", n * 4],
    ["nameHash", n * 4],
    ["headSize", n * 4],
    ["paths", pathBytes],
    ["pathEnd", sources * 8],
    ["cuts", cuts * 8],
  ] as const;
  let at = align8(headSize);
  const placed = parts.map(([name, bytes]) => {
    const start = at;
    at = align8(at + bytes);
    return { name, start, bytes };
  });
  return { placed, total: at };
}

/**
 * Keep a tree layer's plan beside its record; failing to is harmless (the next build lists the files).
 * The arrays are written where they lie, with zeros between them for alignment: a copy of the whole plan
 * (~85 MiB for 300,000 files, half of it their compacted tar headers) would add that much to the build's peak RSS.
 */
export async function writePlanFile(recordPath: string, fingerprint: string, packed: PackedPlan): Promise<void> {
  const n = packed.size.length;
  const sources = packed.pathEnd.length;
  const { placed, total } = layoutOf(n, sources, packed.cuts.length, packed.heads.length, packed.paths.length);
  const head = Buffer.alloc(align8(headSize));
  head.writeUInt32LE(magic, 0);
  head.writeUInt32LE(n, 4);
  head.writeUInt32LE(sources, 8);
  head.writeUInt32LE(packed.cuts.length, 12);
  head.write(fingerprintField(fingerprint), 16, "latin1");
  head.writeDoubleLE(packed.heads.length, 80);
  head.writeDoubleLE(packed.paths.length, 88);
  const pieces: Uint8Array[] = [head];
  let at = head.length;
  for (const { name, start, bytes } of placed) {
    if (start > at) pieces.push(Buffer.alloc(start - at));
    const array = packed[name];
    pieces.push(new Uint8Array(array.buffer, array.byteOffset, bytes));
    at = start + bytes;
  }
  if (total > at) pieces.push(Buffer.alloc(total - at));
  await writeFileAtomic(planFilePath(recordPath), pieces).catch(() => {});
}

/** The plan a record's build left, in shared memory (a worker reads it in place); undefined on any doubt. */
export function readPlanFile(recordPath: string, fingerprint: string): PackedPlan | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(planFilePath(recordPath), "r");
    const head = Buffer.alloc(headSize);
    if (readSync(fd, head, 0, headSize, 0) !== headSize || head.readUInt32LE(0) !== magic) return undefined;
    if (head.toString("latin1", 16, 80) !== fingerprintField(fingerprint)) return undefined;
    const n = head.readUInt32LE(4);
    const { placed, total } = layoutOf(n, head.readUInt32LE(8), head.readUInt32LE(12), head.readDoubleLE(80), head.readDoubleLE(88));
    const memory = new SharedArrayBuffer(total);
    const bytes = new Uint8Array(memory);
    let read = 0;
    while (read < total) {
      const got = readSync(fd, bytes, read, total - read, read);
      if (got === 0) return undefined;
      read += got;
    }
    if (readSync(fd, Buffer.alloc(1), 0, 1, total) !== 0) return undefined; // longer than its layout says
    const view = (name: string) => placed.find((part) => part.name === name) as { start: number; bytes: number };
    const u8 = (name: string) => new Uint8Array(memory, view(name).start, view(name).bytes);
    const f64 = (name: string) => new Float64Array(memory, view(name).start, view(name).bytes / 8);
    return {
      heads: Buffer.from(memory, view("heads").start, view("heads").bytes),
      headEnd: f64("headEnd"),
      size: f64("size"),
      sourceOffset: f64("sourceOffset"),
      detectors: u8("detectors"),
      source: new Int32Array(memory, view("source").start, n),
      nameHash: new Uint32Array(memory, view("nameHash").start, n),
      headSize: new Uint32Array(memory, view("headSize").start, n),
      paths: Buffer.from(memory, view("paths").start, view("paths").bytes),
      pathEnd: f64("pathEnd"),
      cuts: f64("cuts"),
    };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * `packed` (the previous build's plan of the same sources) with `changes` applied, when every change is
 * a content change of a regular file that has content before and after, is not hard-linked and keeps a
 * plain ustar header: its size, header and change detector become what a walk would give, and the cuts
 * are computed again. Undefined when any change is of another kind (a name added, removed or renamed
 * changes its directory's times; a mode, owner or type change changes those fields): the caller walks
 * the tree. `packed` is patched where it lies, and is no longer the recorded plan, even when the answer is
 * undefined: its caller reads it for this alone. A copy of its headers would cost ~40 MiB more at
 * 300,000 files.
 */
export function patchPlan(packed: PackedPlan, changes: readonly StatChange[]): PackedPlan | undefined {
  if (!changes.every(isContentChange)) return undefined;
  const entryOf = contentEntries(packed);
  const patches: { entry: number; change: StatChange }[] = [];
  for (const change of changes) {
    const { stat } = change;
    const entry = entryOf(change.path);
    if (entry < 0) return undefined;
    if (packed.headSize[entry] !== recordSize || stat.size > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    patches.push({ entry, change });
  }
  const { heads, headEnd, size, detectors } = packed;
  const record = Buffer.alloc(recordSize);
  for (const { entry, change } of patches) {
    const start = entry === 0 ? 0 : (headEnd[entry - 1] as number);
    expandInto(heads, start, headEnd[entry] as number, record, 0);
    if (!rewriteUstarSize(record, 0, Number(change.stat.size))) return undefined; // needs a pax header now
    // Octal digits are never zero bytes: the runs keep their lengths, and the header its place.
    if (compactLength(record) !== (headEnd[entry] as number) - start) return undefined;
    compactInto(record, heads, start);
  }
  const words = new BigUint64Array(detectors.buffer, detectors.byteOffset, detectors.length / 8);
  for (const { entry, change } of patches) {
    const { stat } = change;
    size[entry] = Number(stat.size);
    const at = (entry * detectorSize) / 8;
    words[at] = BigInt.asUintN(64, stat.size);
    words[at + 1] = BigInt.asUintN(64, stat.mtimeNs);
    words[at + 2] = BigInt.asUintN(64, stat.ctimeNs);
    words[at + 3] = BigInt.asUintN(64, stat.ino);
    words[at + 4] = BigInt.asUintN(64, stat.dev);
  }
  return { ...packed, cuts: cutBlocks(packed) };
}

/**
 * A lookup from a source path to the entry that carries its contents (for a hard link, the group's first
 * name, which may come before the path's own entry), -1 for a path with no contents in the plan.
 */
function contentEntries(packed: PackedPlan): (path: string) => number {
  const sourceEntry = new Int32Array(packed.pathEnd.length).fill(-1);
  for (let i = 0; i < packed.source.length; i++) {
    const s = packed.source[i] as number;
    if (s >= 0) sourceEntry[s] = i;
  }
  return (path) => {
    const s = sourceOf(packed, path);
    return s < 0 ? -1 : (sourceEntry[s] as number);
  };
}

/** The index of `path` among a plan's source paths, or -1. */
function sourceOf(packed: PackedPlan, path: string): number {
  const paths = Buffer.from(packed.paths.buffer, packed.paths.byteOffset, packed.paths.length);
  const needle = Buffer.from(path, "latin1");
  const ends = packed.pathEnd;
  for (let at = paths.indexOf(needle); at >= 0; at = paths.indexOf(needle, at + 1)) {
    // The source whose bytes start at `at`, if one does: the first whose end is past it.
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((ends[mid] as number) <= at) lo = mid + 1;
      else hi = mid;
    }
    const start = lo === 0 ? 0 : (ends[lo - 1] as number);
    if (start === at && ends[lo] === at + needle.length) return lo;
  }
  return -1;
}
