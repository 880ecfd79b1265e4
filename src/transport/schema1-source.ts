/**
 * Docker schema 1 images, read through any source as the schema 2 images they convert to: `copy`,
 * `build --from` and `inspect` see a schema 2 manifest and a config served from memory, as skopeo would
 * write them. Converting needs each layer's diffID, which a schema 1 manifest does not carry: every layer
 * is read once (streamed, never held) unless its facts are remembered in the cache directory.
 */
import { Readable } from "node:stream";
import { defaultCacheDir } from "../cache.js";
import { type Digest, digestOf, shortDigest, unknownSize } from "../digest.js";
import type { Descriptor } from "../image/descriptor.js";
import type { RawManifest } from "../image/manifest.js";
import type { LayerFacts } from "../image/schema1.js";
import { isSchema1MediaType } from "../media-types.js";
import { noProgress } from "../progress.js";
import type { ImageSource, RegistryLocation, TransportOptions } from "./types.js";

/** A source that converts the schema 1 manifests of `source`; other manifests pass unchanged. */
export function convertingSchema1(source: ImageSource, options: TransportOptions): ImageSource {
  return new Schema1ConvertingSource(source, options);
}

class Schema1ConvertingSource implements ImageSource {
  readonly description: string;
  readonly location?: RegistryLocation;
  // By the digest of the schema 1 manifest: its conversion, made once.
  readonly #converted = new Map<string, Promise<RawManifest>>();
  // The configs the conversions made, by digest.
  readonly #configs = new Map<string, Buffer>();

  constructor(
    private readonly source: ImageSource,
    private readonly options: TransportOptions,
  ) {
    this.description = source.description;
    if (source.location) this.location = source.location;
  }

  async getManifest(digest?: Digest): Promise<RawManifest> {
    const raw = await this.source.getManifest(digest);
    if (!isSchema1MediaType(raw.mediaType)) return raw;
    let converted = this.#converted.get(raw.digest);
    if (!converted) {
      converted = this.#convert(raw);
      this.#converted.set(raw.digest, converted);
      converted.catch(() => this.#converted.delete(raw.digest));
    }
    return converted;
  }

  async #convert(raw: RawManifest): Promise<RawManifest> {
    // Loaded only when a schema 1 manifest is met: every other image pays nothing for them.
    const { convertSchema1, parseSchema1, schema1LayerBlobs } = await import("../image/schema1.js");
    const what = `schema 1 manifest ${shortDigest(raw.digest)} of ${this.description}`;
    const image = parseSchema1(raw, what);
    const facts = await this.#layerFacts(schema1LayerBlobs(image));
    const { manifest, config } = convertSchema1(image, facts, what);
    this.#configs.set(digestOf(config), config);
    return { ...manifest, convertedFrom: raw };
  }

  /** The facts of each layer blob: remembered ones, the others read from the source a few at a time. */
  async #layerFacts(blobs: readonly Digest[]): Promise<Map<string, LayerFacts>> {
    const { readLayerFacts, rememberedLayerFacts, rememberLayerFacts } = await import("../layer-facts.js");
    const cacheDir = this.options.cacheDir ?? defaultCacheDir();
    const facts = new Map<string, LayerFacts>();
    const unknown: Digest[] = [];
    for (const digest of blobs) {
      const known = rememberedLayerFacts(cacheDir, digest);
      if (known) facts.set(digest, known);
      else unknown.push(digest);
    }
    const progress = this.options.progress ?? noProgress;
    // The first failure stops the other reads.
    const stop = new AbortController();
    const signal = this.options.signal ? AbortSignal.any([this.options.signal, stop.signal]) : stop.signal;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < unknown.length && !stop.signal.aborted) {
        const digest = unknown[next++] as Digest;
        const what = `layer ${shortDigest(digest)} of ${this.description}`;
        const event = { kind: "diffID of layer", id: digest };
        progress({ ...event, phase: "start", bytes: 0 });
        const descriptor: Descriptor = { mediaType: "application/octet-stream", digest, size: unknownSize };
        const blob = await this.source.getBlob(descriptor, signal);
        const fact = await readLayerFacts(blob, what, signal, (bytes) => progress({ ...event, phase: "progress", bytes }));
        progress({ ...event, phase: "done", bytes: fact.size, total: fact.size });
        facts.set(digest, fact);
        await rememberLayerFacts(cacheDir, digest, fact);
      }
    };
    let failure: { error: unknown } | undefined;
    const guarded = (): Promise<void> =>
      worker().catch((error: unknown) => {
        failure ??= { error };
        stop.abort(error);
      });
    await Promise.all(Array.from({ length: Math.min(this.options.jobs ?? 2, 2, unknown.length) }, guarded));
    if (failure) throw failure.error;
    return facts;
  }

  async getBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<Readable> {
    const config = this.#configs.get(descriptor.digest);
    return config ? Readable.from([config]) : this.source.getBlob(descriptor, signal);
  }

  async close(): Promise<void> {
    await this.source.close();
  }
}
