/**
 * Read a tar (a base image's layer, an archive ADD extracts) into entries for a stage's filesystem
 * (fs-tree.ts), optionally spooling every file's content into one file, so a later COPY --from or a
 * look-up in /etc/passwd can stream it from there. Memory holds one chunk at a time, whatever the sizes.
 */
import { type FileHandle, open } from "node:fs/promises";
import type { Readable } from "node:stream";
import tarStream from "tar-stream";
import { InputError } from "../errors.js";
import { normalizeEntryName } from "../layer/tarball.js";
import type { EntryType } from "../tar/header.js";
import type { TreeEntry } from "./fs-tree.js";

/** Where a spooled file's content is: a byte range of the spool file. */
export interface SpooledContent {
  start: number;
  size: number;
}

/** A tar read: its entries in order, and (when spooled) each file's content by entry name. */
export interface ReadTar {
  entries: TreeEntry[];
  spooled: Map<string, SpooledContent>;
}

interface Pax {
  path?: string;
  linkpath?: string;
  uid?: string;
  gid?: string;
}

/** tar-stream's entry types as a layer names them (a copy of layer/tarball.ts's, which main is changing). */
const tarEntryTypes: Record<string, EntryType | undefined> = {
  file: "file",
  "contiguous-file": "file",
  link: "link",
  symlink: "symlink",
  "character-device": "char",
  "block-device": "block",
  directory: "directory",
  fifo: "fifo",
};

/** Feed `input` to a tar extractor, with backpressure; the promise settles when the input ends. */
function feed(input: Readable, extract: tarStream.Extract): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    input.on("error", (error) => {
      reject(error);
      extract.destroy(error);
    });
    extract.on("error", reject);
    extract.on("finish", resolve);
    input.on("data", (chunk: Buffer) => {
      if (!extract.write(chunk)) input.pause();
    });
    extract.on("drain", () => input.resume());
    input.on("end", () => (extract as unknown as { end(): void }).end());
  });
  done.catch(() => {});
  return done;
}

/**
 * Read a tar stream (already decompressed) as tree entries whose contents are `{ layer, name }`. With
 * `spoolPath`, every regular file's bytes are written there and located in `spooled`.
 */
export async function readTar(input: Readable, what: string, layer: number, spoolPath?: string): Promise<ReadTar> {
  let spool: FileHandle | undefined;
  try {
    spool = spoolPath === undefined ? undefined : await open(spoolPath, "w");
  } catch (error) {
    input.destroy();
    throw error;
  }
  const extract = tarStream.extract({ filenameEncoding: "latin1", allowUnknownFormat: true } as never);
  // The iterator listens for entries before a byte is fed: an entry announced with no listener is never
  // taken, and the extract then waits for ever (seen when the input was quicker than the spool's open).
  const read = (extract as unknown as AsyncIterable<Readable & { header: tarStream.Header }>)[Symbol.asyncIterator]();
  const feeding = feed(input, extract);
  const entries: TreeEntry[] = [];
  const spooled = new Map<string, SpooledContent>();
  let offset = 0;
  try {
    for await (const entry of { [Symbol.asyncIterator]: () => read }) {
      const { header } = entry;
      const pax = (header.pax ?? undefined) as Pax | undefined;
      const rawName = pax?.path !== undefined ? Buffer.from(pax.path, "utf8").toString("latin1") : header.name;
      const type = tarEntryTypes[header.type];
      const name = normalizeEntryName(rawName);
      if (type === undefined || name === undefined || name === "") {
        entry.resume();
        if (type === undefined) {
          throw new InputError(`${what}: entry "${header.name}" has type ${header.type}, which ocify cannot read`);
        }
        if (name === undefined) throw new InputError(`${what}: entry "${header.name}" would escape the root (..)`);
        continue;
      }
      const rawLink = pax?.linkpath !== undefined ? Buffer.from(pax.linkpath, "utf8").toString("latin1") : (header.linkname ?? "");
      const node = {
        type,
        mode: header.mode & 0o7777,
        uid: pax?.uid !== undefined ? Number(pax.uid) : header.uid,
        gid: pax?.gid !== undefined ? Number(pax.gid) : header.gid,
        size: type === "file" ? header.size : 0,
        linkname: type === "symlink" ? rawLink : undefined,
        devmajor: header.devmajor,
        devminor: header.devminor,
        content: type === "file" ? { layer, name } : undefined,
      };
      if (type === "file" && spool) {
        let written = 0;
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          await spool.write(chunk, 0, chunk.length, offset + written);
          written += chunk.length;
        }
        spooled.set(name, { start: offset, size: written });
        offset += written;
      } else entry.resume();
      if (type === "link") {
        const target = normalizeEntryName(rawLink);
        if (target === undefined) throw new InputError(`${what}: hardlink "${header.name}" would escape the root (..)`);
        entries.push({ name, node, hardlink: target });
      } else entries.push({ name, node });
    }
    await feeding;
  } finally {
    await spool?.close();
  }
  return { entries, spooled };
}
