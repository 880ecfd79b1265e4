/**
 * Tarball sources (`--layer app.tar.gz:/opt`, `ocify import rootfs.tar.xz`): the archive is read once
 * (decompressed by content), its file contents spooled to a temporary file, and its entries planned like
 * a directory's, sorted and re-rooted under the destination. Names that climb out of the root are
 * refused, as `docker import` does.
 */
import { type BigIntStats, closeSync, openSync, writeSync } from "node:fs";
import type { Readable } from "node:stream";
import tarStream from "tar-stream";
import { fromSystemError, InputError } from "../errors.js";
import { openTarball } from "./compression.js";
import { Detectors, destPrefix, type EntryOptions, finishEntries, type LayerPlan, type PlanEntry } from "./plan.js";
import type { EntryType } from "./tar.js";

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
  file: "file",
  "contiguous-file": "file",
  link: "link",
  symlink: "symlink",
  "character-device": "char",
  "block-device": "block",
  directory: "directory",
  fifo: "fifo",
};

interface PaxRecords {
  path?: string;
  linkpath?: string;
  uid?: string;
  gid?: string;
}

function refuse(tarball: string, name: string, why: string): never {
  throw new InputError(`refusing ${tarball}: entry "${Buffer.from(name, "latin1").toString()}" ${why}`, {
    hint: "the archive is damaged or hostile; fix the entry names and try again",
  });
}

/**
 * Refuse what only a hostile archive holds: an absolute name (where an extractor that does not strip
 * the "/" writes), and an entry below a name the archive made a symlink (a write through it lands
 * wherever the link points, outside the root).
 */
function checkHostileName(tarball: string, rawName: string, normalized: string, symlinks: ReadonlySet<string>): void {
  if (rawName.startsWith("/") && normalized !== "") refuse(tarball, rawName, "has an absolute name");
  for (let slash = normalized.indexOf("/"); slash > 0; slash = normalized.indexOf("/", slash + 1)) {
    const parent = normalized.slice(0, slash);
    if (symlinks.has(parent))
      refuse(tarball, rawName, `is written through "${Buffer.from(parent, "latin1").toString()}", a symlink of the archive`);
  }
}

