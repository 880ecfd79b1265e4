/**
 * The file contents a Dockerfile build can read back: a base layer's files (spooled from the layer the
 * first time one is asked for, so a build that never reads a base file never extracts one), and the
 * files of the layers the build wrote (read again from where they came from: the context, a heredoc, an
 * archive's spool). Every layer gets a number here; a tree node's `content` names one.
 */
import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Readable, Readable as ReadableStream } from "node:stream";
import { createDecompressor, detectCompression } from "../codec.js";
import type { Layer } from "../image/layer.js";
import { layerCompression } from "../media-types.js";
import type { TreeEntry } from "./fs-tree.js";
import { type ReadTar, readTar, type SpooledContent } from "./tar-reader.js";

/** Something that opens a file's bytes. */
export type Opener = () => Readable | AsyncIterable<Uint8Array>;

interface BaseLayer {
  layer: Layer;
  entries?: Promise<TreeEntry[]>;
  spooled?: Promise<Map<string, SpooledContent>>;
}

/** A layer's bytes, decompressed (the compression from its media type, else from its first bytes). */
async function layerTar(layer: Layer): Promise<Readable> {
  const stream = await layer.open();
  let compression = layerCompression(layer.descriptor.mediaType);
  if (compression === undefined) {
    const head: Buffer | null = await new Promise((resolve) => {
      stream.once("readable", () => resolve(stream.read(4) as Buffer | null));
    });
    if (head) stream.unshift(head);
    compression = detectCompression(head ?? new Uint8Array());
  }
  const decompressor = await createDecompressor(compression);
  if (!decompressor) return stream;
  stream.on("error", (error) => decompressor.destroy(error));
  return stream.pipe(decompressor) as unknown as Readable;
}

/** The contents of one build's layers. */
export class LayerContents {
  #dir: Promise<string> | undefined;
  #next = 0;
  readonly #bases = new Map<number, BaseLayer>();
  readonly #baseIds = new Map<string, number>();
  readonly #openers = new Map<string, Opener>();

  /** A number for a layer the build writes. */
  newLayer(): number {
    return this.#next++;
  }

  /** Say how to open a written layer's file again. */
  register(layer: number, name: string, opener: Opener): void {
    this.#openers.set(`${layer}:${name}`, opener);
  }

  /** A base layer's number and entries (read once per digest, metadata only). */
  async baseLayer(layer: Layer): Promise<{ id: number; entries: TreeEntry[] }> {
    let id = this.#baseIds.get(layer.descriptor.digest);
    if (id === undefined) {
      id = this.newLayer();
      this.#baseIds.set(layer.descriptor.digest, id);
      this.#bases.set(id, { layer });
    }
    const base = this.#bases.get(id) as BaseLayer;
    const layerId = id;
    base.entries ??= layerTar(base.layer).then((tar) =>
      readTar(tar, `layer ${base.layer.descriptor.digest}`, layerId).then((r) => r.entries),
    );
    return { id, entries: await base.entries };
  }

  /** A spool file in this build's temporary directory. */
  async spoolPath(name: string): Promise<string> {
    this.#dir ??= mkdtemp(join(tmpdir(), "ocify-dockerfile-"));
    return join(await this.#dir, name);
  }

  /** Read an archive into entries numbered as a new layer, its contents spooled and registered. */
  async readArchive(tar: Readable, what: string): Promise<{ id: number; read: ReadTar }> {
    const id = this.newLayer();
    const path = await this.spoolPath(`archive-${id}`);
    const read = await readTar(tar, what, id, path);
    for (const [name, range] of read.spooled) this.register(id, name, () => rangeOf(path, range));
    return { id, read };
  }

  /** A file's bytes, from a written layer's source or a base layer's spool (made on first use). */
  open(content: { layer: number; name: string }): Readable {
    const opener = this.#openers.get(`${content.layer}:${content.name}`);
    if (opener) return toReadable(opener());
    const base = this.#bases.get(content.layer);
    if (!base) throw new Error(`no content known for layer ${content.layer}`);
    base.spooled ??= this.spoolPath(`layer-${content.layer}`).then(async (path) => {
      const read = await readTar(await layerTar(base.layer), `layer ${base.layer.descriptor.digest}`, content.layer, path);
      for (const [name, range] of read.spooled) this.register(content.layer, name, () => rangeOf(path, range));
      return read.spooled;
    });
    const spooled = base.spooled;
    const self = this;
    return ReadableStream.from(
      (async function* () {
        await spooled;
        const opener = self.#openers.get(`${content.layer}:${content.name}`);
        if (!opener) throw new Error(`layer ${base.layer.descriptor.digest} has no file ${content.name}`);
        yield* opener() as AsyncIterable<Uint8Array>;
      })(),
      { objectMode: false },
    );
  }

  /** A small file's whole content (/etc/passwd), as text. */
  async text(content: { layer: number; name: string }): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.open(content)) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks).toString("utf8");
  }

  /** Remove the spool files. */
  async close(): Promise<void> {
    if (this.#dir) await rm(await this.#dir, { recursive: true, force: true });
  }
}

function rangeOf(path: string, range: SpooledContent): Readable {
  if (range.size === 0) return ReadableStream.from([], { objectMode: false });
  return createReadStream(path, { start: range.start, end: range.start + range.size - 1 });
}

function toReadable(source: Readable | AsyncIterable<Uint8Array>): Readable {
  return source instanceof ReadableStream ? source : ReadableStream.from(source, { objectMode: false });
}
