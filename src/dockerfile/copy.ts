/**
 * The entries of a COPY or ADD layer, as docker lays them out: each source (globs expanded) copied to the
 * destination, a directory's contents rather than the directory, a file into a directory when the
 * destination ends in `/` or is one already; ADD extracts a local archive. Every layer also carries the
 * parent directories of what it adds, as the stage has them (or new ones, 0755), so any engine that
 * extracts it sees the same tree. Entries come sorted, parents first.
 */
import { type Readable, Readable as ReadableStream } from "node:stream";
import { detectFormat } from "../codec.js";
import type { LayerStep } from "./evaluate.js";
import { baseName, type FsNode, type FsTree, joinPath, normalizePath, parentPath, pathElements, resolveIn } from "./fs-tree.js";
import type { LayerEntry } from "./layer-writer.js";
import { DockerfileError } from "./parser.js";
import { byBytes, expandSource, hasPattern, type SourceNode, type SourceTree } from "./source-tree.js";

/** A COPY or ADD step. */
export type CopyStep = Extract<LayerStep, { kind: "copy" }>;

/** An archive ADD found among the sources, for the caller to read (its entries go under `dir`). */
export interface ArchiveSource {
  path: string;
  dir: string;
}

/** What a COPY adds: plain entries, and archives to extract into the same layer. */
export interface CopyPlan {
  entries: Map<string, LayerEntry>;
  archives: ArchiveSource[];
}

/** Entries named by their path in the image. */
type Entries = Map<string, LayerEntry>;

interface Job {
  step: CopyStep;
  source: SourceTree;
  target: FsTree;
  file: string;
  entries: Entries;
}

function fail(job: Job, message: string, hint?: string): never {
  throw new DockerfileError(job.file, job.step.line, message, hint);
}

/** The owner and mode an entry gets: --chown over the source's (the context's files become root's), --chmod over its mode. */
function entryOf(job: Job, name: string, node: SourceNode, open: (() => Readable) | undefined): LayerEntry {
  const { chown, chmod } = job.step;
  const owner = chown ?? (job.source.keepOwners ? { uid: node.uid, gid: node.gid } : { uid: 0, gid: 0 });
  const mode = chmod !== undefined && node.type !== "symlink" ? chmod : node.mode;
  return {
    name,
    type: node.type,
    mode,
    uid: owner.uid,
    gid: owner.gid,
    size: node.type === "file" ? node.size : 0,
    linkname: node.linkname,
    devmajor: node.devmajor,
    devminor: node.devminor,
    content: node.type === "file" ? open : undefined,
  };
}

/** Copy a directory's contents (not the directory itself) under `dest`. */
function copyTree(job: Job, from: string, dest: string): void {
  for (const name of job.source.readdir(from)) {
    const path = joinPath(from, name);
    const node = job.source.lstat(path);
    if (!node) continue;
    const to = joinPath(dest, name);
    if (node.type === "directory") {
      job.entries.set(to, entryOf(job, to, node, undefined));
      copyTree(job, path, to);
    } else
      job.entries.set(
        to,
        entryOf(job, to, node, () => job.source.open(path)),
      );
  }
}

/** A local file ADD extracts: a tar, plain or compressed (detected by its first bytes, as docker does). */
async function isArchive(job: Job, path: string): Promise<boolean> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of job.source.open(path)) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length >= 512) break;
  }
  return detectFormat(Buffer.concat(chunks)) !== "unknown";
}

/** Where the destination really is in the stage (symlinks in it followed), and whether it is a directory. */
function destinationOf(job: Job): { path: string; isDirectory: boolean } {
  const dest = normalizePath(job.step.dest);
  const real = job.target.resolve(dest, true);
  const isDirectory = job.step.dest.endsWith("/") || real.node?.type === "directory";
  if (isDirectory) return { path: real.path, isDirectory };
  // A file's destination: its parent resolved, its own name kept (a symlink there is replaced).
  return { path: joinPath(job.target.resolve(parentPath(dest), true).path, baseName(dest)), isDirectory };
}

