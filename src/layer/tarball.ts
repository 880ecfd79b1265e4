/**
 * Tarball sources (`--layer app.tar.gz:/opt`, `ocify import rootfs.tar.xz`): the archive is read once
 * (decompressed by content), its file contents spooled to a temporary file, and its entries planned like
 * a directory's, sorted and re-rooted under the destination. Names that climb out of the root are
 * refused, as `docker import` does.
 */
import { randomBytes } from "node:crypto";
import { type BigIntStats, closeSync, createReadStream, fstatSync, ftruncateSync, openSync, writeSync } from "node:fs";
import { type DecodedStream, openTarball, openTarballStream } from "../codec.js";
import { fromSystemError, InputError, OcifyError } from "../errors.js";
import type { EntryType } from "../tar/header.js";
import { Detectors, destPrefix, type EntryOptions, finishEntries, isStandardInput, type LayerPlan, type PlanEntry } from "./plan.js";
import { readTarEntries, type TarInputEntry } from "./tar-reader.js";

/**
 * Normalize an entry name given as a byte string (latin1): strip leading "/" and "./", resolve "." and
 * "..", drop the trailing "/". Returns undefined when ".." climbs above the root.
 */
export function normalizeEntryName(name: string): string | undefined {
  const parts: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(part);
  }
  return parts.join("/");
}

const typeOf: Record<string, EntryType | undefined> = {
  "0": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "directory",
  "6": "fifo",
  D: "directory", // a GNU dumpdir (incremental archive): a directory with a listing as its data
};

/** What each typeflag ocify cannot store is, for the message that refuses it. */
const unstorable: Record<string, string> = {
  M: "a GNU multi-volume continuation",
  N: "an old GNU long-name script",
  X: "a Solaris extended header",
  A: "a Solaris ACL",
  E: "a Solaris extended attribute",
  I: "an inode-only entry",
};

/**
 * Pax records a layer's header takes over as they are: extended attributes (file capabilities,
 * `security.ima`, `user.*`), which Docker, containerd and GNU tar apply, and POSIX ACLs in star's form,
 * which GNU tar applies with --acls.
 */
const keptPrefixes = ["SCHILY.xattr.", "SCHILY.acl."];

/**
 * Records the layer writes itself (names, sizes, owners), or leaves out on purpose (times, which
 * SOURCE_DATE_EPOCH sets; inode bookkeeping; GNU sparse maps, applied to the content): none is reported.
 */
const consumed = new Set([
  "path",
  "linkpath",
  "size",
  "uid",
  "gid",
  "uname",
  "gname",
  "mtime",
  "atime",
  "ctime",
  "hdrcharset",
  "charset",
  "comment",
  "SCHILY.dev",
  "SCHILY.ino",
  "SCHILY.nlink",
  "LIBARCHIVE.creationtime",
  "GNU.volume.label",
]);

/** bsdtar's xattr record: `LIBARCHIVE.xattr.<name, %-escaped>=<value, base64>`. */
const libarchiveXattr = "LIBARCHIVE.xattr.";

