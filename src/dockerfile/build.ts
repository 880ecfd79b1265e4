/**
 * `buildDockerfile`: a Dockerfile without RUN built as docker builds it, with no daemon. For each platform,
 * the stages the target needs are built in order (stage-build.ts), each on its base (scratch, an image
 * through any transport, an earlier stage); the target's image (or an index over the platforms' images)
 * is written to every destination by copyImage, the one writer. A RUN is refused before anything is read.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { cachingSource, resolveBases } from "../build/base.js";
import type { BuildResult } from "../build.js";
import { BlobCache, defaultCacheDir } from "../cache.js";
import { copyImage, KnownBlobs } from "../copy.js";
import { InputError, UsageError } from "../errors.js";
import { formatPlatform, hostPlatform, type Platform, parsePlatform } from "../image/descriptor.js";
import { emptyImage, formatOf, type Image, type ImageIndex } from "../image/image.js";
import * as mutate from "../image/mutate.js";
import type { ImageSource } from "../image/source.js";
import type { Compression, ManifestFormat } from "../media-types.js";
import { createdTimestamp } from "../mutate.js";
import { noProgress } from "../progress.js";
import { checkDestination, openDestination, openSource, parseTransportReference } from "../transport/transport.js";
import type { ImageDestination, TransportOptions } from "../transport/types.js";
import { LayerContents } from "./contents.js";
import type { CopySource } from "./evaluate.js";
import { FsTree } from "./fs-tree.js";
import { IgnoreMatcher, parseIgnoreFile } from "./ignore.js";
import { DockerfileError, type ParsedDockerfile, parseDockerfile } from "./parser.js";
import { ContextTree, ImageTree, type SourceTree } from "./source-tree.js";
import { type BuiltStage, buildStage } from "./stage-build.js";
import { type DockerfilePlan, planDockerfile, type Stage } from "./stages.js";

/** Everything `buildDockerfile` needs: docker build's options, by their docker names. */
export interface DockerfileBuildOptions extends TransportOptions {
  /** The build context: the directory COPY and ADD read from. */
  context: string;
  /** The Dockerfile (`-f`); default `CONTEXT/Dockerfile`. */
  dockerfile?: string;
  /** `--build-arg KEY=VALUE`. */
  buildArgs?: Readonly<Record<string, string>>;
  /** `--target`: the stage to build (default the last). */
  target?: string;
  /** `--platform`: one image per platform (an index when several); default this host's. */
  platforms?: readonly Platform[];
  /** `--label KEY=VALUE`: labels of the built image. */
  labels?: Readonly<Record<string, string>>;
  /** Destinations as transport references (`-t`). */
  tags: readonly string[];
  /** Drop RUN lines, with a warning each, instead of refusing the Dockerfile. */
  skipRun?: boolean;
  compression?: Compression;
  compressionLevel?: number;
  /** Timestamp for `created`, history and every tar entry; default 0 (the epoch). */
  sourceDateEpoch?: number;
  /** Where warnings go (default: stderr, one line each). */
  warn?: (message: string) => void;
}

/** A base image opened for one platform: the image, its manifest family, its filesystem. */
interface OpenedImage {
  image: Image;
  format: ManifestFormat;
  tree: Promise<FsTree>;
}

/** One build's shared state: what is open, what was read, where layers go. */
class DockerfileRun {
  readonly cacheDir: string;
  readonly contents = new LayerContents();
  readonly sources: ImageSource[] = [];
  readonly images = new Map<string, Promise<OpenedImage>>();
  readonly context: ContextTree;
  readonly created: string;

  constructor(
    readonly options: DockerfileBuildOptions,
    readonly parsed: ParsedDockerfile,
  ) {
    this.cacheDir = options.cacheDir ?? defaultCacheDir();
    this.context = new ContextTree(options.context, readIgnore(options.context));
    this.created = createdTimestamp(options.sourceDateEpoch);
  }

