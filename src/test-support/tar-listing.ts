/**
 * A tar's entries as an independent reader sees them: Python's tarfile (it reads PAX, GNU and sparse
 * formats), every header field, the pax records it kept and each regular file's content digest. Names,
 * link targets and record values are given as hex of their bytes where they are not plain ASCII.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";

/** One entry of a listed tar. */
export interface ListedEntry {
  /** The name as bytes (latin1 string), without "./" or a trailing "/". */
  name: string;
  type: "file" | "link" | "symlink" | "char" | "block" | "directory" | "fifo" | "other";
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.* records: name → value as hex. */
  xattrs: Record<string, string>;
  /** Every pax record's key (besides the xattrs), to see what else was written. */
  paxKeys: string[];
  /** sha256 of a regular file's content. */
  sha256?: string;
}

const script = `
import hashlib, json, sys, tarfile
def raw(s):
    return s.encode('utf-8', 'surrogateescape').decode('latin-1')
kinds = {tarfile.REGTYPE: 'file', tarfile.AREGTYPE: 'file', tarfile.CONTTYPE: 'file', tarfile.LNKTYPE: 'link',
         tarfile.SYMTYPE: 'symlink', tarfile.CHRTYPE: 'char', tarfile.BLKTYPE: 'block', tarfile.DIRTYPE: 'directory',
         tarfile.FIFOTYPE: 'fifo', tarfile.GNUTYPE_SPARSE: 'file'}
out = []
with tarfile.open(sys.argv[1], encoding='utf-8', errors='surrogateescape') as t:
    for m in t:
        name = raw(m.name)
        while name.startswith('./'): name = name[2:]
        e = {'name': name.rstrip('/'), 'type': kinds.get(m.type, 'other'), 'mode': m.mode, 'uid': m.uid, 'gid': m.gid,
             'uname': raw(m.uname), 'gname': raw(m.gname), 'size': m.size, 'mtime': int(m.mtime), 'linkname': raw(m.linkname),
             'devmajor': m.devmajor, 'devminor': m.devminor, 'xattrs': {}, 'paxKeys': []}
        for k, v in sorted(m.pax_headers.items()):
            if k.startswith('SCHILY.xattr.'): e['xattrs'][raw(k[13:])] = v.encode('utf-8', 'surrogateescape').hex()
            else: e['paxKeys'].append(k)
        if m.isreg():
            h = hashlib.sha256()
            f = t.extractfile(m)
            for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
            e['sha256'] = h.hexdigest()
        out.append(e)
json.dump(out, sys.stdout)
`;

/** List the tar file at `path` (uncompressed, gzip, xz, bzip2) with Python's tarfile. */
export function listTar(path: string): ListedEntry[] {
  const out = execFileSync("python3", ["-c", script, path], { maxBuffer: 1 << 28 });
  return JSON.parse(out.toString("utf8")) as ListedEntry[];
}

/** The layers of the image tagged `tag` (or the only one) in an OCI layout, as paths of their blobs. */
export function layoutLayers(layout: string): string[] {
  const blob = (digest: string): string => join(layout, "blobs", "sha256", digest.slice("sha256:".length));
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]?.digest ?? ""), "utf8")) as { layers: { digest: string }[] };
  return manifest.layers.map((layer) => blob(layer.digest));
}

/** The uncompressed bytes of a gzip layer blob. */
export function gunzipFile(path: string): Buffer {
  return gunzipSync(readFileSync(path));
}

/** One path of a directory tree as lstat and the file system see it (dumpTree). */
export interface TreeEntry {
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  linkname?: string;
  rdev?: number;
  /** Extended attributes: name → value as hex. */
  xattrs: Record<string, string>;
}

const treeScript = `
import hashlib, json, os, stat, sys
root = os.fsencode(sys.argv[1])
out = {}
for top, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(top, n)
        st = os.lstat(p)
        e = {'mode': st.st_mode, 'uid': st.st_uid, 'gid': st.st_gid, 'xattrs': {}}
        for k in os.listxattr(p, follow_symlinks=False):
            e['xattrs'][k] = os.getxattr(p, k, follow_symlinks=False).hex()
        if stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
            e['size'] = st.st_size
            e['sha256'] = h.hexdigest()
        elif stat.S_ISLNK(st.st_mode): e['linkname'] = os.readlink(p).decode('latin-1')
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode): e['rdev'] = st.st_rdev
        out[os.path.relpath(p, root).decode('latin-1')] = e
json.dump(out, sys.stdout)
`;

/** Every path under `dir` (names as latin1 strings of their bytes) with its lstat fields, content digest and xattrs. */
export function dumpTree(dir: string): Record<string, TreeEntry> {
  return JSON.parse(execFileSync("python3", ["-c", treeScript, dir], { maxBuffer: 1 << 28 }).toString("utf8")) as Record<string, TreeEntry>;
}
