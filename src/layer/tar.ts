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
  /** Owner names kept from an input archive (empty otherwise: numeric ids only). */
  uname?: Buffer | undefined;
  gname?: Buffer | undefined;
  /** Further pax records kept from an input archive (e.g. `SCHILY.xattr.*`), keys as latin1, written sorted by key. */
  pax?: ReadonlyArray<readonly [string, Buffer]> | undefined;
}

const maxOctal11 = 0o77777777777;
const maxOctal7 = 0o7777777;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** 0: printable ASCII without NUL; 1: valid UTF-8 with other bytes; 2: not UTF-8. */
function classify(bytes: Buffer): 0 | 1 | 2 {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (byte === 0 || byte > 0x7e) {
      try {
        utf8.decode(bytes);
        return 1;
      } catch {
        return 2;
      }
    }
  }
  return 0;
}

/** One pax record: "<length> <key>=<value>\n", where length counts the whole record including itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.byteLength(key, "latin1") + value.length + 3;
  let length = body + String(body).length;
  if (String(length).length !== String(body).length) length += 1;
  return Buffer.concat([Buffer.from(`${length} ${key}=`, "latin1"), value, Buffer.from("\n")]);
}

/** The longest owner name a ustar field holds (32 bytes with the NUL). */
const maxOwnerName = 31;

function writeOctal(header: Buffer, value: number, offset: number, width: number): void {
  // width-1 octal digits, zero-padded, then NUL (what GNU tar and Go write).
  let rest = value;
  for (let i = offset + width - 2; i >= offset; i--) {
    header[i] = 0x30 + (rest % 8);
    rest = Math.floor(rest / 8);
  }
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

const ustarMagic = Buffer.from("ustar\u000000", "latin1");

/** What a ustar record holds. */
interface UstarFields {
  /** Bytes, or a latin1 string (one char per byte). */
  name: Buffer | string;
  slash: boolean;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname?: Buffer | string | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
  uname?: Buffer | string | undefined;
  gname?: Buffer | string | undefined;
}

/** Write bytes, or a latin1 string, into a header field of `width` bytes. */
function writeField(header: Buffer, value: Buffer | string | undefined, offset: number, width: number): void {
  if (typeof value === "string") header.write(value, offset, width, "latin1");
  else value?.copy(header, offset, 0, width);
}

function ustarHeader(target: Buffer, fields: UstarFields): void {
  const header = target;
  const nameLength = typeof fields.name === "string" ? header.write(fields.name, 0, 100, "latin1") : fields.name.copy(header, 0, 0, 100);
  if (fields.slash && nameLength < 100) header[nameLength] = 0x2f;
  writeOctal(header, fields.mode, 100, 8);
  writeOctal(header, Math.min(fields.uid, maxOctal7), 108, 8);
  writeOctal(header, Math.min(fields.gid, maxOctal7), 116, 8);
  writeOctal(header, Math.min(fields.size, maxOctal11), 124, 12);
  writeOctal(header, Math.min(Math.max(fields.mtime, 0), maxOctal11), 136, 12);
  header.fill(0x20, 148, 156); // checksum computed over spaces
  header[156] = fields.typeflag;
  writeField(header, fields.linkname, 157, 100);
  ustarMagic.copy(header, 257);
  // uname and gname stay empty (numeric ids only) unless an input archive had them.
  writeField(header, fields.uname, 265, maxOwnerName);
  writeField(header, fields.gname, 297, maxOwnerName);
  if (fields.devmajor !== undefined) writeNumber(header, fields.devmajor, 329, 8);
  if (fields.devminor !== undefined) writeNumber(header, fields.devminor, 337, 8);
  let sum = 0;
  for (let i = 0; i < recordSize; i++) sum += header[i] as number;
  writeOctal(header, sum, 148, 7);
  header[155] = 0x20;
}

/**
 * Give the single ustar record at `offset` (one writeSimpleHeader wrote) a new content size, checksum
 * included: the record equals the one written for the entry with that size. False, changing nothing,
 * when the size does not fit a ustar record (the entry then needs a pax header).
 */
export function rewriteUstarSize(target: Uint8Array, offset: number, size: number): boolean {
  if (!Number.isSafeInteger(size) || size < 0 || size > maxOctal11) return false;
  const header = Buffer.from(target.buffer, target.byteOffset + offset, recordSize);
  writeOctal(header, size, 124, 12);
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < recordSize; i++) sum += header[i] as number;
  writeOctal(header, sum, 148, 7);
  header[155] = 0x20;
  return true;
}

/** Fields of an entry with its name and link target as latin1 strings (see plan.ts). */
export interface StringHeader {
  /** Path inside the layer, without leading "/" or trailing "/"; sorts in byte order. */
  key: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: string | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
  /** Owner names kept from an input archive, as bytes (latin1). */
  uname?: string | undefined;
  gname?: string | undefined;
  /** Pax records kept from an input archive (extended attributes), keys and values as bytes (latin1). */
  pax?: ReadonlyArray<readonly [string, string]> | undefined;
}

const printable = /^[\x20-\x7e]*$/;

