/**
 * Where COPY and ADD read from: the build context (a directory on disk, .dockerignore applied before
 * anything is looked at) or another stage's or image's filesystem. Both are trees of byte-string paths
 * (latin1) relative to their root; the context's symlinks resolve inside the context, as BuildKit's do.
 * Sources are expanded with Go's filepath.Match rules per path element, as both of docker's builders do.
 */
import { type BigIntStats, createReadStream, lstatSync, readdirSync, readlinkSync } from "node:fs";
import type { Readable } from "node:stream";
import { InputError } from "../errors.js";
import { splitDevice } from "../layer/plan.js";
import type { EntryType } from "../tar/header.js";
import { type EntryMeta, type FsNode, joinPath, normalizePath, pathElements, resolveIn } from "./fs-tree.js";
import type { IgnoreMatcher } from "./ignore.js";

/** One path of a source tree. */
export interface SourceNode extends EntryMeta {
  /** Equal for the names of one file (hardlinks); undefined for a file with one name. */
  inode?: string | undefined;
}

/** A tree COPY reads from. */
export interface SourceTree {
  /** What it is, for messages: "the build context", "stage build". */
  readonly what: string;
  /** Files keep their owners (another stage or image); the context's become root's. */
  readonly keepOwners: boolean;
  /** The node at `path` (no symlink followed), or undefined when absent or ignored. */
  lstat(path: string): SourceNode | undefined;
  /** The names in a directory, sorted by their bytes, ignored ones left out. */
  readdir(path: string): string[];
  /** Whether a directory that is itself ignored is walked (an exception may re-include something below). */
  ignoredDirectory?(path: string): boolean;
  /** A regular file's content. */
  open(path: string): Readable;
}

/** Latin1 (bytes) → the text those bytes spell in UTF-8, for matching against patterns. */
function text(bytes: string): string {
  return Buffer.from(bytes, "latin1").toString("utf8");
}

/** Whether a path has any of Go's pattern characters (`*`, `?`, `[`, `\`). */
export function hasPattern(path: string): boolean {
  return /[*?[\\]/.test(path);
}

/** One path element of a Go filepath.Match pattern as a regular expression; undefined for a bad pattern. */
export function elementPattern(pattern: string): RegExp | undefined {
  let source = "^";
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    if (ch === "*") source += "[^/]*";
    else if (ch === "?") source += "[^/]";
    else if (ch === "\\") {
      const next = chars[++i];
      if (next === undefined) return undefined;
      source += escapeRegex(next);
    } else if (ch === "[") {
      const end = classEnd(chars, i + 1);
      if (end === undefined) return undefined;
      const negated = chars[i + 1] === "^";
      let body = "";
      for (let j = negated ? i + 2 : i + 1; j < end; j++) {
        let c = chars[j] as string;
        if (c === "\\") c = chars[++j] as string;
        body += c === "-" && j > i + 1 && j < end - 1 && chars[j - 1] !== "\\" ? "-" : escapeRegex(c);
      }
      source += `[${negated ? "^" : ""}${body}]`;
      i = end;
    } else source += escapeRegex(ch);
  }
  try {
    return new RegExp(`${source}$`, "su");
  } catch {
    return undefined;
  }
}

function escapeRegex(ch: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(ch) ? `\\${ch}` : ch;
}

/** The index of the `]` closing a class that opens before `from`; undefined when there is none or it is empty. */
function classEnd(chars: readonly string[], from: number): number | undefined {
  let j = chars[from] === "^" ? from + 1 : from;
  const first = j;
  for (; j < chars.length; j++) {
    if (chars[j] === "\\") j++;
    else if (chars[j] === "]" && j > first) return j;
  }
  return undefined;
}

/**
 * The paths a COPY source names in `tree`: the path itself, or, for a pattern, every path whose elements
 * match the pattern's (Go's filepath.Glob), sorted. Parents are resolved through symlinks; the matched
 * names are returned as the pattern spells them.
 */
export function expandSource(tree: SourceTree, source: string): string[] {
  const path = normalizePath(source);
  if (!hasPattern(path)) return [path];
  let found = [""];
  for (const element of pathElements(path)) {
    const next: string[] = [];
    if (!hasPattern(element)) {
      for (const dir of found) next.push(joinPath(dir, element));
      found = next.filter((p) => tree.lstat(resolveIn((q) => tree.lstat(q), p, false)) !== undefined);
      continue;
    }
    const regex = elementPattern(text(element));
    if (!regex) throw new InputError(`"${text(source)}" is not a valid pattern`, { hint: "check its [ ] classes and \\ escapes" });
    for (const dir of found) {
      const real = resolveIn((q) => tree.lstat(q), dir);
      if (tree.lstat(real)?.type !== "directory") continue;
      for (const name of tree.readdir(real)) if (regex.test(text(name))) next.push(joinPath(dir, name));
    }
    found = next;
  }
  return found;
}