  /** An image named in FROM or COPY --from, for one platform, opened once per build. */
  openImage(reference: string, platform: Platform): Promise<OpenedImage> {
    const key = `${reference}\n${formatPlatform(platform)}`;
    let opened = this.images.get(key);
    if (!opened) {
      opened = (async () => {
        const source = cachingSource(await openSource(parseTransportReference(reference), this.options), new BlobCache(this.cacheDir));
        this.sources.push(source);
        const [base] = await resolveBases(source, [platform], true);
        const image = (base as NonNullable<typeof base>).image;
        return { image, format: await formatOf(image), tree: this.treeOf(image) };
      })();
      this.images.set(key, opened);
    }
    return opened;
  }

  /** An image's filesystem, its layers read in order (metadata only). */
  async treeOf(image: Image): Promise<FsTree> {
    const tree = new FsTree();
    for (const layer of await image.layers()) tree.applyLayer((await this.contents.baseLayer(layer)).entries);
    return tree;
  }

  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close().catch(() => {})));
    await this.contents.close();
  }
}

function readIgnore(context: string): IgnoreMatcher {
  const path = join(context, ".dockerignore");
  return new IgnoreMatcher(existsSync(path) ? parseIgnoreFile(readFileSync(path, "utf8")) : []);
}

function readDockerfile(options: DockerfileBuildOptions): ParsedDockerfile {
  if (!statSync(options.context, { throwIfNoEntry: false })?.isDirectory()) {
    throw new InputError(`the build context ${options.context} is not a directory`, {
      hint: "give the directory COPY and ADD read from, last",
    });
  }
  const path = options.dockerfile ?? join(options.context, "Dockerfile");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError(`cannot read the Dockerfile ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      hint: "give its path with -f, or put a Dockerfile in the context directory",
      cause: error,
    });
  }
  return parseDockerfile(text, options.dockerfile ?? "Dockerfile");
}

/** Refuse RUN before anything is fetched or written: the stages to build are known from the file alone. */
function refuseRun(plan: DockerfilePlan): void {
  for (const index of plan.order) {
    const run = plan.stages[index]?.body.find((i) => i.kind === "RUN");
    if (run) {
      throw new DockerfileError(
        plan.file,
        run.source.line,
        "RUN is not supported: ocify builds images without running containers",
        "build the artifacts before the image and COPY them, or pass --skip-run to drop RUN lines",
      );
    }
  }
}

/** The base of a stage: its image, filesystem (a copy the stage may change) and manifest family. */
async function stageBase(
  run: DockerfileRun,
  stage: Stage,
  platform: Platform,
  built: Map<number, BuiltStage & { format: ManifestFormat }>,
) {
  if (stage.base.kind === "scratch") return { image: emptyImage(platform), tree: new FsTree(), format: "oci" as ManifestFormat };
  if (stage.base.kind === "stage") {
    const earlier = built.get(stage.base.index) as BuiltStage & { format: ManifestFormat };
    return { image: earlier.image, tree: earlier.tree.clone(), format: earlier.format };
  }
  const opened = await run.openImage(stage.base.reference, stage.base.platform ?? platform);
  return { image: opened.image, tree: (await opened.tree).clone(), format: opened.format };
}

/** The target's image for one platform, every stage it needs built first. */
async function buildPlatform(run: DockerfileRun, platform: Platform): Promise<Image> {
  const { options, parsed } = run;
  const dockerfile = {
    buildArgs: new Map(Object.entries(options.buildArgs ?? {})),
    target: options.target,
    platform,
    buildPlatform: hostPlatform(),
    skipRun: options.skipRun,
    warn: options.warn ?? ((message: string) => process.stderr.write(`ocify: warning: ${message}\n`)),
  };
  const plan = planDockerfile(parsed, dockerfile);
  if (!options.skipRun) refuseRun(plan);
  const built = new Map<number, BuiltStage & { format: ManifestFormat }>();
  const sourceOf = async (from: CopySource): Promise<SourceTree> => {
    if (from.kind === "stage") {
      const stage = built.get(from.index) as BuiltStage;
      const name = plan.stages[from.index]?.name ?? String(from.index);
      return new ImageTree(`stage ${name}`, stage.tree, (c) => run.contents.open(c));
    }
    if (from.kind === "image") {
      const opened = await run.openImage(from.reference, platform);
      return new ImageTree(from.reference, await opened.tree, (c) => run.contents.open(c));
    }
    return run.context;
  };
  for (const index of plan.order) {
    const stage = plan.stages[index] as Stage;
    const base = await stageBase(run, stage, platform, built);
    const result = await buildStage({
      plan,
      stage,
      base: base.image,
      tree: base.tree,
      contents: run.contents,
      context: run.context,
      sourceOf,
      dockerfile,
      layers: layerOptions(run, base.format),
      created: run.created,
      mtime: options.sourceDateEpoch ?? 0,
    });
    built.set(index, { ...result, format: base.format });
  }
  const target = (built.get(plan.target) as BuiltStage).image;
  return options.labels && Object.keys(options.labels).length > 0 ? withLabels(target, options.labels) : target;
}

function layerOptions(run: DockerfileRun, format: ManifestFormat) {
  const { options } = run;
  return {
    cacheDir: run.cacheDir,
    format,
    ...(options.compression ? { compression: options.compression } : {}),
    ...(options.compressionLevel !== undefined ? { level: options.compressionLevel } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
}

/** `--label`: labels set on the built image, as BuildKit sets them (no history line). */
function withLabels(image: Image, labels: Readonly<Record<string, string>>): Image {
  return mutate.config(image, (config) => {
    config.config = { ...config.config, Labels: { ...(config.config?.Labels ?? {}), ...labels } };
    return config;
  });
}

/** Check the request before any work: destinations given and writable where they point. */
function checkOptions(options: DockerfileBuildOptions): void {
  if (options.tags.length === 0)
    throw new UsageError("no destination given", { hint: "give -t a destination: a registry, docker-archive:FILE, oci:DIR…" });
  for (const tag of options.tags) checkDestination(parseTransportReference(tag));
  if ((options.platforms?.length ?? 0) > 1 && options.tags.some((t) => parseTransportReference(t).transport === "docker-archive")) {
    throw new UsageError("a docker-archive holds one image, not a multi-platform index", {
      hint: "write it to a registry, oci: or oci-archive:, or build one platform",
    });
  }
}

/** Build a Dockerfile (with no RUN) and write the image, or an index of images, to every destination. */
export async function buildDockerfile(options: DockerfileBuildOptions): Promise<BuildResult> {
  checkOptions(options);
  const run = new DockerfileRun(options, readDockerfile(options));
  const destinations: ImageDestination[] = [];
  try {
    const platforms = options.platforms?.length ? options.platforms : [hostPlatform()];
    const images: { image: Image; platform: Platform }[] = [];
    for (const platform of platforms) images.push({ image: await buildPlatform(run, platform), platform });
    const top: Image | ImageIndex =
      images.length === 1
        ? (images[0] as { image: Image }).image
        : mutate.index(images.map(({ image, platform }) => ({ image, platform })));
    for (const tag of options.tags)
      destinations.push(await openDestination(parseTransportReference(tag), { ...options, cacheDir: run.cacheDir }));
    const written = await copyImage(top, destinations, { ...options, known: new KnownBlobs() });
    const progress = options.progress ?? noProgress;
    for (const w of written) progress({ phase: "done", kind: "manifest", id: w.digest, bytes: w.size, target: w.destination });
    const raw = await top.rawManifest();
    return { digest: raw.digest, manifest: raw.bytes, configs: await Promise.all(images.map((i) => i.image.rawConfig())), written };
  } catch (error) {
    await Promise.all(destinations.map((d) => d.abort().catch(() => {})));
    throw error;
  } finally {
    await run.close();
  }
}

/** A `--platform` value: platforms separated by commas. */
export function parsePlatforms(text: string): Platform[] {
  return text.split(",").map((p) => parsePlatform(p.trim()));
}
