/**
 * A large directory as several layers, by a rule that depends only on names: every entry `depth` levels
 * below the directory (a file, a link, a directory with everything under it) is a layer of its own, and so
 * is a file, link or empty directory found higher up. A one-file change then rebuilds and uploads the one
 * small layer that holds the file, instead of the whole directory's blob (a registry cannot compose a blob
 * from parts it holds). Together the layers give the same files as the directory as one layer; the
 * directories above the split level are the parents every layer makes up (mode 0755, owner 0:0), so a
 * directory there with another mode is refused rather than changed, and so is an entry at the split level
 * that a layer source cannot stand for as it is (a symlink, a device, a file named like a tarball). Files
 * that are hard links of each other in different layers become copies.
 */
import { lstatSync, readdirSync } from "node:fs";
import { join, posix } from "node:path";
import { InputError, UsageError } from "../errors.js";
import { isTarballName, type LayerSource, statLayerSource } from "../layer/plan.js";

/** More layers than this is refused: some runtimes stop at 127 layers in an image (overlayfs's limit). */
export const maxSplitLayers = 100;

function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A path that can be a layer's source as it is: a directory, or a file not named like a tarball (that would be unpacked). */
function sourceOf(path: string, plain: boolean): string {
  const refuse = (what: string): never => {
    throw new InputError(`cannot split at ${path}: ${what}`, { hint: "split one level less deep, or add the directory as one layer" });
  };
  if (!plain) refuse("a layer of its own would hold what it points to, or nothing (not a file or directory)");
  if (isTarballName(path) && !lstatSync(path).isDirectory()) refuse("a layer source named like a tarball is unpacked");
  return path;
}

/**
 * The layers `layer` (a directory) is split into: one per entry `depth` levels down (default 2), in the
 * order of their paths' bytes. Throws an InputError naming what cannot be split.
 */
export function splitLayerSource(layer: LayerSource, depth = 2): LayerSource[] {
  if (!Number.isInteger(depth) || depth < 1) throw new UsageError(`split depth ${depth}: expected a whole number from 1`);
  const out: LayerSource[] = [];
  const walk = (dir: string, dest: string, level: number): void => {
    const stat = lstatSync(dir);
    if ((stat.mode & 0o7777) !== 0o755) {
      throw new InputError(
        `cannot split ${dir} into layers: its mode is ${(stat.mode & 0o7777).toString(8)}, and the layers would make it 755`,
        {
          hint: `chmod 755 it, or add ${layer.source} as one layer`,
        },
      );
    }
    const names = readdirSync(dir).sort(byBytes);
    if (names.length === 0 && level > 0) out.push({ source: dir, dest });
    for (const name of names) {
      const path = join(dir, name);
      const to = posix.join(dest, name);
      const entry = lstatSync(path);
      if (entry.isDirectory() && level + 1 < depth) walk(path, to, level + 1);
      else out.push({ source: sourceOf(path, entry.isDirectory() || entry.isFile()), dest: to });
      if (out.length > maxSplitLayers) {
        throw new InputError(`splitting ${layer.source} ${depth} levels down gives more than ${maxSplitLayers} layers`, {
          hint: "split fewer levels down, or split a subdirectory",
        });
      }
    }
  };
  if (!statLayerSource(layer.source).isDirectory()) {
    throw new InputError(`cannot split ${layer.source} into layers: it is not a directory`, { hint: "add it as one layer" });
  }
  try {
    walk(layer.source, layer.dest, 0);
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(`cannot split ${layer.source} into layers: ${(error as Error).message}`, { cause: error });
  }
  return out;
}
