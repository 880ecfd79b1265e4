/**
 * Extended attributes of a directory source's files, for their tar headers (`SCHILY.xattr.NAME` pax
 * records, as GNU tar and Docker write them). Node has no xattr API: the optional dependency
 * @napi-rs/xattr (prebuilt for Linux, macOS and FreeBSD inside its platform packages; no build step)
 * lists them with llistxattr, one system call per path, and reads the values of the few that have some.
 * Without it (a platform it has no binary for) directory layers carry no xattrs, as before.
 */
import { createRequire } from "node:module";

interface XattrModule {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
}

let loaded: XattrModule | null | undefined;

function xattrModule(): XattrModule | null {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)("@napi-rs/xattr") as XattrModule;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** Whether directory layers can carry xattrs here (the optional dependency loaded). */
export function xattrsSupported(): boolean {
  return xattrModule() !== null;
}

/**
 * Whether an xattr goes into a layer: file capabilities, IMA signatures and the user namespace (what
 * buildah keeps). SELinux labels and ACLs belong to the build host, trusted.* to its root.
 */
export function isLayerXattr(name: string): boolean {
  return name === "security.capability" || name === "security.ima" || name.startsWith("user.");
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A latin1 path as the string the addon takes; undefined for a name that is not UTF-8 (it cannot pass it). */
function addonPath(latin1: string): string | undefined {
  if (/^[\x00-\x7f]*$/.test(latin1)) return latin1;
  try {
    return utf8.decode(Buffer.from(latin1, "latin1"));
  } catch {
    return undefined;
  }
}

/**
 * The layer xattrs of the path (not following a symlink) as pax records, keys and values as latin1,
 * sorted; undefined when it has none, or they cannot be read.
 */
export function readXattrs(latin1Path: string): [string, string][] | undefined {
  const xattr = xattrModule();
  const path = xattr ? addonPath(latin1Path) : undefined;
  if (!xattr || path === undefined) return undefined;
  let names: string[];
  try {
    names = xattr.listAttributesSync(path);
  } catch {
    return undefined;
  }
  if (names.length === 0) return undefined;
  const records: [string, string][] = [];
  for (const name of names.filter(isLayerXattr).sort()) {
    try {
      const value = xattr.getAttributeSync(path, name);
      if (value) records.push([`SCHILY.xattr.${Buffer.from(name).toString("latin1")}`, value.toString("latin1")]);
    } catch {
      // gone or unreadable since it was listed: as if it had none
    }
  }
  return records.length > 0 ? records : undefined;
}
