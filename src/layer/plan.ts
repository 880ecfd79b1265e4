/**
 * A layer plan: every entry of the layer's tar in order, with its metadata and where its content is read
 * from, decided before any content is read. Directory and single-file sources are listed here with
 * synchronous lstat/readdir (fs/promises is several times slower on 20,000 small files). Entries are kept
 * lean (names as latin1 strings, change detectors in one typed array): a no-change rebuild of a 20,000
 * file layer is mostly this listing.
 */
import { type BigIntStats, lstatSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { InputError, UsageError } from "../errors.js";
import { fsPath } from "./fs-path.js";
import type { StatIndexBuilder } from "./stat-index.js";
import type { StringHeader, TarHeader } from "./tar.js";
import { readXattrs } from "./xattrs.js";

/** Bytes of a change detector: size, mtime (ns), ctime (ns), inode and device, as little-endian u64s. */
export const detectorSize = 40;

/** One entry of a planned layer. Names and link targets are latin1 strings: one char per byte. */
export interface PlanEntry extends StringHeader {
  /** Index into `LayerPlan.sources` of the file holding the content, or -1. */
  source: number;
  /** Position of the content in that file. */
  sourceOffset: number;
  /** Index of the content file's change detector in `LayerPlan.detectors`, or -1. */
  detector: number;
}

/** A layer's entries in tar order, the files their contents come from, and those files' change detectors. */
export interface LayerPlan {
  entries: PlanEntry[];
  /** File paths as latin1 strings. */
  sources: string[];
  /** Five u64s per detector: size, mtime ns, ctime ns, inode, device. */
  detectors: Detectors;
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

/** A growable list of change detectors. */
export class Detectors {
  #values = new BigUint64Array(5 * 256);
  #count = 0;

  /** Number of detectors. */
  get count(): number {
    return this.#count;
  }

  /** Add the detector of a bigint lstat; returns its index. */
  add(stat: Pick<BigIntStats, "size" | "mtimeNs" | "ctimeNs" | "ino" | "dev">): number {
    if ((this.#count + 1) * 5 > this.#values.length) {
      const grown = new BigUint64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    const at = this.#count * 5;
    this.#values[at] = BigInt.asUintN(64, stat.size);
    this.#values[at + 1] = BigInt.asUintN(64, stat.mtimeNs);
    this.#values[at + 2] = BigInt.asUintN(64, stat.ctimeNs);
    this.#values[at + 3] = BigInt.asUintN(64, stat.ino);
    this.#values[at + 4] = BigInt.asUintN(64, stat.dev);
    return this.#count++;
  }

  /** The 40 bytes of a detector (a view). */
  bytes(index: number): Uint8Array {
    return new Uint8Array(this.#values.buffer, index * detectorSize, detectorSize);
  }

  /** A detector's mtime in nanoseconds. */
  mtimeNs(index: number): bigint {
    return this.#values[index * 5 + 1] as bigint;
  }
}

/** Linux's major/minor split of a dev_t (glibc gnu_dev_major/gnu_dev_minor). */
export function splitDevice(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor & 0xffffffffn) };
}

/** A `--layer SRC[:DEST]` flag: a directory, file or tarball and where it goes in the image. */
export interface LayerSource {
  source: string;
  dest: string;
}

/** Parse `SRC[:DEST]` (split at the last ":"); DEST defaults to "/" and must be absolute. */
export function parseLayerFlag(text: string): LayerSource {
  const colon = text.lastIndexOf(":");
  const source = colon < 0 ? text : text.slice(0, colon);
  const dest = colon < 0 ? "/" : text.slice(colon + 1);
  if (source === "") throw new UsageError(`--layer ${text}: no source path`, { hint: "write --layer SRC[:DEST], e.g. --layer ./out:/app" });
  if (!dest.startsWith("/")) {
    throw new UsageError(`--layer ${text}: destination "${dest}" is not an absolute path`, {
      hint: "write --layer SRC:/path; a SRC that contains ':' needs an explicit :DEST",
    });
  }
  return { source, dest };
}

/** The layer source that means standard input (`ocify import -`). */
export const standardInput = "-";

/** Paths that name this process's standard input: read from the stream Node already has open. */
const standardInputPaths = new Set([standardInput, "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"]);

/** Whether a layer source is this process's standard input. */
export function isStandardInput(path: string): boolean {
  return standardInputPaths.has(path);
}

/**
 * Whether a layer source is a tarball that can be read only once, as a stream: standard input, a FIFO,
 * a character device or a socket (anything that is neither a file nor a directory).
 */
export function isStreamSource(path: string): boolean {
  if (isStandardInput(path)) return true;
  try {
    const stat = statSync(path);
    return !stat.isFile() && !stat.isDirectory();
  } catch {
    return false; // missing: statLayerSource says so
  }
}

/** Whether a file name says it is a tarball (its compression is then detected by content). */
export function isTarballName(path: string): boolean {
  return /\.(tar|tgz|tbz2?|txz|tzst|tar\.(gz|zst|zstd|xz|bz2|bzip2))$/i.test(path);
}

/**
 * What a layer is made from, as its history line says it: "directory", "file" or "tarball" (a file read as
 * a tar, by the same rule as planLayer's). Never its path: that would put the build host's directory names
 * into the image and make its digest depend on where the sources sit.
 */
export function layerSourceKind(path: string, preserveOwners: boolean): "directory" | "file" | "tarball" {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return "directory";
  return preserveOwners || isTarballName(path) ? "tarball" : "file";
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

/** The tar header of a planned entry. */
export function headerOf(entry: PlanEntry): TarHeader {
  return {
    name: Buffer.from(entry.key, "latin1"),
    type: entry.type,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.size,
    mtime: entry.mtime,
    linkname: entry.linkname === undefined ? undefined : Buffer.from(entry.linkname, "latin1"),
    devmajor: entry.devmajor,
    devminor: entry.devminor,
    uname: entry.uname === undefined ? undefined : Buffer.from(entry.uname, "latin1"),
    gname: entry.gname === undefined ? undefined : Buffer.from(entry.gname, "latin1"),
    pax: entry.pax?.map(([key, value]) => [key, Buffer.from(value, "latin1")] as const),
  };
}

function shown(latin1: string): string {
  return Buffer.from(latin1, "latin1").toString();
}

function fail(path: string, error: unknown): never {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM")
    throw new InputError(`cannot read ${shown(path)}: permission denied`, { hint: "check its permissions" });
  if (code === "ENOENT")
    throw new InputError(`${shown(path)} disappeared while the layer was being listed`, { hint: "build again once it stops changing" });
  throw new InputError(`cannot read ${shown(path)}: ${(error as Error).message}`, { cause: error });
}

function byKey(a: PlanEntry, b: PlanEntry): number {
  // latin1 strings hold one byte per UTF-16 unit, so comparing them compares the bytes.
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** A directory entry made up for a missing parent. */
function parentEntry(key: string, options: EntryOptions): PlanEntry {
  return { key, type: "directory", mode: 0o755, uid: 0, gid: 0, size: 0, mtime: options.mtime, source: -1, sourceOffset: 0, detector: -1 };
}

/**
 * Sort entries by the bytes of their names, add missing parent directories, and turn repeated files into
 * hardlinks. With `unique` (a directory walk) names are known to be unique and parents present except
 * the destination's.
 */
export function finishEntries(entries: PlanEntry[], options: EntryOptions, links?: Iterable<PlanEntry[]>, unique = false): PlanEntry[] {
  let all: PlanEntry[];
  let present: (entry: PlanEntry) => boolean;
  if (unique) {
    all = entries;
    const first = entries[0];
    if (first) {
      for (let end = first.key.lastIndexOf("/"); end > 0; end = first.key.lastIndexOf("/", end - 1)) {
        all.push(parentEntry(first.key.slice(0, end), options));
      }
    }
    present = () => true;
  } else {
    // Later entries with the same name win (as when a tar is extracted).
    const byName = new Map<string, PlanEntry>();
    for (const entry of entries) {
      if (byName.has(entry.key)) byName.delete(entry.key);
      byName.set(entry.key, entry);
    }
    for (const key of [...byName.keys()]) {
      for (let end = key.lastIndexOf("/"); end > 0; end = key.lastIndexOf("/", end - 1)) {
        const parent = key.slice(0, end);
        if (byName.has(parent)) break;
        byName.set(parent, parentEntry(parent, options));
      }
    }
    all = [...byName.values()];
    present = (entry) => byName.get(entry.key) === entry;
  }
  const sorted = all.sort(byKey);
  for (const entry of sorted) {
    if (entry.type === "symlink" && entry.linkname !== undefined && symlinkEscapes(entry.key, entry.linkname)) {
      throw new InputError(`symlink /${shown(entry.key)} -> ${shown(entry.linkname)} points outside the image's root`, {
        hint: "Docker refuses such layers; make the link absolute or keep it inside the tree",
      });
    }
  }
  // Hardlinked files: the first name in sorted order carries the content, the others link to it.
  for (const group of links ?? []) {
    const alive = group.filter(present);
    if (alive.length < 2) continue;
    alive.sort(byKey);
    const first = alive[0] as PlanEntry;
    const content = alive.find((e) => e.type !== "link");
    if (!content) continue;
    if (content !== first) {
      first.type = content.type;
      first.mode = content.mode;
      first.uid = content.uid;
      first.gid = content.gid;
      first.size = content.size;
      first.linkname = content.linkname;
      first.devmajor = content.devmajor;
      first.devminor = content.devminor;
      first.uname = content.uname;
      first.gname = content.gname;
      first.pax = content.pax;
      first.source = content.source;
      first.sourceOffset = content.sourceOffset;
      first.detector = content.detector;
    }
    for (const other of alive.slice(1)) {
      Object.assign(other, {
        type: "link",
        size: 0,
        linkname: first.key,
        devmajor: undefined,
        devminor: undefined,
        source: -1,
        sourceOffset: 0,
        detector: -1,
      });
    }
  }
  return sorted;
}

/** Stat a layer source (following a symlink), with a one-line error when it is missing or unreadable. */
export function statLayerSource(path: string): BigIntStats {
  if (path === standardInput)
    throw new InputError("standard input (-) is not a directory or file to list", { hint: "only a tarball can come from standard input" });
  try {
    return statSync(path, { bigint: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new InputError(`layer source ${path} does not exist`, { hint: "check the paths in `layers`" });
    }
    fail(Buffer.from(path).toString("latin1"), error);
  }
}

/**
 * Plan a directory (its contents under `dest`, the directory itself as `dest`) or a single file (at
 * `dest`, or inside it when `dest` ends with "/").
 */
export function planPath(
  path: string,
  dest: string,
  options: EntryOptions,
  index?: StatIndexBuilder,
  known?: ReadonlyMap<string, BigIntStats>,
): LayerPlan {
  const top = statLayerSource(path);
  const prefix = Buffer.from(destPrefix(dest)).toString("latin1");
  const sources: string[] = [];
  const detectors = new Detectors();
  const entries: PlanEntry[] = [];
  const links = new Map<string, PlanEntry[]>();
  const { uid, gid, preserveOwners, mtime } = options;

  const add = (key: string, full: string, stat: BigIntStats): void => {
    const entry: PlanEntry = {
      key,
      type: "file",
      mode: Number(stat.mode & 0o7777n),
      uid: preserveOwners ? Number(stat.uid) : uid,
      gid: preserveOwners ? Number(stat.gid) : gid,
      size: 0,
      mtime,
      source: -1,
      sourceOffset: 0,
      detector: -1,
    };
    if (stat.isFile()) {
      entry.size = Number(stat.size);
      if (entry.size > 0) {
        entry.source = sources.push(full) - 1;
        entry.detector = detectors.add(stat);
      }
      if (stat.nlink > 1n) {
        const id = `${stat.dev}:${stat.ino}`;
        const group = links.get(id);
        if (group) group.push(entry);
        else links.set(id, [entry]);
      }
    } else if (stat.isDirectory()) entry.type = "directory";
    else if (stat.isSymbolicLink()) {
      entry.type = "symlink";
      try {
        entry.linkname = readlinkSync(fsPath(full), { encoding: "latin1" });
      } catch (error) {
        fail(full, error);
      }
    } else if (stat.isCharacterDevice() || stat.isBlockDevice()) {
      entry.type = stat.isCharacterDevice() ? "char" : "block";
      const { major, minor } = splitDevice(stat.rdev);
      entry.devmajor = major;
      entry.devminor = minor;
    } else if (stat.isFIFO()) entry.type = "fifo";
    else return; // sockets cannot be stored in a tar
    const xattrs = readXattrs(full);
    if (xattrs) entry.pax = xattrs;
    entries.push(entry);
  };

  const root = Buffer.from(path).toString("latin1");
  index?.add(root, top);
  if (!top.isDirectory()) {
    if (!top.isFile())
      throw new InputError(`layer source ${path} is not a file or directory`, { hint: "give a directory, a file or a tarball" });
    const trimmed = root.replace(/\/+$/, "");
    const base = trimmed.slice(trimmed.lastIndexOf("/") + 1);
    const key = dest.endsWith("/") ? (prefix ? `${prefix}/${base}` : base) : prefix;
    if (key === "")
      throw new InputError(`layer source ${path} is a file and needs a destination path`, { hint: "write SRC:/path/to/file" });
    add(key, root, top);
  } else {
    if (prefix) add(prefix, root, top);
    const stack: [string, string][] = [[root, prefix]];
    while (stack.length > 0) {
      const [dir, name] = stack.pop() as [string, string];
      let children: string[];
      try {
        children = readdirSync(fsPath(dir), { encoding: "latin1" });
      } catch (error) {
        fail(dir, error);
      }
      for (const child of children) {
        const full = `${dir}/${child}`;
        let stat: BigIntStats;
        try {
          stat = known?.get(full) ?? lstatSync(fsPath(full), { bigint: true });
        } catch (error) {
          fail(full, error);
        }
        const key = name ? `${name}/${child}` : child;
        index?.add(full, stat);
        add(key, full, stat);
        if (stat.isDirectory()) stack.push([full, key]);
      }
    }
  }
  return { entries: finishEntries(entries, options, links.values(), true), sources, detectors, description: path };
}