/** Plan a tarball's entries under `dest`, spooling file contents to `spoolPath` (the plan's only source). */
export async function planTarball(
  path: string,
  dest: string,
  options: EntryOptions,
  spoolPath: string,
  tarballStat: BigIntStats,
  signal?: AbortSignal,
): Promise<LayerPlan> {
  const decoded = await openTarball(path);
  const prefix = destPrefix(dest);
  const extract = tarStream.extract({ filenameEncoding: "latin1", allowUnknownFormat: true } as never);
  const spool = openSync(spoolPath, "w");
  const entries: PlanEntry[] = [];
  // Every content comes from the spool; the tarball's own change detector stands for all of them.
  const detectors = new Detectors();
  const detector = detectors.add(tarballStat);
  const byName = new Map<string, PlanEntry>();
  const links = new Map<PlanEntry, PlanEntry[]>();
  const rootOf = new Map<PlanEntry, PlanEntry>();
  const symlinks = new Set<string>();
  let spooled = 0;
  let count = 0;
  try {
    const feeding = new Promise<void>((resolve, reject) => {
      decoded.stream.on("error", (error) => {
        reject(error);
        extract.destroy(error);
      });
      extract.on("error", reject);
      extract.on("finish", resolve);
      decoded.stream.on("data", (chunk: Buffer) => {
        if (!extract.write(chunk)) decoded.stream.pause();
      });
      extract.on("drain", () => decoded.stream.resume());
      decoded.stream.on("end", () => (extract as unknown as { end(): void }).end());
    });
    feeding.catch(() => {});
    for await (const entry of extract as unknown as AsyncIterable<Readable & { header: tarStream.Header }>) {
      signal?.throwIfAborted();
      count++;
      const header = entry.header;
      const pax = (header.pax ?? undefined) as PaxRecords | undefined;
      const rawName = pax?.path !== undefined ? Buffer.from(pax.path, "utf8").toString("latin1") : header.name;
      const type = typeOf[header.type];
      if (type === undefined) {
        entry.resume();
        throw new InputError(`${path}: entry "${header.name}" has type ${header.type}, which ocify cannot store`, {
          hint: "repack the archive without it",
        });
      }
      const normalized = normalizeEntryName(rawName);
      if (normalized === undefined) refuse(path, rawName, "would escape the root (..)");
      checkHostileName(path, rawName, normalized, symlinks);
      const name = prefix && normalized ? `${prefix}/${normalized}` : prefix || normalized;
      const uid = pax?.uid !== undefined ? Number(pax.uid) : header.uid;
      const gid = pax?.gid !== undefined ? Number(pax.gid) : header.gid;
      const planned: PlanEntry = {
        key: name,
        type,
        mode: header.mode & 0o7777,
        uid: options.preserveOwners ? uid : options.uid,
        gid: options.preserveOwners ? gid : options.gid,
        size: 0,
        mtime: options.mtime,
        source: -1,
        sourceOffset: 0,
        detector: -1,
      };
      if (type === "file") {
        planned.size = header.size;
        if (header.size > 0) {
          planned.source = 0;
          planned.sourceOffset = spooled;
          planned.detector = detector;
          let written = 0;
          for await (const chunk of entry as AsyncIterable<Buffer>) {
            writeSync(spool, chunk, 0, chunk.length, spooled + written);
            written += chunk.length;
          }
          if (written !== header.size) throw new InputError(`${path} is truncated (entry "${header.name}")`);
          spooled += written;
        }
      } else {
        entry.resume();
        const rawLink = pax?.linkpath !== undefined ? Buffer.from(pax.linkpath, "utf8").toString("latin1") : (header.linkname ?? "");
        if (type === "symlink") planned.linkname = rawLink;
        if (type === "char" || type === "block") {
          planned.devmajor = header.devmajor;
          planned.devminor = header.devminor;
        }
        if (type === "link") {
          const target = normalizeEntryName(rawLink);
          if (target === undefined) refuse(path, rawName, "is a hardlink that would escape the root (..)");
          const targetName = prefix && target ? `${prefix}/${target}` : prefix || target;
          const linked = byName.get(targetName);
          if (!linked) refuse(path, rawName, `is a hardlink to "${rawLink}", which is not earlier in the archive`);
          if (linked.type === "directory") refuse(path, rawName, "is a hardlink to a directory");
          const root = rootOf.get(linked) ?? linked;
          rootOf.set(planned, root);
          const group = links.get(root);
          if (group) group.push(planned);
          else links.set(root, [root, planned]);
          planned.linkname = targetName;
        }
      }
      if (name === "") continue; // the root itself is not an entry of a layer
      if (type === "symlink") symlinks.add(normalized);
      const earlier = byName.get(name);
      if (earlier) {
        // A directory listed twice (tar c dir dir/sub) keeps its last metadata; any other name twice is ambiguous.
        if (earlier.type !== "directory" || type !== "directory") refuse(path, rawName, "appears twice in the archive");
        Object.assign(earlier, { mode: planned.mode, uid: planned.uid, gid: planned.gid });
        continue;
      }
      entries.push(planned);
      byName.set(name, planned);
    }
    await feeding;
    await decoded.finished();
  } catch (error) {
    decoded.stream.destroy();
    // A full disk under the spool is no fault of the archive's.
    if (error instanceof InputError || fromSystemError(error)) throw error;
    throw new InputError(`cannot read ${path} as a tar archive: ${(error as Error).message}`, {
      hint: "check that it is a tarball (tar, optionally gzip/zstd/xz/bzip2-compressed)",
      cause: error,
    });
  } finally {
    closeSync(spool);
  }
  if (count === 0) throw new InputError(`${path} is an empty or unreadable tar archive`, { hint: "check the file" });
  return {
    entries: finishEntries(entries, options, links.values()),
    sources: [Buffer.from(spoolPath).toString("latin1")],
    detectors,
    description: path,
  };
}