/** The build context: a directory, with .dockerignore's patterns applied to every path. */
export class ContextTree implements SourceTree {
  readonly what = "the build context";
  readonly keepOwners = false;
  readonly #root: Buffer;
  readonly #ignore: IgnoreMatcher;

  constructor(root: string, ignore: IgnoreMatcher) {
    this.#root = Buffer.from(root.replace(/\/+$/, "") || "/");
    this.#ignore = ignore;
  }

  /** Where a path of the context is on disk. */
  diskPath(path: string): string {
    return this.#disk(path).toString();
  }

  #disk(path: string): Buffer {
    return path === "" ? this.#root : Buffer.concat([this.#root, Buffer.from(`/${path}`, "latin1")]);
  }

  #ignored(path: string): boolean {
    return path !== "" && !this.#ignore.empty && this.#ignore.ignores(text(path));
  }

  /** Whether an ignored directory must still be walked for an exception below it. */
  ignoredDirectory(path: string): boolean {
    return this.#ignored(path);
  }

  lstat(path: string): SourceNode | undefined {
    let stat: BigIntStats | undefined;
    try {
      stat = lstatSync(this.#disk(path), { bigint: true, throwIfNoEntry: false });
    } catch (error) {
      throw readError(path, error);
    }
    if (!stat) return undefined;
    if (this.#ignored(path) && !(stat.isDirectory() && this.#ignore.mayIncludeUnder(text(path)))) return undefined;
    return nodeOfStat(stat, () => readlinkSync(this.#disk(path), { encoding: "buffer" }).toString("latin1"));
  }

  readdir(path: string): string[] {
    let names: Buffer[];
    try {
      names = readdirSync(this.#disk(path), { encoding: "buffer" });
    } catch (error) {
      throw readError(path, error);
    }
    return names
      .map((name) => name.toString("latin1"))
      .filter((name) => this.lstat(joinPath(path, name)) !== undefined)
      .sort(byBytes);
  }

  open(path: string): Readable {
    return createReadStream(this.#disk(path));
  }
}

function readError(path: string, error: unknown): InputError {
  const code = (error as NodeJS.ErrnoException).code;
  const why = code === "EACCES" || code === "EPERM" ? "permission denied" : (error as Error).message;
  return new InputError(`cannot read ${text(path) || "."} in the build context: ${why}`, { hint: "check its permissions", cause: error });
}

/** Sort byte strings by their bytes. */
export function byBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const kinds: [(stat: BigIntStats) => boolean, EntryType][] = [
  [(s) => s.isFile(), "file"],
  [(s) => s.isDirectory(), "directory"],
  [(s) => s.isSymbolicLink(), "symlink"],
  [(s) => s.isCharacterDevice(), "char"],
  [(s) => s.isBlockDevice(), "block"],
  [(s) => s.isFIFO(), "fifo"],
];

function nodeOfStat(stat: BigIntStats, readlink: () => string): SourceNode | undefined {
  const type = kinds.find(([test]) => test(stat))?.[1];
  if (!type) return undefined; // a socket: docker leaves those out too
  const node: SourceNode = {
    type,
    mode: Number(stat.mode & 0o7777n),
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    size: type === "file" ? Number(stat.size) : 0,
  };
  if (type === "symlink") node.linkname = readlink();
  if (type === "char" || type === "block") {
    const { major, minor } = splitDevice(stat.rdev);
    node.devmajor = major;
    node.devminor = minor;
  }
  if (type === "file" && stat.nlink > 1n) node.inode = `${stat.dev}:${stat.ino}`;
  return node;
}

/** A stage's or image's filesystem as a source: the tree's metadata, contents opened through `openContent`. */
export class ImageTree implements SourceTree {
  readonly keepOwners = true;

  constructor(
    readonly what: string,
    private readonly tree: { get(path: string): FsNode | undefined },
    /** A file's bytes, from where its layer keeps them. */
    private readonly openContent: (content: { layer: number; name: string }) => Readable,
  ) {}

  lstat(path: string): SourceNode | undefined {
    const node = this.tree.get(path);
    if (!node) return undefined;
    const { type, mode, uid, gid, size, linkname, devmajor, devminor, content } = node;
    return { type, mode, uid, gid, size, linkname, devmajor, devminor, inode: content && `${content.layer}:${content.name}` };
  }

  readdir(path: string): string[] {
    return [...(this.tree.get(path)?.children?.keys() ?? [])].sort(byBytes);
  }

  open(path: string): Readable {
    const node = this.tree.get(path);
    if (!node?.content) throw new InputError(`${text(path)} disappeared from ${this.what}`);
    return this.openContent(node.content);
  }
}
