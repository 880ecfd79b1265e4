/**
 * A layer plan: every entry of the layer's tar in order, with its encoded header and where its content
 * is read from, decided before any content is read. Directory and single-file sources are listed here
 * with synchronous lstat/readdir (20,000 small files: fs/promises is several times slower).
 */
import { createHash } from "node:crypto";
import { type BigIntStats, lstatSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { InputError } from "../errors.js";
import type { TarHeader } from "./tar.js";

/** Bytes of a change detector: size, mtime (ns), ctime (ns), inode and device, as little-endian u64s. */
export const detectorSize = 40;

/** One entry of a planned layer. */
export interface PlanEntry {
  header: TarHeader;
  /** The name as a latin1 string (one char per byte): sorts in byte order, keys maps. */
  key: string;
  /** Index into `LayerPlan.sources` of the file holding the content, or -1. */
  source: number;
  /** Position of the content in that file. */
  sourceOffset: number;
  /** The change detector of the content's file (zeros when there is no content). */
  detector: Buffer;
}

/** A layer's entries in tar order, and the files their contents come from. */
export interface LayerPlan {
  entries: PlanEntry[];
  sources: Buffer[];
  /** What the sources are, for messages. */
  description: string;
}

/** Options that decide entry metadata. */
export interface EntryOptions {
  /** Owner of every entry unless `preserveOwners`. */
  uid: number;
  gid: number;
  preserveOwners: boolean;
  mtime: number;
}

const noDetector = Buffer.alloc(detectorSize);

let detectorSlab = Buffer.alloc(0);
let detectorSlabUsed = 0;

/** The change detector of a file from its bigint lstat (carved from a shared slab: one allocation per 1,600 files). */
export function detectorOf(stat: BigIntStats): Buffer {
  if (detectorSlabUsed + detectorSize > detectorSlab.length) {
    detectorSlab = Buffer.alloc(detectorSize * 1600);
    detectorSlabUsed = 0;
  }
  const out = detectorSlab.subarray(detectorSlabUsed, detectorSlabUsed + detectorSize);
  detectorSlabUsed += detectorSize;
  out.writeBigUInt64LE(BigInt.asUintN(64, stat.size), 0);
  out.writeBigUInt64LE(BigInt.asUintN(64, stat.mtimeNs), 8);
  out.writeBigUInt64LE(BigInt.asUintN(64, stat.ctimeNs), 16);
  out.writeBigUInt64LE(BigInt.asUintN(64, stat.ino), 24);
  out.writeBigUInt64LE(BigInt.asUintN(64, stat.dev), 32);
  return out;
}

/** The modification time (ns) recorded in a change detector. */
export function detectorMtimeNs(detector: Buffer): bigint {
  return detector.readBigUInt64LE(8);
}

/** Linux's major/minor split of a dev_t (glibc gnu_dev_major/gnu_dev_minor). */
export function splitDevice(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor & 0xffffffffn) };
}

/** Normalize a layer destination: "/app/" → "app", "/" → "". */
export function destPrefix(dest: string): string {
  const parts: string[] = [];
  for (const part of dest.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return parts.join("/");
}

/** Whether a relative symlink target climbs above the root from the link's directory (the rule Docker enforces on layers). */
export function symlinkEscapes(name: string, target: string): boolean {
  if (target.startsWith("/")) return false;
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  parts.pop();
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) return true;
      parts.pop();
    } else parts.push(part);
  }
  return false;
}

function join(prefix: Buffer, name: Buffer): Buffer {
  if (prefix.length === 0) return name;
  if (name.length === 0) return prefix;
  return Buffer.concat([prefix, slash, name]);
}

const slash = Buffer.from("/");

function fail(path: Buffer | string, error: unknown): never {
  const code = (error as NodeJS.ErrnoException).code;
  const shown = path.toString();
  if (code === "EACCES" || code === "EPERM")
    throw new InputError(`cannot read ${shown}: permission denied`, { hint: "check its permissions" });
  if (code === "ENOENT")
    throw new InputError(`${shown} disappeared while the layer was being listed`, { hint: "build again once it stops changing" });
  throw new InputError(`cannot read ${shown}: ${(error as Error).message}`, { cause: error });
}

