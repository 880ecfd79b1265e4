/**
 * One stage of a Dockerfile built on its base: the instructions evaluated (evaluate.ts), each COPY, ADD
 * and directory-making WORKDIR written as a layer while the stage's filesystem follows along (fs-tree.ts),
 * the other instructions recorded as `empty_layer` history lines, then the image derived from the base
 * through the model: the config replaced, the layers and history appended.
 */

import { openTarball } from "../codec.js";
import type { History } from "../image/config.js";
import type { Image } from "../image/image.js";
import type { Layer } from "../image/layer.js";
import * as mutate from "../image/mutate.js";
import type { StreamLayerOptions } from "../layer/stream.js";
import type { LayerContents } from "./contents.js";
import { type CopyStep, newDirectory, planCopy, withParents } from "./copy.js";
import { evaluateStage, type LayerStep, type StageBuilder } from "./evaluate.js";
import { type FsTree, joinPath, pathElements } from "./fs-tree.js";
import { type LayerEntry, writeLayer } from "./layer-writer.js";
import type { ContextTree, SourceTree } from "./source-tree.js";
import type { DockerfileOptions, DockerfilePlan, Stage } from "./stages.js";

/** What a stage builds on, and what the build shares with it. */
export interface StageInput {
  plan: DockerfilePlan;
  stage: Stage;
  base: Image;
  /** The base's filesystem (the stage changes it as it goes: give it a copy). */
  tree: FsTree;
  contents: LayerContents;
  context: ContextTree;
  /** The tree a `COPY --from` reads: an earlier stage's, or an image's. */
  sourceOf(from: CopyStep["from"]): Promise<SourceTree>;
  dockerfile: DockerfileOptions;
  layers: StreamLayerOptions;
  /** `created` of the config and history. */
  created: string;
  /** Every tar entry's modification time (seconds). */
  mtime: number;
}

/** A built stage: its image and its filesystem. */
export interface BuiltStage {
  image: Image;
  tree: FsTree;
}

/** Build one stage. */
export async function buildStage(input: StageInput): Promise<BuiltStage> {
  const additions: mutate.Addition[] = [];
  const line = (createdBy: string): History => ({ created: input.created, created_by: createdBy });
  const builder: StageBuilder = {
    addHistory: (createdBy) => {
      additions.push({ history: { ...line(createdBy), empty_layer: true } });
    },
    addLayer: async (step) => {
      const layer = await layerOf(input, step);
      additions.push(layer ? { layer, history: line(step.createdBy) } : { history: { ...line(step.createdBy), empty_layer: true } });
    },
    lookupUser: async (name) => {
      const entry = (await databaseLines(input, "etc/passwd")).find((fields) => fields[0] === name);
      return entry && /^\d+$/.test(entry[2] ?? "") && /^\d+$/.test(entry[3] ?? "")
        ? { uid: Number(entry[2]), gid: Number(entry[3]) }
        : undefined;
    },
    lookupGroup: async (name) => {
      const entry = (await databaseLines(input, "etc/group")).find((fields) => fields[0] === name);
      return entry && /^\d+$/.test(entry[2] ?? "") ? Number(entry[2]) : undefined;
    },
  };
  const baseConfig = await input.base.config();
  const result = await evaluateStage(input.plan, input.stage, baseConfig, builder, input.dockerfile);
  const edited = mutate.config(input.base, (config) => {
    config.created = input.created;
    config.config = result.config;
    if (result.author === undefined) delete config.author;
    else config.author = result.author;
    return config;
  });
  return { image: mutate.append(edited, additions), tree: input.tree };
}

/** The `:`-separated fields of each line of /etc/passwd or /etc/group as the stage has it (none when absent). */
async function databaseLines(input: StageInput, path: string): Promise<string[][]> {
  const { node } = input.tree.resolve(path);
  if (node?.type !== "file" || !node.content) return [];
  const text = await input.contents.text(node.content);
  return text.split("\n").map((l) => l.split(":"));
}

/** The layer a step writes, or undefined when it changes nothing (a WORKDIR that exists). */
async function layerOf(input: StageInput, step: LayerStep): Promise<Layer | undefined> {
  let entries: LayerEntry[];
  if (step.kind === "workdir") {
    const real = input.tree.resolve(step.path);
    if (real.node?.type === "directory") return undefined;
    // As BuildKit does, the directories WORKDIR makes belong to the current USER.
    entries = withParents(new Map([[real.path, newDirectory(real.path, step.chown)]]), input.tree, step.chown);
  } else {
    const source = step.from.kind === "context" ? input.context : await input.sourceOf(step.from);
    const plan = await planCopy(step, source, input.tree, input.plan.file);
    for (const archive of plan.archives) await addArchive(input, step, archive.path, archive.dir, plan.entries);
    entries = withParents(plan.entries, input.tree, step.chown);
  }
  const id = input.contents.newLayer();
  for (const entry of entries) if (entry.content) input.contents.register(id, entry.name, entry.content);
  const { layer, written } = await writeLayer(entries, id, input.mtime, input.layers);
  input.tree.applyLayer(written);
  return layer;
}

/** An archive ADD extracts: its entries under `dir`, owners kept unless --chown; a hardlink becomes a copy. */
async function addArchive(input: StageInput, step: CopyStep, path: string, dir: string, entries: Map<string, LayerEntry>) {
  const decoded = await openTarball(input.context.diskPath(path));
  const { id, read } = await input.contents.readArchive(decoded.stream, path);
  await decoded.finished();
  const byName = new Map(read.entries.map((e) => [e.name, e]));
  for (const entry of read.entries) {
    const name = pathElements(entry.name).reduce(joinPath, dir);
    const source = entry.hardlink === undefined ? entry : byName.get(entry.hardlink);
    if (!source) continue;
    const { type, mode, uid, gid, size, linkname, devmajor, devminor } = source.node;
    const content = source.node.content && { layer: id, name: source.name };
    entries.set(name, {
      name,
      type,
      mode: step.chmod ?? mode,
      uid: step.chown?.uid ?? uid,
      gid: step.chown?.gid ?? gid,
      size,
      linkname,
      devmajor,
      devminor,
      content: content && (() => input.contents.open(content)),
    });
  }
}