/** Plan the entries of a COPY or ADD step (archives are left for the caller, which streams them). */
export async function planCopy(step: CopyStep, source: SourceTree, target: FsTree, file: string): Promise<CopyPlan> {
  const job: Job = { step, source, target, file, entries: new Map() };
  const matched: string[] = [];
  for (const pattern of step.sources) {
    const found = expandSource(source, pattern).filter((p) => source.lstat(resolveIn((q) => source.lstat(q), p, false)));
    if (found.length === 0 || (!hasPattern(pattern) && source.lstat(found[0] as string) === undefined)) {
      fail(
        job,
        `${step.add ? "ADD" : "COPY"} ${pattern}: not found in ${source.what}`,
        source.keepOwners ? "check the path in that stage or image" : "check the path, and that .dockerignore does not leave it out",
      );
    }
    matched.push(...found);
  }
  const dest = destinationOf(job);
  if (matched.length + step.inline.length > 1 && !dest.isDirectory) {
    fail(job, `copying several files needs a destination directory: end ${step.dest} with /`);
  }
  const archives: ArchiveSource[] = [];
  for (const path of matched) {
    const real = resolveIn((q) => source.lstat(q), path, true);
    const node = source.lstat(real) as SourceNode;
    if (node.type === "directory") {
      if (!dest.isDirectory || job.target.get(dest.path) === undefined)
        job.entries.set(dest.path, entryOf(job, dest.path, node, undefined));
      copyTree(job, real, dest.path);
    } else if (step.add && step.from.kind === "context" && node.type === "file" && (await isArchive(job, real))) {
      archives.push({ path: real, dir: dest.path });
    } else {
      const name = dest.isDirectory ? joinPath(dest.path, baseName(path)) : dest.path;
      job.entries.set(
        name,
        entryOf(job, name, node, () => source.open(real)),
      );
    }
  }
  for (const inline of step.inline) {
    const name = dest.isDirectory ? joinPath(dest.path, normalizePath(inline.name)) : dest.path;
    const bytes = Buffer.from(inline.content, "utf8");
    const node: SourceNode = { type: "file", mode: 0o644, uid: 0, gid: 0, size: bytes.length };
    job.entries.set(
      name,
      entryOf({ ...job, source: { ...source, keepOwners: false } }, name, node, () => ReadableStream.from([bytes])),
    );
  }
  if (archives.length > 0 && dest.isDirectory && !job.target.get(dest.path)) {
    job.entries.set(dest.path, newDirectory(dest.path, step.chown));
  }
  return { entries: job.entries, archives };
}

/** A directory the layer makes: 0755, root's unless --chown says otherwise. */
export function newDirectory(name: string, owner: { uid: number; gid: number } | undefined): LayerEntry {
  return { name, type: "directory", mode: 0o755, uid: owner?.uid ?? 0, gid: owner?.gid ?? 0, size: 0 };
}

/** A directory entry that repeats one the stage already has. */
function existingDirectory(name: string, node: FsNode): LayerEntry {
  return { name, type: "directory", mode: node.mode, uid: node.uid, gid: node.gid, size: 0 };
}

/**
 * Add the parents of every entry that the layer does not already hold: as the stage has them, or new
 * directories owned by `owner`. Returns the entries sorted by path, each parent before its children.
 */
export function withParents(entries: Entries, target: FsTree, owner: { uid: number; gid: number } | undefined): LayerEntry[] {
  for (const name of [...entries.keys()]) {
    const parts = pathElements(name);
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (entries.has(parent)) continue;
      const node = target.get(parent);
      entries.set(parent, node?.type === "directory" ? existingDirectory(parent, node) : newDirectory(parent, owner));
    }
  }
  return [...entries.values()].sort((a, b) => compareElements(a.name, b.name));
}

/** Order paths element by element (`a/b` before `a.b`), so a directory comes right before its contents. */
function compareElements(a: string, b: string): number {
  const x = pathElements(a);
  const y = pathElements(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const order = byBytes(x[i] as string, y[i] as string);
    if (order !== 0) return order;
  }
  return x.length - y.length;
}