/** Sort entries by the bytes of their names, add missing parent directories, and turn repeated files into hardlinks. */
export function finishEntries(entries: PlanEntry[], options: EntryOptions, links?: Map<string, PlanEntry[]>): PlanEntry[] {
  // Later entries with the same name win (as when a tar is extracted).
  const byName = new Map<string, PlanEntry>();
  for (const entry of entries) {
    if (byName.has(entry.key)) byName.delete(entry.key);
    byName.set(entry.key, entry);
  }
  for (const key of [...byName.keys()]) {
    let end = key.lastIndexOf("/");
    while (end > 0) {
      const parent = key.slice(0, end);
      if (byName.has(parent)) break;
      byName.set(parent, {
        header: { name: Buffer.from(parent, "latin1"), type: "directory", mode: 0o755, uid: 0, gid: 0, size: 0, mtime: options.mtime },
        key: parent,
        source: -1,
        sourceOffset: 0,
        detector: noDetector,
      });
      end = parent.lastIndexOf("/");
    }
  }
  // latin1 strings hold one byte per UTF-16 unit, so comparing them compares the bytes.
  const sorted = [...byName.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const entry of sorted) {
    const { type, name, linkname } = entry.header;
    if (type === "symlink" && linkname && symlinkEscapes(entry.key, linkname.toString("latin1"))) {
      throw new InputError(`symlink /${name.toString()} -> ${linkname.toString()} points outside the image's root`, {
        hint: "Docker refuses such layers; make the link absolute or keep it inside the tree",
      });
    }
  }
  // Hardlinked files: the first name in sorted order carries the content, the others link to it.
  if (links) {
    for (const group of links.values()) {
      const alive = group.filter((e) => byName.get(e.key) === e);
      if (alive.length < 2) continue;
      alive.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const first = alive[0] as PlanEntry;
      const content = alive.find((e) => e.header.type !== "link");
      if (!content) continue;
      if (content !== first) {
        first.header = { ...content.header, name: first.header.name };
        first.source = content.source;
        first.sourceOffset = content.sourceOffset;
        first.detector = content.detector;
      }
      for (const other of alive.slice(1)) {
        other.header = { ...other.header, type: "link", size: 0, linkname: first.header.name };
        other.source = -1;
        other.sourceOffset = 0;
        other.detector = noDetector;
      }
    }
  }
  return sorted;
}

function entryFor(
  name: Buffer,
  path: Buffer,
  stat: BigIntStats,
  options: EntryOptions,
  sources: Buffer[],
): { entry: PlanEntry; hardlinkKey?: string } | undefined {
  const header: TarHeader = {
    name,
    type: "file",
    mode: Number(stat.mode & 0o7777n),
    uid: options.preserveOwners ? Number(stat.uid) : options.uid,
    gid: options.preserveOwners ? Number(stat.gid) : options.gid,
    size: 0,
    mtime: options.mtime,
  };
  const entry: PlanEntry = { header, key: name.toString("latin1"), source: -1, sourceOffset: 0, detector: noDetector };
  if (stat.isFile()) {
    header.size = Number(stat.size);
    if (header.size > 0) {
      entry.source = sources.push(path) - 1;
      entry.detector = detectorOf(stat);
    }
    if (stat.nlink > 1n) return { entry, hardlinkKey: `${stat.dev}:${stat.ino}` };
    return { entry };
  }
  if (stat.isDirectory()) header.type = "directory";
  else if (stat.isSymbolicLink()) {
    header.type = "symlink";
    try {
      header.linkname = readlinkSync(path, { encoding: "buffer" });
    } catch (error) {
      fail(path, error);
    }
  } else if (stat.isCharacterDevice() || stat.isBlockDevice()) {
    header.type = stat.isCharacterDevice() ? "char" : "block";
    const { major, minor } = splitDevice(stat.rdev);
    header.devmajor = major;
    header.devminor = minor;
  } else if (stat.isFIFO()) header.type = "fifo";
  else return undefined; // sockets cannot be stored in a tar
  return { entry };
}

/**
 * Plan a directory (its contents under `dest`, the directory itself as `dest`) or a single file (at
 * `dest`, or inside it when `dest` ends with "/").
 */
