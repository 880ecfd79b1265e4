/**
 * An image's filesystem as its layers leave it, metadata only: which paths exist, their type, mode,
 * owner and link target, and which layer holds each file's content. Layers are applied in order with the
 * image-spec's rules (layer.md "Whiteouts"): `.wh.NAME` removes NAME from the layers below, `.wh..wh..opq`
 * empties its directory of what the layers below put there. Paths are byte strings (latin1: one char per
 * byte), relative to the root, without a leading or trailing `/`.
 */
import type { EntryType } from "../tar/header.js";

/** What a path is, as a tar header says it: type, permissions, owner, size, link target, device. */
export interface EntryMeta {
  type: EntryType;
  /** Permission bits (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** A regular file's size. */
  size: number;
  /** A symlink's target, as written (in a layer entry, a hardlink's target too). */
  linkname?: string | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
}

/** One path of the filesystem. */
export interface FsNode extends EntryMeta {
  /** Where the content is: the layer and the name it has in that layer's tar (a hardlink: its target's). */
  content?: { layer: number; name: string } | undefined;
  /** A directory's entries by name. */
  children?: Map<string, FsNode> | undefined;
}

/** A layer entry as applied to the tree: its normalized name and node (children are ignored). */
export interface TreeEntry {
  name: string;
  node: FsNode;
  /** A hardlink's target name (normalized): the node takes the target's metadata and content. */
  hardlink?: string | undefined;
}

/** The most symlinks followed in resolving one path, as Linux allows (MAXSYMLINKS is 40). */
const maxSymlinks = 40;

/**
 * Resolve `path` inside a tree whose root is `/`, given how to look a path up (no symlink followed):
 * symlinks in the parents followed, in the last element too when `followLast`; `..` and absolute targets
 * stay inside the root. Returns the real path (which may not exist).
 */
export function resolveIn(
  lstat: (path: string) => { type: EntryType; linkname?: string | undefined } | undefined,
  path: string,
  followLast = true,
): string {
  let pending = pathElements(normalizePath(path));
  const done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const [part, ...rest] = pending as [string, ...string[]];
    pending = rest;
    if (part === "." || part === "") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    const node = lstat([...done, part].join("/"));
    if (node?.type === "symlink" && (rest.length > 0 || followLast) && hops < maxSymlinks) {
      hops++;
      const target = node.linkname ?? "";
      if (target.startsWith("/")) done.length = 0;
      pending = [...target.split("/"), ...rest];
      continue;
    }
    done.push(part);
  }
  return done.join("/");
}

/** A directory node made up for a parent no entry described (as docker's layer applier makes them). */
export function impliedDirectory(): FsNode {
  return { type: "directory", mode: 0o755, uid: 0, gid: 0, size: 0, children: new Map() };
}

/** Split a normalized path into its elements ("" is the root: no elements). */
export function pathElements(path: string): string[] {
  return path === "" ? [] : path.split("/");
}

/** Join a directory path and a name. */
export function joinPath(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

/** The parent of a normalized path ("" for a top-level name). */
export function parentPath(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

/** The last element of a normalized path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Normalize a path inside the root: no leading `/`, `.` or `..` above the root, no doubled or trailing `/`. */
export function normalizePath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return parts.join("/");
}

/** The metadata of a filesystem, layer by layer. */
export class FsTree {
  readonly root: FsNode;

  constructor(root: FsNode = impliedDirectory()) {
    this.root = root;
  }

  /** A copy that can change without changing this one (a stage built on another stage). */
  clone(): FsTree {
    const copy = (node: FsNode): FsNode => {
      const children = node.children ? new Map([...node.children].map(([name, child]) => [name, copy(child)])) : undefined;
      return { ...node, children };
    };
    return new FsTree(copy(this.root));
  }

  /** The node at `path`, symlinks not followed (but a symlink in a parent is not a directory: undefined). */
  get(path: string): FsNode | undefined {
    let node: FsNode | undefined = this.root;
    for (const part of pathElements(path)) {
      node = node?.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  }

  /**
   * Resolve `path` as a process whose root is this filesystem would (resolveIn): returns the real path
   * and its node, undefined when nothing is there yet (the path a file written there would get).
   */
  resolve(path: string, followLast = true): { path: string; node: FsNode | undefined } {
    const real = resolveIn((p) => this.get(p), path, followLast);
    return { path: real, node: this.get(real) };
  }

  /** Set `path` to `node`: a directory over a directory keeps its entries; anything else replaces what was there. */
  set(path: string, node: FsNode): void {
    const parts = pathElements(path);
    const name = parts.pop();
    if (name === undefined) {
      Object.assign(this.root, { ...node, type: "directory", children: this.root.children });
      return;
    }
    const parent = this.#directory(parts);
    const existing = parent.children?.get(name);
    const children = node.type === "directory" ? (existing?.type === "directory" ? existing.children : new Map()) : undefined;
    parent.children?.set(name, { ...node, children });
  }

  /** Remove `path` and everything under it. */
  remove(path: string): void {
    const parts = pathElements(path);
    const name = parts.pop();
    if (name === undefined) return;
    this.get(parts.join("/"))?.children?.delete(name);
  }

  /** The directory at `parts`, made (as docker's applier does) where a parent is missing or is not one. */
  #directory(parts: readonly string[]): FsNode {
    let node = this.root;
    for (const part of parts) {
      let child = node.children?.get(part);
      if (child?.type !== "directory") {
        child = impliedDirectory();
        node.children?.set(part, child);
      }
      node = child;
    }
    return node;
  }

  /**
   * Apply one layer's entries (in tar order, whiteouts included): its whiteouts remove from the layers
   * below first, then its entries are set, a hardlink taking its target's metadata and content.
   */
  applyLayer(entries: readonly TreeEntry[]): void {
    for (const { name } of entries) {
      const base = baseName(name);
      if (base === ".wh..wh..opq") {
        const dir = this.get(parentPath(name));
        if (dir?.type === "directory") dir.children = new Map();
      } else if (base.startsWith(".wh.")) {
        this.remove(joinPath(parentPath(name), base.slice(4)));
      }
    }
    for (const entry of entries) {
      if (baseName(entry.name).startsWith(".wh.")) continue;
      if (entry.hardlink !== undefined) {
        const target = this.get(entry.hardlink);
        if (target && target.type !== "directory") this.set(entry.name, { ...target, children: undefined });
        continue;
      }
      this.set(entry.name, entry.node);
    }
  }
}
