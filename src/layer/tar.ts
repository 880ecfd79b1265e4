/**
 * Deterministic tar headers (POSIX ustar + pax extended headers, IEEE Std 1003.1-2017 "pax" format):
 * the same entry always encodes to the same bytes. Content, padding and the end-of-archive marker are
 * laid out by the caller (see blocks.ts); this file only knows the 512-byte record format.
 */

/** The tar record size. */
export const recordSize = 512;

/** The end-of-archive marker: two zero records. */
export const endOfArchiveSize = 2 * recordSize;

/** What a tar entry is. */
export type EntryType = "file" | "link" | "symlink" | "char" | "block" | "directory" | "fifo";

const typeflags: Record<EntryType, number> = {
  file: 0x30, // '0'
  link: 0x31, // '1'
  symlink: 0x32, // '2'
  char: 0x33, // '3'
  block: 0x34, // '4'
  directory: 0x35, // '5'
  fifo: 0x36, // '6'
};

/** One tar entry's metadata; `name` is the path inside the layer without a leading "/" or a trailing "/". */
export interface TarHeader {
  name: Buffer;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Content size; 0 for everything but regular files. */
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Target of a symlink, or the earlier entry's name for a hardlink. */
  linkname?: Buffer | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
  /** Further pax records kept from an input archive (e.g. `SCHILY.xattr.*`), written sorted by key. */
  pax?: ReadonlyArray<readonly [string, Buffer]> | undefined;
}

const maxOctal11 = 0o77777777777;
const maxOctal7 = 0o7777777;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function isPortable(bytes: Buffer, limit: number): boolean {
  if (bytes.length > limit) return false;
  for (const byte of bytes) if (byte === 0 || byte > 0x7e) return false;
  return true;
}

function isUtf8(bytes: Buffer): boolean {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** One pax record: "<length> <key>=<value>\n", where length counts the whole record including itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key) + value.length + 3;
  let length = body + String(body).length;
  if (String(length).length !== String(body).length) length += 1;
  return Buffer.concat([Buffer.from(`${length} ${key}=`), value, Buffer.from("\n")]);
}

function writeOctal(header: Buffer, value: number, offset: number, width: number): void {
  // width-1 octal digits, zero-padded, then NUL (what GNU tar and Go write).
  header.write(value.toString(8).padStart(width - 1, "0"), offset, width - 1, "latin1");
  header[offset + width - 1] = 0;
}

function writeNumber(header: Buffer, value: number, offset: number, width: number): void {
  if (value <= 8 ** (width - 1) - 1) {
    writeOctal(header, value, offset, width);
    return;
  }
  // GNU base-256: high bit of the first byte set, big-endian binary in the rest.
  let rest = BigInt(value);
  for (let i = offset + width - 1; i > offset; i--) {
    header[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  header[offset] = 0x80;
}

/** A ustar name field for an entry whose real name is in a pax record: printable ASCII, at most 99 bytes. */
function fallbackName(name: Buffer): Buffer {
  const out = Buffer.from(name.subarray(0, 99));
  for (let i = 0; i < out.length; i++) if ((out[i] as number) < 0x20 || (out[i] as number) > 0x7e) out[i] = 0x5f;
  return out;
}

function ustarHeader(fields: {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname?: Buffer | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
}): Buffer {
  const header = Buffer.alloc(recordSize);
  fields.name.copy(header, 0, 0, 100);
  writeOctal(header, fields.mode, 100, 8);
  writeOctal(header, Math.min(fields.uid, maxOctal7), 108, 8);
  writeOctal(header, Math.min(fields.gid, maxOctal7), 116, 8);
  writeOctal(header, Math.min(fields.size, maxOctal11), 124, 12);
  writeOctal(header, Math.min(Math.max(fields.mtime, 0), maxOctal11), 136, 12);
  header.fill(0x20, 148, 156); // checksum computed over spaces
  header[156] = fields.typeflag;
  fields.linkname?.copy(header, 157, 0, 100);
  header.write("ustar\u000000", 257, 8, "latin1");
  // uname and gname stay empty: numeric ids only.
  if (fields.devmajor !== undefined) writeNumber(header, fields.devmajor, 329, 8);
  if (fields.devminor !== undefined) writeNumber(header, fields.devminor, 337, 8);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148, 8, "latin1");
  return header;
}

/** The number of zero bytes that follow `size` content bytes to fill the last record. */
export function paddingFor(size: number): number {
  const rest = size % recordSize;
  return rest === 0 ? 0 : recordSize - rest;
}

/**
 * Encode an entry's header: a pax extended header ('x') first when a field does not fit ustar (long or
 * non-ASCII names and link targets, sizes of 8 GiB and more, ids of 2^21 and more, extra records), then
 * the ustar header. Directories get their trailing "/".
 */
export function encodeHeader(entry: TarHeader): Buffer {
  const name = entry.type === "directory" ? Buffer.concat([entry.name, Buffer.from("/")]) : entry.name;
  const records: Buffer[] = [];
  // Records in key order, so equal entries give equal bytes.
  if (entry.gid > maxOctal7) records.push(paxRecord("gid", Buffer.from(String(entry.gid))));
  const binary = !isUtf8(name) || (entry.linkname !== undefined && !isUtf8(entry.linkname));
  if (binary) records.push(paxRecord("hdrcharset", Buffer.from("BINARY")));
  const linkFits = entry.linkname === undefined || isPortable(entry.linkname, 100);
  if (!linkFits) records.push(paxRecord("linkpath", entry.linkname as Buffer));
  if (entry.mtime > maxOctal11 || entry.mtime < 0) records.push(paxRecord("mtime", Buffer.from(String(entry.mtime))));
  const nameFits = isPortable(name, 100);
  if (!nameFits) records.push(paxRecord("path", name));
  if (entry.size > maxOctal11) records.push(paxRecord("size", Buffer.from(String(entry.size))));
  if (entry.uid > maxOctal7) records.push(paxRecord("uid", Buffer.from(String(entry.uid))));
  if (entry.pax?.length) {
    const extra = [...entry.pax].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [key, value] of extra) records.push(paxRecord(key, value));
  }
  const typeflag = typeflags[entry.type];
  const main = ustarHeader({
    name: nameFits ? name : fallbackName(name),
    mode: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.size,
    mtime: entry.mtime,
    typeflag,
    linkname: entry.linkname === undefined ? undefined : linkFits ? entry.linkname : fallbackName(entry.linkname),
    devmajor: entry.type === "char" || entry.type === "block" ? (entry.devmajor ?? 0) : undefined,
    devminor: entry.type === "char" || entry.type === "block" ? (entry.devminor ?? 0) : undefined,
  });
  if (records.length === 0) return main;
  const body = Buffer.concat(records);
  const pax = ustarHeader({
    name: Buffer.from("././@PaxHeader"),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
    typeflag: 0x78,
  });
  return Buffer.concat([pax, body, Buffer.alloc(paddingFor(body.length)), main]);
}