/** Whether an entry's header is one ustar record (no pax header needed). */
export function fitsUstar(entry: StringHeader): boolean {
  if (entry.key.length + (entry.type === "directory" ? 1 : 0) > 100 || !printable.test(entry.key)) return false;
  if (entry.linkname !== undefined && (entry.linkname.length > 100 || !printable.test(entry.linkname))) return false;
  if (entry.pax?.length || (entry.uname?.length ?? 0) > maxOwnerName || (entry.gname?.length ?? 0) > maxOwnerName) return false;
  return entry.size <= maxOctal11 && entry.uid <= maxOctal7 && entry.gid <= maxOctal7 && entry.mtime >= 0 && entry.mtime <= maxOctal11;
}

/**
 * Write the single ustar record of an entry that needs no pax header (printable ASCII names and targets
 * that fit, sizes and ids that fit) at `offset` and return true; return false, writing nothing, otherwise.
 * The fast path of packing 20,000 entries: no Buffer per name.
 */
export function writeSimpleHeader(entry: StringHeader, target: Buffer, offset: number): boolean {
  if (!fitsUstar(entry)) return false;
  ustarHeader(target.subarray(offset, offset + recordSize), ustarFields(entry, entry.key, entry.linkname));
  return true;
}

/** The ustar fields of an entry whose name and link target are given as bytes or latin1 strings. */
function ustarFields(
  entry: Pick<StringHeader, "type" | "mode" | "uid" | "gid" | "size" | "mtime" | "devmajor" | "devminor"> & {
    uname?: Buffer | string | undefined;
    gname?: Buffer | string | undefined;
  },
  name: Buffer | string,
  linkname: Buffer | string | undefined,
): UstarFields {
  const device = entry.type === "char" || entry.type === "block";
  return {
    name,
    slash: entry.type === "directory",
    mode: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.size,
    mtime: entry.mtime,
    typeflag: typeflags[entry.type],
    linkname,
    devmajor: device ? (entry.devmajor ?? 0) : undefined,
    devminor: device ? (entry.devminor ?? 0) : undefined,
    uname: entry.uname,
    gname: entry.gname,
  };
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
  return encode(entry, Buffer.alloc(recordSize), 0) as Buffer;
}

function encode(entry: TarHeader, target: Buffer | undefined, offset: number): Buffer | undefined {
  const directory = entry.type === "directory";
  const nameKind = classify(entry.name);
  const linkKind = entry.linkname === undefined ? 0 : classify(entry.linkname);
  const nameFits = nameKind === 0 && entry.name.length + (directory ? 1 : 0) <= 100;
  const linkFits = linkKind === 0 && (entry.linkname?.length ?? 0) <= 100;
  const simple =
    nameFits &&
    linkFits &&
    entry.size <= maxOctal11 &&
    entry.uid <= maxOctal7 &&
    entry.gid <= maxOctal7 &&
    entry.mtime >= 0 &&
    entry.mtime <= maxOctal11 &&
    !entry.pax?.length &&
    (entry.uname?.length ?? 0) <= maxOwnerName &&
    (entry.gname?.length ?? 0) <= maxOwnerName;
  const fields = ustarFields(entry, entry.name, entry.linkname);
  if (simple) {
    if (!target) return undefined;
    ustarHeader(target.subarray(offset, offset + recordSize), fields);
    return target;
  }
  const name = directory ? Buffer.concat([entry.name, Buffer.from("/")]) : entry.name;
  // Records in key order, so equal entries give equal bytes.
  const records: Buffer[] = [];
  if (entry.gid > maxOctal7) records.push(paxRecord("gid", Buffer.from(String(entry.gid))));
  if ((entry.gname?.length ?? 0) > maxOwnerName) records.push(paxRecord("gname", entry.gname as Buffer));
  if (nameKind === 2 || linkKind === 2) records.push(paxRecord("hdrcharset", Buffer.from("BINARY")));
  if (!linkFits) records.push(paxRecord("linkpath", entry.linkname as Buffer));
  if (entry.mtime > maxOctal11 || entry.mtime < 0) records.push(paxRecord("mtime", Buffer.from(String(entry.mtime))));
  if (!nameFits) records.push(paxRecord("path", name));
  if (entry.size > maxOctal11) records.push(paxRecord("size", Buffer.from(String(entry.size))));
  if (entry.uid > maxOctal7) records.push(paxRecord("uid", Buffer.from(String(entry.uid))));
  if ((entry.uname?.length ?? 0) > maxOwnerName) records.push(paxRecord("uname", entry.uname as Buffer));
  if (entry.pax?.length) {
    const extra = [...entry.pax].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [key, value] of extra) records.push(paxRecord(key, value));
  }
  const body = Buffer.concat(records);
  const padding = paddingFor(body.length);
  const out = Buffer.alloc(recordSize + body.length + padding + recordSize);
  ustarHeader(out, {
    name: Buffer.from("././@PaxHeader"),
    slash: false,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
    typeflag: 0x78,
  });
  body.copy(out, recordSize);
  const main = out.subarray(recordSize + body.length + padding);
  ustarHeader(main, {
    ...fields,
    name: nameFits ? entry.name : fallbackName(name),
    slash: nameFits && directory,
    linkname: entry.linkname === undefined ? undefined : linkFits ? entry.linkname : fallbackName(entry.linkname),
  });
  return out;
}