/** The pax records of an entry that go into the layer, sorted by key; the rest counted in `dropped` unless consumed. */
function keptRecords(records: Map<string, string>, dropped: Map<string, number>): [string, string][] {
  const kept = new Map<string, string>();
  for (const [key, value] of records) {
    if (keptPrefixes.some((prefix) => key.startsWith(prefix))) kept.set(key, value);
    else if (key.startsWith(libarchiveXattr)) {
      const name = Buffer.from(decodeURIComponent(Buffer.from(key.slice(libarchiveXattr.length), "latin1").toString()));
      const schily = `SCHILY.xattr.${name.toString("latin1")}`;
      // bsdtar writes both forms for one attribute: the SCHILY one, raw, wins.
      if (!records.has(schily)) kept.set(schily, Buffer.from(value, "base64").toString("latin1"));
    } else if (!consumed.has(key) && !key.startsWith("GNU.sparse.")) dropped.set(key, (dropped.get(key) ?? 0) + 1);
  }
  return [...kept].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function refuse(tarball: string, name: string, why: string): never {
  throw new InputError(`refusing ${tarball}: entry "${Buffer.from(name, "latin1").toString()}" ${why}`, {
    hint: "the archive is damaged or hostile; fix the entry names and try again",
  });
}

/** What standard input is called in messages. */
const standardInputName = "standard input";

/** Open a tarball given as a path: a file, or a stream (standard input, a FIFO) read once. */
async function openInput(path: string, streamed: boolean): Promise<{ decoded: DecodedStream; what: string }> {
  if (!streamed) return { decoded: await openTarball(path), what: path };
  const stdin = isStandardInput(path);
  if (stdin && process.stdin.isTTY)
    throw new InputError("standard input is a terminal, not a tar archive", {
      hint: "pipe a tar into it: tar -cf - -C ROOTFS . | ocify import -",
    });
  const what = stdin ? standardInputName : path;
  const input = stdin ? process.stdin : createReadStream(path, { highWaterMark: 1 << 20 });
  return { decoded: await openTarballStream(input, what), what };
}

/**
 * A change detector for a tarball read as a stream: nothing identifies its contents before they are
 * read, so it is unique to this read (its blocks are never taken for another's on the detector's word).
 */
function streamDetector(): DetectorStat {
  const [a, b] = new BigUint64Array(randomBytes(16).buffer);
  return { size: 0n, mtimeNs: 0n, ctimeNs: 0n, ino: a as bigint, dev: b as bigint };
}

type DetectorStat = Pick<BigIntStats, "size" | "mtimeNs" | "ctimeNs" | "ino" | "dev">;

function pickDetector(stat: DetectorStat): DetectorStat {
  return { size: stat.size, mtimeNs: stat.mtimeNs, ctimeNs: stat.ctimeNs, ino: stat.ino, dev: stat.dev };
}

/** Everything planning one tarball keeps track of. */
interface TarballState {
  what: string;
  prefix: string;
  options: EntryOptions;
  spool: number;
  spooled: number;
  detectorAt(offset: number): number;
  entries: PlanEntry[];
  byName: Map<string, PlanEntry>;
  links: Map<PlanEntry, PlanEntry[]>;
  rootOf: Map<PlanEntry, PlanEntry>;
  /** Pax record keys left out, with a count of entries (reported once). */
  dropped: Map<string, number>;
  /** Names the archive made symlinks (nothing may be written below them). */
  symlinks: Set<string>;
}

/**
 * Plan a tarball's entries under `dest`, spooling file contents to `spoolPath` (the plan's only source).
 * `tarballStat` is the file's; without it the tarball is read as a stream (standard input, a FIFO).
 * `warn` hears, in one line, what the layer cannot keep (pax records no layer reader uses).
 */
export async function planTarball(
  path: string,
  dest: string,
  options: EntryOptions,
  spoolPath: string,
  tarballStat: BigIntStats | undefined,
  signal?: AbortSignal,
  warn?: (message: string) => void,
): Promise<LayerPlan> {
  const { decoded, what } = await openInput(path, tarballStat === undefined);
  // Every content comes from the spool. Its detector is the tarball's own, with the content's place in
  // the spool for a size: a block's key covers the detector and the range within the entry, so two
  // files of one size must not share a detector, or the middle blocks of both would get one key.
  const detectors = new Detectors();
  const tarball = tarballStat ?? streamDetector();
  const state: TarballState = {
    what,
    prefix: Buffer.from(destPrefix(dest)).toString("latin1"),
    options,
    spool: openSync(spoolPath, "w"),
    spooled: 0,
    detectorAt: (offset) => detectors.add({ ...pickDetector(tarball), size: BigInt(offset) }),
    entries: [],
    byName: new Map(),
    links: new Map(),
    rootOf: new Map(),
    dropped: new Map(),
    symlinks: new Set(),
  };
  try {
    for await (const { entry, content } of readTarEntries(decoded.stream, what)) {
      signal?.throwIfAborted();
      await planEntry(state, entry, content);
    }
    await decoded.finished();
  } catch (error) {
    decoded.stream.destroy();
    // A full disk under the spool is no fault of the archive's.
    if (error instanceof OcifyError || fromSystemError(error)) throw error;
    throw new InputError(`cannot read ${what} as a tar archive: ${(error as Error).message}`, {
      hint: "check that it is a tarball (tar, optionally gzip/zstd/xz/bzip2-compressed)",
      cause: error,
    });
  } finally {
    closeSync(state.spool);
  }
  if (state.dropped.size > 0 && warn) {
    const keys = [...state.dropped].map(([key, count]) => `${shown(key)} (${count})`).join(", ");
    warn(`${what}: left out what no layer reader uses (entries): ${keys}`);
  }
  return {
    entries: finishEntries(state.entries, options, state.links.values()),
    sources: [Buffer.from(spoolPath).toString("latin1")],
    detectors,
    description: what,
  };
}

function shown(latin1: string): string {
  return Buffer.from(latin1, "latin1").toString();
}

/** Plan one entry of the archive, spooling its content. */
async function planEntry(state: TarballState, entry: TarInputEntry, content: AsyncGenerator<Buffer>): Promise<void> {
  const { what, prefix, options } = state;
  const type = typeOf[entry.typeflag];
  // A volume label names the archive, not a file (as GNU.volume.label in a pax global header): nothing of the tree is in it.
  if (entry.typeflag === "V") return;
  if (type === undefined) {
    const kind = unstorable[entry.typeflag] ?? `of type '${shown(entry.typeflag)}'`;
    throw new InputError(`${what}: entry "${shown(entry.name)}" is ${kind}, which a layer cannot hold`, {
      hint: "repack the archive without it",
    });
  }
  const normalized = normalizeEntryName(entry.name);
  if (normalized === undefined) refuse(what, entry.name, "would escape the root (..)");
  checkHostileName(what, entry.name, normalized, state.symlinks);
  const name = prefix && normalized ? `${prefix}/${normalized}` : prefix || normalized;
  const planned: PlanEntry = {
    key: name,
    type,
    mode: entry.mode & 0o7777,
    uid: options.preserveOwners ? entry.uid : options.uid,
    gid: options.preserveOwners ? entry.gid : options.gid,
    size: 0,
    mtime: options.mtime,
    source: -1,
    sourceOffset: 0,
    detector: -1,
  };
  if (options.preserveOwners) {
    if (entry.uname !== "") planned.uname = entry.uname;
    if (entry.gname !== "") planned.gname = entry.gname;
  }
  const kept = keptRecords(entry.pax, state.dropped);
  if (kept.length > 0) planned.pax = kept;
  if (type === "file") await spoolContent(state, entry, content, planned);
  else planLink(state, entry, type, planned);
  if (name === "") return; // the root itself is not an entry of a layer
  if (type === "symlink") state.symlinks.add(normalized);
  const earlier = state.byName.get(name);
  if (earlier) {
    // A directory listed twice (tar c dir dir/sub) keeps its last metadata; any other name twice is ambiguous.
    if (earlier.type !== "directory" || type !== "directory") refuse(what, entry.name, "appears twice in the archive");
    Object.assign(earlier, { mode: planned.mode, uid: planned.uid, gid: planned.gid });
    return;
  }
  state.entries.push(planned);
  state.byName.set(name, planned);
}

/**
 * Refuse what only a hostile archive holds: an absolute name (where an extractor that does not strip
 * the "/" writes; GNU tar and bsdtar never write one unless told to), and an entry below a name the
 * archive made a symlink (a write through it lands wherever the link points, outside the root).
 */
function checkHostileName(what: string, rawName: string, normalized: string, symlinks: ReadonlySet<string>): void {
  if (rawName.startsWith("/") && normalized !== "") refuse(what, rawName, "has an absolute name");
  for (let slash = normalized.indexOf("/"); slash > 0; slash = normalized.indexOf("/", slash + 1)) {
    const parent = normalized.slice(0, slash);
    if (symlinks.has(parent)) refuse(what, rawName, `is written through "${shown(parent)}", a symlink of the archive`);
  }
}

/** Copy a file's content into the spool; a sparse file's segments go to their offsets, its holes stay holes. */
async function spoolContent(state: TarballState, entry: TarInputEntry, content: AsyncGenerator<Buffer>, planned: PlanEntry): Promise<void> {
  const size = entry.sparse ? entry.sparse.realSize : entry.size;
  planned.size = size;
  if (size === 0) return;
  const base = state.spooled;
  planned.source = 0;
  planned.sourceOffset = base;
  planned.detector = state.detectorAt(base);
  const segments: [number, number][] = entry.sparse ? entry.sparse.segments : [[0, size]];
  let segment = 0;
  let left = segments[0]?.[1] ?? 0;
  let at = base + (segments[0]?.[0] ?? 0);
  for await (const chunk of content) {
    let used = 0;
    while (used < chunk.length) {
      while (left === 0) {
        segment++;
        left = segments[segment]?.[1] as number;
        at = base + (segments[segment]?.[0] as number);
      }
      const take = Math.min(left, chunk.length - used);
      writeSync(state.spool, chunk, used, take, at);
      used += take;
      at += take;
      left -= take;
    }
  }
  // A file that ends in a hole: the spool is extended to its end, which reads as zeros.
  if (entry.sparse && fstatSync(state.spool).size < base + size) ftruncateSync(state.spool, base + size);
  state.spooled = base + size;
}

/** A link, device, directory or fifo: its target, numbers or group of hard links. */
function planLink(state: TarballState, entry: TarInputEntry, type: EntryType, planned: PlanEntry): void {
  const { what, prefix } = state;
  if (type === "symlink") planned.linkname = entry.linkname;
  if (type === "char" || type === "block") {
    planned.devmajor = entry.devmajor;
    planned.devminor = entry.devminor;
  }
  if (type !== "link") return;
  const target = normalizeEntryName(entry.linkname);
  if (target === undefined) refuse(what, entry.name, "is a hardlink that would escape the root (..)");
  const targetName = prefix && target ? `${prefix}/${target}` : prefix || target;
  const linked = state.byName.get(targetName);
  if (!linked) refuse(what, entry.name, `is a hardlink to "${shown(entry.linkname)}", which is not earlier in the archive`);
  if (linked.type === "directory") refuse(what, entry.name, "is a hardlink to a directory");
  const root = state.rootOf.get(linked) ?? linked;
  state.rootOf.set(planned, root);
  const group = state.links.get(root);
  if (group) group.push(planned);
  else state.links.set(root, [root, planned]);
  planned.linkname = targetName;
}
