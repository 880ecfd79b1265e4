/**
 * Cutting a layer's tar into blocks that are compressed (and cached) on their own, and producing their
 * bytes. Cut points depend only on the entries near them, so a file that changes size moves no block
 * boundary outside its neighbourhood:
 * - a file larger than `largeFile` starts a block, is split every `chunkSize` bytes from its own start,
 *   and ends its block;
 * - smaller entries fill a block until it holds `minBlock` bytes and an entry whose name hashes to
 *   0 mod `hashCut` comes, or until the next entry would make it larger than `maxBlock`.
 * A block's key digests what went into it (headers, change detectors, file-relative ranges), never its
 * position in the tar.
 */
import { createHash, type Hash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { InputError } from "../errors.js";
import { encodeHeader, endOfArchiveSize, fitsUstar, paddingFor, recordSize, writeSimpleHeader } from "../tar/header.js";
import { compactBound, compactInto, expandInto } from "./compact-heads.js";
import { detectorSize, headerOf, type LayerPlan } from "./plan.js";

/** Padding and end-of-archive bytes, hashed from here. */
const zeros = Buffer.alloc(4096);

/**
 * How much of a block hashNext reads at a time: half of a core's L2 cache on the machines measured, so
 * that the bytes a read copies are still there when they are hashed. Reading a whole block (1-4 MiB) and
 * then hashing it made a one-file rebuild of the benchmark's one-layer tree 6% slower (paired runs).
 * A cold build's blocks are read whole (they are compressed whole); reading them in pieces gained nothing.
 */
export const hashPiece = 256 << 10;

/** Block-size policy. */
export interface BlockPolicy {
  minBlock: number;
  maxBlock: number;
  largeFile: number;
  chunkSize: number;
  hashCut: number;
}

/** Capacity of recycled block buffers: the largest block the default policy makes, plus room for headers. */
export const blockCapacity = (4 << 20) + (64 << 10);

/** The policy used for layers (measured: see docs/compression.md). */
export const defaultPolicy: BlockPolicy = { minBlock: 1 << 20, maxBlock: 4 << 20, largeFile: 1 << 20, chunkSize: 4 << 20, hashCut: 8 };

/**
 * A plan in flat typed arrays over shared memory: a worker thread gets it without a copy (no per-entry
 * objects, no pooled Buffer views that would drag whole 8 KiB pools along).
 */
export interface PackedPlan {
  /** Every entry's tar header, compacted (compact-heads.ts), one after the other. */
  heads: Uint8Array;
  /** End of each entry's compacted header in `heads`. */
  headEnd: Float64Array;
  /** Each entry's header length in the tar (512 bytes, or more with a pax header). */
  headSize: Uint32Array;
  size: Float64Array;
  source: Int32Array;
  sourceOffset: Float64Array;
  detectors: Uint8Array;
  paths: Uint8Array;
  pathEnd: Float64Array;
  /** Each entry's name hash (nameHash), which decides the cuts between small files. */
  nameHash: Uint32Array;
  /** Block ends as tar offsets; the last is the tar's size. */
  cuts: Float64Array;
}

/** Memory a worker thread sees without a copy. */
function shared(bytes: number): SharedArrayBuffer {
  return new SharedArrayBuffer(bytes);
}

/**
 * Every entry's header, rendered one at a time and kept compacted, in shared memory. The pieces they are
 * first written to hold as much again, for a moment: not a whole plan's worth of 512-byte records.
 */
function packHeads(plan: LayerPlan): Pick<PackedPlan, "heads" | "headEnd" | "headSize"> {
  const n = plan.entries.length;
  const headEnd = new Float64Array(shared(n * 8));
  const headSize = new Uint32Array(shared(n * 4));
  const record = Buffer.alloc(recordSize);
  const pieces: Buffer[] = [];
  let piece = Buffer.allocUnsafe(1 << 20);
  let used = 0;
  let total = 0;
  plan.entries.forEach((entry, i) => {
    let header: Uint8Array = record;
    if (fitsUstar(entry)) {
      record.fill(0);
      writeSimpleHeader(entry, record, 0);
    } else header = encodeHeader(headerOf(entry));
    const room = compactBound(header.length);
    if (used + room > piece.length) {
      pieces.push(piece.subarray(0, used));
      piece = Buffer.allocUnsafe(Math.max(1 << 20, room));
      used = 0;
    }
    const end = compactInto(header, piece, used);
    total += end - used;
    used = end;
    headEnd[i] = total;
    headSize[i] = header.length;
  });
  pieces.push(piece.subarray(0, used));
  const heads = Buffer.from(new SharedArrayBuffer(total));
  let at = 0;
  for (const bytes of pieces) {
    heads.set(bytes, at);
    at += bytes.length;
  }
  return { heads, headEnd, headSize };
}

/** Write entry `i`'s header out in full, as it goes into the tar, into `target` at `at`; returns its length. */
function expandHeader(plan: Pick<PackedPlan, "heads" | "headEnd">, i: number, target: Uint8Array, at: number): number {
  return expandInto(plan.heads, i === 0 ? 0 : (plan.headEnd[i - 1] as number), plan.headEnd[i] as number, target, at);
}

/** Entry `i`'s header as it goes into the tar, written out into `scratch` when it fits (else a new buffer). */
function headerBytes(plan: Pick<PackedPlan, "heads" | "headEnd" | "headSize">, i: number, scratch: Buffer): Buffer {
  const size = plan.headSize[i] as number;
  const target = size <= scratch.length ? scratch : Buffer.allocUnsafe(size);
  expandHeader(plan, i, target, 0);
  return target.subarray(0, size);
}

/** Pack a plan (in shared memory, so a worker reads it in place) and compute its block cuts. */
export function packPlan(plan: LayerPlan, policy: BlockPolicy = defaultPolicy): PackedPlan {
  const n = plan.entries.length;
  const { heads, headEnd, headSize } = packHeads(plan);
  const size = new Float64Array(shared(n * 8));
  const source = new Int32Array(shared(n * 4));
  const sourceOffset = new Float64Array(shared(n * 8));
  const detectors = new Uint8Array(shared(n * detectorSize));
  const nameHashes = new Uint32Array(shared(n * 4));
  plan.entries.forEach((entry, i) => {
    size[i] = entry.size;
    source[i] = entry.source;
    sourceOffset[i] = entry.sourceOffset;
    nameHashes[i] = nameHash(entry.key);
    if (entry.detector >= 0) detectors.set(plan.detectors.bytes(entry.detector), i * detectorSize);
  });
  const paths = Buffer.from(shared(plan.sources.reduce((sum, p) => sum + p.length, 0)));
  const pathEnd = new Float64Array(shared(plan.sources.length * 8));
  let at = 0;
  plan.sources.forEach((path, i) => {
    at += paths.write(path, at, "latin1");
    pathEnd[i] = at;
  });
  const packed = { heads, headEnd, headSize, size, source, sourceOffset, detectors, paths, pathEnd, nameHash: nameHashes };
  return { ...packed, cuts: cutBlocks(packed, policy) };
}

function nameHash(name: string): number {
  // FNV-1a, 32 bits, over the bytes of the name (a latin1 string: one char per byte).
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/**
 * A digest of everything that decides the layer's bytes without reading file contents, salted with the
 * layer's identity: every header as encoded (names, types, modes, owners, sizes, times, link targets)
 * and every content's change detector.
 */
export function planFingerprint(packed: PackedPlan, salt: string): string {
  const hash = createHash("sha256").update(salt);
  // The headers as they go into the tar, a batch at a time (the digest of their concatenation).
  const batch = Buffer.allocUnsafe(64 << 10);
  let used = 0;
  for (let i = 0; i < packed.headSize.length; i++) {
    const size = packed.headSize[i] as number;
    if (used + size > batch.length) {
      hash.update(batch.subarray(0, used));
      used = 0;
    }
    if (size > batch.length) hash.update(headerBytes(packed, i, batch));
    else used += expandHeader(packed, i, batch, used);
  }
  return hash.update(batch.subarray(0, used)).update(packed.detectors).digest("hex");
}

function headLength(plan: Pick<PackedPlan, "headSize">, i: number): number {
  return plan.headSize[i] as number;
}

/** An entry's bytes in the tar: its header, contents and padding. */
export function entryLength(plan: Pick<PackedPlan, "headSize" | "size">, i: number): number {
  const content = plan.size[i] as number;
  return headLength(plan, i) + content + paddingFor(content);
}

/**
 * The block cuts of a packed plan's entries (packPlan computes them; a plan whose sizes were changed in
 * place computes them again).
 */
export function cutBlocks(packed: Omit<PackedPlan, "cuts">, policy: BlockPolicy = defaultPolicy): Float64Array {
  const cuts: number[] = [];
  let blockStart = 0;
  let offset = 0;
  const cut = (at: number): void => {
    if (at > blockStart) {
      cuts.push(at);
      blockStart = at;
    }
  };
  for (let i = 0; i < packed.size.length; i++) {
    const head = headLength(packed, i);
    const content = packed.size[i] as number;
    const total = head + content + paddingFor(content);
    if (content > policy.largeFile) {
      cut(offset);
      const contentStart = offset + head;
      for (let k = policy.chunkSize; k < content; k += policy.chunkSize) cut(contentStart + k);
      cut(offset + total);
    } else {
      const current = offset - blockStart;
      if ((current >= policy.minBlock && (packed.nameHash[i] as number) % policy.hashCut === 0) || current + total > policy.maxBlock)
        cut(offset);
    }
    offset += total;
  }
  cuts.push(offset + endOfArchiveSize);
  return Float64Array.from(cuts);
}

/** Where block `index` of a packed plan begins in the tar (`cuts[index]` is where it ends). */
export function blockStart(packed: Pick<PackedPlan, "cuts">, index: number): number {
  return index === 0 ? 0 : (packed.cuts[index - 1] as number);
}

/** Block keys, and which blocks hold a file whose change detector may not be trusted. */
export interface BlockKeys {
  keys: string[];
  /** Per block: a file in it has an mtime `racy` called racy. */
  racy: boolean[];
}

/**
 * Block keys: a digest of what went into each block, salted with the codec (so gzip-1 and zstd-3 never
 * mix). With `racy`, each block is also marked when any of its files' mtimes is racy by that rule.
 */
export function blockKeys(plan: PackedPlan, salt: string, racy?: (mtimeNs: bigint) => boolean): BlockKeys {
  const keys: string[] = [];
  const racyBlocks: boolean[] = [];
  const mtimes = new BigUint64Array(plan.detectors.buffer, plan.detectors.byteOffset, plan.detectors.byteLength / 8);
  let entry = 0;
  let entryStart = 0;
  let blockStart = 0;
  // What goes into a block's key is gathered here and hashed a batch at a time: three hash updates per
  // entry cost more than the hashing itself at 300,000 entries.
  const batch = Buffer.allocUnsafe(64 << 10);
  let used = 0;
  for (const end of plan.cuts) {
    const hash = createHash("sha256").update(salt);
    const room = (bytes: number): void => {
      if (used + bytes <= batch.length) return;
      hash.update(batch.subarray(0, used));
      used = 0;
    };
    let racyBlock = false;
    while (entry < plan.size.length && entryStart < end) {
      const head = headLength(plan, entry);
      const content = plan.size[entry] as number;
      const total = head + content + paddingFor(content);
      const lo = Math.max(blockStart, entryStart) - entryStart;
      const hi = Math.min(end, entryStart + total) - entryStart;
      if (lo === 0) {
        room(head);
        if (head > batch.length) hash.update(headerBytes(plan, entry, Buffer.allocUnsafe(head)));
        else used += expandHeader(plan, entry, batch, used);
      }
      room(detectorSize + 16);
      const detector = entry * detectorSize;
      for (let b = 0; b < detectorSize; b++) batch[used + b] = plan.detectors[detector + b] as number;
      batch.writeDoubleLE(lo, used + detectorSize);
      batch.writeDoubleLE(hi, used + detectorSize + 8);
      used += detectorSize + 16;
      // A detector is (size, mtime, ctime, ino, dev) as 64-bit words; an entry without content has none (zeros).
      if (racy && content > 0 && racy(mtimes[(entry * detectorSize) / 8 + 1] as bigint)) racyBlock = true;
      if (entryStart + total <= end) {
        entryStart += total;
        entry++;
      } else break;
    }
    hash.update(batch.subarray(0, used));
    used = 0;
    if (end > entryStart) hash.update("end-of-archive");
    keys.push(hash.digest("hex"));
    racyBlocks.push(racyBlock);
    blockStart = end;
  }
  return { keys, racy: racyBlocks };
}

/**
 * How many file ranges each block reads (an entry's content met in the block counts once): what reading
 * a block costs in files opened, against its size in bytes.
 */
export function readsPerBlock(plan: Pick<PackedPlan, "headSize" | "size" | "cuts">): Uint32Array {
  const reads = new Uint32Array(plan.cuts.length);
  let block = 0;
  let offset = 0;
  for (let i = 0; i < plan.size.length; i++) {
    const head = headLength(plan, i);
    const content = plan.size[i] as number;
    const start = offset + head;
    const end = start + content;
    offset = end + paddingFor(content);
    if (content === 0) continue;
    while ((plan.cuts[block] as number) <= start) block++;
    for (let b = block; b < plan.cuts.length; b++) {
      reads[b] = (reads[b] as number) + 1;
      if ((plan.cuts[b] as number) >= end) break;
    }
  }
  return reads;
}

/** Bytes of one block. */
export interface ProducedBlock {
  index: number;
  data: Buffer;
}

/**
 * Produces a plan's blocks in order with synchronous reads, hashing the whole tar (the diffID) on the way.
 * Runs on the main thread or in a worker (producer-worker.ts).
 */
export class BlockProducer {
  readonly #plan: PackedPlan;
  readonly #diffID: Hash = createHash("sha256");
  #hashing = true;
  #next = 0;
  #entry = 0;
  #entryStart = 0;
  #fd = -1;
  #fdSource = -1;
  /** The header being written out, in full. */
  readonly #header = Buffer.allocUnsafe(4 * recordSize);

  constructor(plan: PackedPlan) {
    this.#plan = plan;
  }

  /** Number of blocks. */
  get count(): number {
    return this.#plan.cuts.length;
  }

  /** The sha256 of every byte produced so far (the diffID once all blocks are produced). */
  diffID(): string {
    return `sha256:${this.#diffID.digest("hex")}`;
  }

  #path(source: number): Buffer {
    const { paths, pathEnd } = this.#plan;
    const start = source === 0 ? 0 : (pathEnd[source - 1] as number);
    return Buffer.from(paths.buffer, paths.byteOffset + start, (pathEnd[source] as number) - start);
  }

  #read(source: number, target: Buffer, at: number, length: number, position: number): void {
    if (this.#fdSource !== source) {
      this.close();
      try {
        this.#fd = openSync(this.#path(source), "r");
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const what = this.#path(source).toString();
        if (code === "ENOENT")
          throw new InputError(`${what} disappeared while the layer was being built`, { hint: "build again once it stops changing" });
        throw new InputError(`cannot read ${what}: ${(error as Error).message}`, { hint: "check its permissions", cause: error });
      }
      this.#fdSource = source;
    }
    let done = 0;
    while (done < length) {
      const n = readSync(this.#fd, target, at + done, length - done, position + done);
      if (n === 0) {
        throw new InputError(`${this.#path(source).toString()} changed while the layer was being built (it became shorter)`, {
          hint: "build again once it stops changing",
        });
      }
      done += n;
    }
  }

  /**
   * Make block `index` (not before the next one) the next block, without reading the blocks between.
   * The producer stops hashing: its diffID no longer covers the whole tar.
   */
  skipTo(index: number): void {
    const plan = this.#plan;
    if (index < this.#next) throw new Error("a block producer only moves forward");
    this.#hashing = false;
    this.#passEntriesBefore(blockStart(plan, index));
    this.#next = index;
  }

  /** Move past the entries that end at or before tar offset `offset` (those a walk up to it would finish). */
  #passEntriesBefore(offset: number): void {
    const plan = this.#plan;
    while (this.#entry < plan.size.length) {
      const total = entryLength(plan, this.#entry);
      if (this.#entryStart + total > offset) break;
      this.#entryStart += total;
      this.#entry++;
    }
  }

  /** The index of the next block. */
  get nextIndex(): number {
    return this.#next;
  }

  /**
   * Take `bytes` as the next block (the same bytes read from elsewhere: a cached block's, unpacked), hashed
   * into the diffID without reading the block's files. False, moving nowhere, when the size is not the block's.
   */
  hashGiven(bytes: Uint8Array): boolean {
    const size = this.nextSize();
    if (size === 0 || bytes.length !== size) return false;
    const plan = this.#plan;
    // Past the entries that end in this block, as #walk moves, without writing a header out.
    this.#passEntriesBefore(plan.cuts[this.#next] as number);
    this.#next++;
    if (this.#next === plan.cuts.length) this.close();
    if (this.#hashing) this.#diffID.update(bytes);
    return true;
  }

  /** Size of the next block, or 0 after the last. */
  nextSize(): number {
    const index = this.#next;
    if (index >= this.#plan.cuts.length) return 0;
    return (this.#plan.cuts[index] as number) - blockStart(this.#plan, index);
  }

  /** Produce the next block, into `memory` when it is large enough (recycled buffers keep RSS flat); undefined after the last. */
  next(memory?: ArrayBuffer): ProducedBlock | undefined {
    const index = this.#next;
    const size = this.nextSize();
    if (size === 0) return undefined;
    const data = memory && memory.byteLength >= size ? Buffer.from(memory, 0, size) : Buffer.allocUnsafeSlow(size);
    let filled = 0;
    this.#walk({
      head: (entry, from, to) => {
        // A whole header is written out where it goes; one cut by the block's edge, through a scratch.
        if (from === 0 && to === this.#plan.headSize[entry]) expandHeader(this.#plan, entry, data, filled);
        else data.set(this.#headerPart(entry, from, to), filled);
        filled += to - from;
      },
      content: (source, position, length) => {
        this.#read(source, data, filled, length, position);
        filled += length;
      },
      zeros: (length) => {
        data.fill(0, filled, filled + length);
        filled += length;
      },
    });
    if (this.#hashing) this.#diffID.update(data);
    return { index, data };
  }

  /**
   * Hash the next block into the diffID without keeping it: its bytes pass through `scratch` a piece at a
   * time, each hashed while the CPU's cache still holds it. False after the last block.
   */
  hashNext(scratch: Buffer): boolean {
    if (this.nextSize() === 0) return false;
    const hash = this.#diffID;
    this.#walk({
      head: (entry, from, to) => hash.update(this.#headerPart(entry, from, to)),
      content: (source, position, length) => {
        for (let done = 0; done < length; ) {
          const piece = Math.min(scratch.length, length - done);
          this.#read(source, scratch, 0, piece, position + done);
          hash.update(scratch.subarray(0, piece));
          done += piece;
        }
      },
      zeros: (length) => {
        for (let left = length; left > 0; left -= zeros.length) hash.update(zeros.subarray(0, Math.min(zeros.length, left)));
      },
    });
    return true;
  }

  /** Bytes [from, to) of an entry's header, written out in this producer's scratch. */
  #headerPart(entry: number, from: number, to: number): Uint8Array {
    return headerBytes(this.#plan, entry, this.#header).subarray(from, to);
  }

  /**
   * The next block's bytes, in order, to `sink`: header bytes, content as ranges of its files (source,
   * position, length), zeros for padding and the end-of-archive marker. Moves on to the block after it.
   */
  #walk(sink: {
    /** Bytes [from, to) of entry `entry`'s header. */
    head(entry: number, from: number, to: number): void;
    content(source: number, position: number, length: number): void;
    zeros(length: number): void;
  }): void {
    const plan = this.#plan;
    const index = this.#next;
    const end = plan.cuts[index] as number;
    let at = blockStart(plan, index);
    while (this.#entry < plan.size.length && this.#entryStart < end) {
      const i = this.#entry;
      const head = headLength(plan, i);
      const content = plan.size[i] as number;
      const base = this.#entryStart;
      const entryEnd = base + head + content + paddingFor(content);
      // A block may begin inside this entry's header, content or padding, and end inside any of them.
      const headTo = Math.min(end, base + head);
      if (headTo > at) {
        sink.head(i, at - base, headTo - base);
        at = headTo;
      }
      const contentTo = Math.min(end, base + head + content);
      if (contentTo > at) {
        sink.content(plan.source[i] as number, (plan.sourceOffset[i] as number) + at - base - head, contentTo - at);
        at = contentTo;
      }
      const padTo = Math.min(end, entryEnd);
      if (padTo > at) {
        sink.zeros(padTo - at);
        at = padTo;
      }
      if (entryEnd <= end) {
        this.#entryStart = entryEnd;
        this.#entry++;
      } else break;
    }
    // The end-of-archive marker.
    if (end > at) sink.zeros(end - at);
    this.#next++;
    if (this.#next === plan.cuts.length) this.close();
  }

  /** Close the open file, if any. */
  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
    this.#fdSource = -1;
  }
}
