/**
 * A Dockerfile layer's tar, written as its entries are produced (a COPY's files, a WORKDIR's directories,
 * an archive's entries as ADD reads them), each file's content streamed from where it is: memory never
 * holds more than a chunk of any file. What is written is also given back, without contents, so the
 * stage's filesystem (fs-tree.ts) can take the layer in without reading it again.
 */
import { Readable } from "node:stream";
import { InputError } from "../errors.js";
import type { Layer } from "../image/layer.js";
import { layerFromTar, type StreamLayerOptions } from "../layer/stream.js";
import { encodeHeader, endOfArchiveSize, paddingFor } from "../tar/header.js";
import type { EntryMeta, TreeEntry } from "./fs-tree.js";

/** One entry of a layer: where it goes, what it is, and a regular file's content. */
export interface LayerEntry extends EntryMeta {
  /** The path in the image as bytes (latin1), normalized: no leading or trailing `/`. */
  name: string;
  /** A regular file's content, opened when the entry is written. */
  content?: (() => Readable | AsyncIterable<Uint8Array>) | undefined;
}

async function* entryBytes(entry: LayerEntry, mtime: number): AsyncGenerator<Uint8Array> {
  const file = entry.type === "file";
  yield encodeHeader({
    name: Buffer.from(entry.name, "latin1"),
    type: entry.type,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size: file ? entry.size : 0,
    mtime,
    linkname: entry.linkname === undefined ? undefined : Buffer.from(entry.linkname, "latin1"),
    devmajor: entry.devmajor,
    devminor: entry.devminor,
  });
  if (!file) return;
  let written = 0;
  for await (const chunk of entry.content?.() ?? []) {
    written += (chunk as Uint8Array).length;
    if (written > entry.size) break;
    yield chunk as Uint8Array;
  }
  if (written !== entry.size) {
    const shown = Buffer.from(entry.name, "latin1").toString();
    throw new InputError(`/${shown} changed while it was copied (${written} bytes, not ${entry.size})`, {
      hint: "build again once it stops changing",
    });
  }
  yield Buffer.alloc(paddingFor(entry.size));
}

async function* tarOf(entries: AsyncIterable<LayerEntry> | Iterable<LayerEntry>, mtime: number, written: TreeEntry[], layer: number) {
  for await (const entry of entries) {
    yield* entryBytes(entry, mtime);
    const { name, type, mode, uid, gid, size, linkname, devmajor, devminor } = entry;
    written.push(
      type === "link"
        ? { name, node: { type, mode, uid, gid, size: 0 }, hardlink: linkname }
        : {
            name,
            node: { type, mode, uid, gid, size, linkname, devmajor, devminor, content: type === "file" ? { layer, name } : undefined },
          },
    );
  }
  yield Buffer.alloc(endOfArchiveSize);
}

/**
 * Write `entries` as a layer into the blob cache. Returns the layer and what it holds, as entries for
 * the stage's filesystem (`layer` is the index the layer will have among the image's layers).
 */
export async function writeLayer(
  entries: AsyncIterable<LayerEntry> | Iterable<LayerEntry>,
  layer: number,
  mtime: number,
  options: StreamLayerOptions,
): Promise<{ layer: Layer; written: TreeEntry[] }> {
  const written: TreeEntry[] = [];
  const built = await layerFromTar(Readable.from(tarOf(entries, mtime, written, layer), { objectMode: false }), options);
  return { layer: built, written };
}