export function planPath(path: string, dest: string, options: EntryOptions): LayerPlan {
  let top: BigIntStats;
  try {
    top = statSync(path, { bigint: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new InputError(`layer source ${path} does not exist`, { hint: "check the path given to --layer" });
    }
    fail(path, error);
  }
  const prefix = Buffer.from(destPrefix(dest));
  const sources: Buffer[] = [];
  const entries: PlanEntry[] = [];
  const links = new Map<string, PlanEntry[]>();
  const add = (name: Buffer, full: Buffer, stat: BigIntStats): void => {
    const made = entryFor(name, full, stat, options, sources);
    if (!made) return;
    entries.push(made.entry);
    if (made.hardlinkKey) {
      const group = links.get(made.hardlinkKey);
      if (group) group.push(made.entry);
      else links.set(made.hardlinkKey, [made.entry]);
    }
  };
  if (!top.isDirectory()) {
    if (!top.isFile())
      throw new InputError(`layer source ${path} is not a file or directory`, { hint: "give a directory, a file or a tarball" });
    const base = Buffer.from(path.slice(path.replace(/\/+$/, "").lastIndexOf("/") + 1).replace(/\/+$/, ""));
    const name = dest.endsWith("/") ? join(prefix, base) : prefix;
    if (name.length === 0)
      throw new InputError(`layer source ${path} is a file and needs a destination path`, { hint: "write SRC:/path/to/file" });
    add(name, Buffer.from(path), top);
  } else {
    if (prefix.length > 0) add(prefix, Buffer.from(path), top);
    const stack: [Buffer, Buffer][] = [[Buffer.from(path), prefix]];
    while (stack.length > 0) {
      const [dir, name] = stack.pop() as [Buffer, Buffer];
      let children: Buffer[];
      try {
        children = readdirSync(dir, { encoding: "buffer" });
      } catch (error) {
        fail(dir, error);
      }
      for (const child of children) {
        const full = Buffer.concat([dir, slash, child]);
        let stat: BigIntStats;
        try {
          stat = lstatSync(full, { bigint: true });
        } catch (error) {
          fail(full, error);
        }
        const childName = join(name, child);
        add(childName, full, stat);
        if (stat.isDirectory()) stack.push([full, childName]);
      }
    }
  }
  return { entries: finishEntries(entries, options, links), sources, description: path };
}

/**
 * A digest of everything that decides the layer's bytes without reading file contents: each entry's
 * header fields and change detector (the encoded header is a function of these and the salt).
 */
export function planFingerprint(plan: LayerPlan, salt: string): string {
  const hash = createHash("sha256").update(salt);
  let scratch = Buffer.allocUnsafe(1 << 20);
  let at = 0;
  for (const entry of plan.entries) {
    const { header } = entry;
    const need = 128 + header.name.length + (header.linkname?.length ?? 0);
    if (at + need > scratch.length) {
      hash.update(scratch.subarray(0, at));
      at = 0;
      if (need > scratch.length) scratch = Buffer.allocUnsafe(need);
    }
    at = scratch.writeUInt32LE(header.name.length, at);
    at += header.name.copy(scratch, at);
    at = scratch.writeUInt8(typeCodes[header.type], at);
    at = scratch.writeUInt32LE(header.mode, at);
    at = scratch.writeDoubleLE(header.uid, at);
    at = scratch.writeDoubleLE(header.gid, at);
    at = scratch.writeDoubleLE(header.size, at);
    at = scratch.writeDoubleLE(header.mtime, at);
    at = scratch.writeDoubleLE(header.devmajor ?? -1, at);
    at = scratch.writeDoubleLE(header.devminor ?? -1, at);
    at = scratch.writeInt32LE(header.linkname?.length ?? -1, at);
    if (header.linkname) at += header.linkname.copy(scratch, at);
    at += entry.detector.copy(scratch, at);
  }
  hash.update(scratch.subarray(0, at));
  return hash.digest("hex");
}

const typeCodes: Record<TarHeader["type"], number> = { file: 0, link: 1, symlink: 2, char: 3, block: 4, directory: 5, fifo: 6 };
