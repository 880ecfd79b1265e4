/**
 * The stat index of a directory layer: every path the build listed, with its lstat, kept beside the
 * layer's record. The next build can then tell that nothing changed by stat'ing those paths again, without
 * listing directories or planning the tar: a name added, removed or renamed changes its directory's mtime
 * and ctime; a mode, owner, size, link count or content change changes the entry's ctime (and mtime). A
 * difference anywhere, or a racy timestamp, sends the build back to the full listing.
 */
import { type BigIntStats, lstatSync, statSync } from "node:fs";
import { fsPath } from "./plan.js";

/** Fields compared per path: what lstat says about the entry and its place in the tree. */
const fields = 10;
const magic = 0x32697473; // "sti2"
/** magic, count, the record's fingerprint, the walk's start (ns). */
const headSize = 4 + 4 + 64 + 8;

/** Collects the lstat of every path a directory walk visits, in visit order. */
export class StatIndexBuilder {
  readonly #paths: string[] = [];
  #values = new BigUint64Array(fields * 1024);

  /** Record a path (a latin1 string, as the walk uses) and its lstat (its stat for the walk's root). */
  add(path: string, stat: BigIntStats): void {
    const at = this.#paths.length * fields;
    if (at + fields > this.#values.length) {
      const grown = new BigUint64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    writeTuple(this.#values, at, stat);
    this.#paths.push(path);
  }

  /**
   * The index as bytes, tied to the record whose fingerprint is given, with the moment the walk began
   * (for the racy check: the stats are as of then). After the walk's root, paths are
   * kept newest change first: the file being worked on is likely to be the one that changed again, and
   * a changed layer is then told from the first few stats instead of after half of them.
   */
  encode(fingerprint: string, scanStartNs: bigint): Buffer {
    const count = this.#paths.length;
    const values = this.#values;
    const order = Array.from({ length: count }, (_, i) => i);
    const ctime = (i: number): bigint => values[i * fields + 5] as bigint;
    order.sort((a, b) => (a === 0 ? -1 : b === 0 ? 1 : ctime(a) > ctime(b) ? -1 : ctime(a) < ctime(b) ? 1 : a - b));
    const pathBytes = this.#paths.reduce((sum, p) => sum + 2 + p.length, 0);
    const head = headSize;
    const valuesAt = align8(head + pathBytes);
    const out = Buffer.alloc(valuesAt + count * fields * 8);
    out.writeUInt32LE(magic, 0);
    out.writeUInt32LE(count, 4);
    out.write(fingerprint.padEnd(64, " ").slice(0, 64), 8, "latin1");
    out.writeBigUInt64LE(BigInt.asUintN(64, scanStartNs), 72);
    let at = head;
    const sorted = new BigUint64Array(out.buffer, out.byteOffset + valuesAt, count * fields);
    for (const [k, i] of order.entries()) {
      const path = this.#paths[i] as string;
      at = out.writeUInt16LE(path.length, at);
      at += out.write(path, at, "latin1");
      sorted.set(values.subarray(i * fields, (i + 1) * fields), k * fields);
    }
    return out;
  }
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function writeTuple(values: BigUint64Array, at: number, stat: BigIntStats): void {
  values[at] = BigInt.asUintN(64, stat.mode);
  values[at + 1] = BigInt.asUintN(64, stat.uid);
  values[at + 2] = BigInt.asUintN(64, stat.gid);
  values[at + 3] = BigInt.asUintN(64, stat.size);
  values[at + 4] = BigInt.asUintN(64, stat.mtimeNs);
  values[at + 5] = BigInt.asUintN(64, stat.ctimeNs);
  values[at + 6] = BigInt.asUintN(64, stat.ino);
  values[at + 7] = BigInt.asUintN(64, stat.dev);
  values[at + 8] = BigInt.asUintN(64, stat.nlink);
  values[at + 9] = BigInt.asUintN(64, stat.rdev);
}

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
 * unchangedSince, and when a path differs, the fresh lstat of every path after it (an unchanged layer
 * keeps none: holding 20,000 stats cost it memory and time): the walk that follows takes them from
 * `stats` instead of stat'ing those paths a second time. No `stats` when the index is damaged or a path
 * is gone.
 */
export function compareStats(
  index: Buffer,
  fingerprint: string,
  isRacy: (ns: bigint, scanStartNs: bigint) => boolean,
): { unchanged: boolean; stats?: Map<string, BigIntStats> } {
  try {
    if (index.length < headSize || index.readUInt32LE(0) !== magic) return { unchanged: false };
    if (index.toString("latin1", 8, 72) !== fingerprint.padEnd(64, " ").slice(0, 64)) return { unchanged: false };
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
    if (index.length !== valuesAt + count * fields * 8) return { unchanged: false };
    const values = new BigUint64Array(index.buffer.slice(index.byteOffset + valuesAt, index.byteOffset + index.length));
    const now = new BigUint64Array(fields);
    const stats = new Map<string, BigIntStats>();
    let unchanged = true;
    for (let i = 0; i < count; i++) {
      const path = paths[i] as string;
      const name = fsPath(path);
      const stat = i === 0 ? statSync(name, { bigint: true }) : lstatSync(name, { bigint: true });
      if (!unchanged) {
        stats.set(path, stat);
        continue;
      }
      writeTuple(now, 0, stat);
      for (let f = 0; f < fields && unchanged; f++) if (now[f] !== values[i * fields + f]) unchanged = false;
      if (isRacy(stat.mtimeNs, scanStartNs) || isRacy(stat.ctimeNs, scanStartNs)) unchanged = false;
    }
    return unchanged ? { unchanged } : { unchanged, stats };
  } catch {
    return { unchanged: false };
  }
}
