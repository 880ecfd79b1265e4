/**
 * A streaming reader of the tar archives users bring (`--layer rootfs.tar`, `ocify import`): POSIX ustar
 * and pax (IEEE Std 1003.1-2017 "pax"), GNU tar's own format (long names 'L'/'K', old sparse 'S',
 * base-256 numbers), GNU tar's pax sparse formats 0.0, 0.1 and 1.0, and v7. Names, link targets and pax
 * values are kept as the bytes the archive holds (latin1 strings: one char per byte), never decoded, so a
 * name that is not UTF-8 stays those bytes. Contents pass through as views of the input's chunks.
 */
import { InputError } from "../errors.js";

/** The tar record size. */
const block = 512;

/** A sparse file's layout: data segments (offset, length) of a file of `realSize` bytes; the rest is holes. */
export interface SparseMap {
  realSize: number;
  segments: [offset: number, length: number][];
}

/** One entry as the archive describes it, after its extended headers were applied. */
export interface TarInputEntry {
  /** Name and link target as bytes (latin1 strings). */
  name: string;
  linkname: string;
  /** The typeflag character ('0', '5', 'S', …); '\0' and '7' read as '0'. */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Bytes of content stored in the archive (for a sparse file: its data segments only). */
  size: number;
  mtime: number;
  devmajor: number;
  devminor: number;
  /** The entry's pax records (global ones first, its own win), keys and values as bytes. */
  pax: Map<string, string>;
  sparse?: SparseMap | undefined;
  /** Where the entry's header began in the (decompressed) archive, for messages. */
  offset: number;
}

/** Reads exact byte counts from an async iterable of chunks, keeping views (no copies of contents). */
class ByteSource {
  readonly #iterator: AsyncIterator<Buffer>;
  #chunk: Buffer = Buffer.alloc(0);
  #at = 0;
  /** Bytes consumed so far. */
  position = 0;

  constructor(input: AsyncIterable<Buffer>) {
    this.#iterator = input[Symbol.asyncIterator]();
  }

  async #fill(): Promise<boolean> {
    while (this.#at >= this.#chunk.length) {
      const next = await this.#iterator.next();
      if (next.done) return false;
      this.#chunk = next.value;
      this.#at = 0;
    }
    return true;
  }

  /** Exactly `length` bytes (a copy when they span chunks); undefined at the end; a short read throws. */
  async read(length: number, truncated: () => Error): Promise<Buffer | undefined> {
    if (!(await this.#fill())) return undefined;
    if (this.#chunk.length - this.#at >= length) {
      const view = this.#chunk.subarray(this.#at, this.#at + length);
      this.#at += length;
      this.position += length;
      return view;
    }
    const out = Buffer.alloc(length);
    let filled = 0;
    for await (const piece of this.pieces(length, truncated)) {
      piece.copy(out, filled);
      filled += piece.length;
    }
    return out;
  }

  /** The next `length` bytes as views of the input's chunks, in order. */
  async *pieces(length: number, truncated: () => Error): AsyncGenerator<Buffer> {
    let left = length;
    while (left > 0) {
      if (!(await this.#fill())) throw truncated();
      const take = Math.min(left, this.#chunk.length - this.#at);
      const piece = this.#chunk.subarray(this.#at, this.#at + take);
      this.#at += take;
      this.position += take;
      left -= take;
      yield piece;
    }
  }

  /** Skip `length` bytes. */
  async skip(length: number, truncated: () => Error): Promise<void> {
    for await (const _ of this.pieces(length, truncated));
  }

  /** Read and drop whatever is left (a writer blocked on a pipe then finishes cleanly). */
  async drain(): Promise<void> {
    this.#at = this.#chunk.length;
    while (await this.#fill()) this.#at = this.#chunk.length;
  }
}

function cString(header: Buffer, start: number, length: number): string {
  const end = header.indexOf(0, start);
  return header.toString("latin1", start, end < 0 || end > start + length ? start + length : end);
}

/** A numeric field: octal text, or GNU base-256 (high bit of the first byte set; 0xff: negative). */
function parseNumber(header: Buffer, start: number, length: number): number {
  const first = header[start] as number;
  if (first & 0x80) {
    let value = first === 0xff ? -1n : BigInt(first & 0x7f);
    for (let i = start + 1; i < start + length; i++) value = (value << 8n) | BigInt(header[i] as number);
    return Number(value);
  }
  const text = cString(header, start, length).trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

function checksumOk(header: Buffer): boolean {
  const stored = parseNumber(header, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < block; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** Parse pax records ("<length> <key>=<value>\n"), keeping repeated keys in order; keys and values as bytes. */
export function parsePaxRecords(data: Buffer): [string, string][] | undefined {
  const records: [string, string][] = [];
  let at = 0;
  while (at < data.length) {
    if (data[at] === 0) break; // padding
    const space = data.indexOf(0x20, at);
    const length = space < 0 ? Number.NaN : Number(data.toString("latin1", at, space));
    if (!Number.isSafeInteger(length) || length <= space - at || at + length > data.length || data[at + length - 1] !== 0x0a)
      return undefined;
    const record = data.subarray(space + 1, at + length - 1);
    const equals = record.indexOf(0x3d);
    if (equals <= 0) return undefined;
    records.push([record.toString("latin1", 0, equals), record.toString("latin1", equals + 1)]);
    at += length;
  }
  return records;
}

function decimal(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** What the headers before an entry ('x', 'g', 'L', 'K') said about it. */
interface Pending {
  global: Map<string, string>;
  local: [string, string][];
  longName?: string | undefined;
  longLink?: string | undefined;
}

const metaTypes = new Set(["x", "g", "L", "K"]);
/** Pax metadata, GNU long names and global headers are small: larger ones are a damaged archive. */
const maxMetaBytes = 16 << 20;

/** The ustar/GNU/v7 fields of a header record. */
function headerFields(header: Buffer, offset: number): TarInputEntry {
  const magic = header.toString("latin1", 257, 263);
  const ustar = magic === "ustar\u0000" || magic === "ustar ";
  let name = cString(header, 0, 100);
  // POSIX ustar keeps a name's directory part in `prefix`; GNU's format uses that space for other fields.
  if (magic === "ustar\u0000") {
    const prefix = cString(header, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  let typeflag = String.fromCharCode(header[156] as number);
  if (typeflag === "\u0000" || typeflag === "7") typeflag = name.endsWith("/") ? "5" : "0";
  return {
    name,
    linkname: cString(header, 157, 100),
    typeflag,
    mode: parseNumber(header, 100, 8),
    uid: parseNumber(header, 108, 8),
    gid: parseNumber(header, 116, 8),
    uname: ustar ? cString(header, 265, 32) : "",
    gname: ustar ? cString(header, 297, 32) : "",
    size: parseNumber(header, 124, 12),
    mtime: parseNumber(header, 136, 12),
    devmajor: ustar ? parseNumber(header, 329, 8) : 0,
    devminor: ustar ? parseNumber(header, 337, 8) : 0,
    pax: new Map(),
    offset,
  };
}

/** Apply an entry's pax records over its header fields (path, linkpath, size, ids, names). */
function applyPax(entry: TarInputEntry, records: Map<string, string>): void {
  entry.pax = records;
  const path = records.get("path");
  if (path !== undefined) entry.name = path;
  const linkpath = records.get("linkpath");
  if (linkpath !== undefined) entry.linkname = linkpath;
  for (const key of ["size", "uid", "gid"] as const) {
    const value = records.get(key);
    if (value === undefined) continue;
    const number = decimal(value);
    if (number === undefined) throw new Error(`pax record ${key}=${value} is not a number`);
    entry[key] = number;
  }
  const uname = records.get("uname");
  if (uname !== undefined) entry.uname = uname;
  const gname = records.get("gname");
  if (gname !== undefined) entry.gname = gname;
}

/** The GNU old-format sparse map: 4 entries in the header, 21 in each extension record that follows. */
async function oldSparseMap(header: Buffer, source: ByteSource, truncated: () => Error): Promise<SparseMap> {
  const segments: [number, number][] = [];
  const take = (record: Buffer, start: number, count: number): void => {
    for (let i = 0; i < count; i++) {
      const at = start + i * 24;
      if (record[at] === 0) return;
      segments.push([parseNumber(record, at, 12), parseNumber(record, at + 12, 12)]);
    }
  };
  take(header, 386, 4);
  let extended = header[482] !== 0;
  while (extended) {
    const record = await source.read(block, truncated);
    if (!record) throw truncated();
    take(record, 0, 21);
    extended = record[504] !== 0;
  }
  return { realSize: parseNumber(header, 483, 12), segments };
}

/** Sparse maps of GNU tar's pax formats: 0.0 (offset/numbytes records), 0.1 (one map record). 1.0 is read from the data. */
function paxSparseMap(local: [string, string][], records: Map<string, string>): SparseMap | "1.0" | undefined {
  const major = records.get("GNU.sparse.major");
  const minor = records.get("GNU.sparse.minor");
  if (major === "1" && minor === "0") return "1.0";
  const numbers: string[] = [];
  const map = records.get("GNU.sparse.map");
  if (map !== undefined) numbers.push(...(map === "" ? [] : map.split(",")));
  else for (const [key, value] of local) if (key === "GNU.sparse.offset" || key === "GNU.sparse.numbytes") numbers.push(value);
  if (map === undefined && numbers.length === 0 && records.get("GNU.sparse.numblocks") === undefined) return undefined;
  const realSize = decimal(records.get("GNU.sparse.size") ?? records.get("GNU.sparse.realsize"));
  if (realSize === undefined || numbers.length % 2 !== 0) throw new Error("its GNU sparse records are damaged");
  const segments: [number, number][] = [];
  for (let i = 0; i < numbers.length; i += 2) {
    const offset = decimal(numbers[i]);
    const length = decimal(numbers[i + 1]);
    if (offset === undefined || length === undefined) throw new Error("its GNU sparse map is damaged");
    segments.push([offset, length]);
  }
  return { realSize, segments };
}

/** GNU sparse 1.0: the map is decimal lines at the start of the data, padded to whole records. Returns the bytes it took. */
async function sparseMap1x0(source: ByteSource, realSize: number, truncated: () => Error): Promise<{ map: SparseMap; used: number }> {
  const numbers: number[] = [];
  let used = 0;
  let text = "";
  let wanted = 1;
  while (numbers.length < wanted) {
    const record = await source.read(block, truncated);
    if (!record) throw truncated();
    used += block;
    text += record.toString("latin1");
    const lines = text.split("\n");
    text = lines.pop() ?? "";
    for (const line of lines) {
      const value = decimal(line);
      if (value === undefined) throw new Error("its GNU sparse 1.0 map is damaged");
      numbers.push(value);
      if (numbers.length === 1) wanted = 1 + 2 * value;
      if (numbers.length >= wanted) break;
    }
    if (used > maxMetaBytes) throw new Error("its GNU sparse 1.0 map is too large");
  }
  const segments: [number, number][] = [];
  for (let i = 1; i < wanted; i += 2) segments.push([numbers[i] as number, numbers[i + 1] as number]);
  return { map: { realSize, segments }, used };
}

/** Check that a sparse map's segments are in order, apart, inside the file, and add up to the stored bytes. */
function checkSparse(map: SparseMap, stored: number): void {
  let end = 0;
  let total = 0;
  for (const [offset, length] of map.segments) {
    if (offset < end || offset + length > map.realSize) throw new Error("its sparse map is damaged (segments overlap or pass the end)");
    end = offset + length;
    total += length;
  }
  if (total !== stored) throw new Error(`its sparse map holds ${total} bytes and the archive ${stored}`);
}

/** An entry and its stored content, which must be read (or skipped) before the next entry is asked for. */
export interface TarInputItem {
  entry: TarInputEntry;
  content: AsyncGenerator<Buffer>;
}

/**
 * Read a tar archive's entries in order. Metadata headers ('x', 'g', 'L', 'K') are applied to the entry
 * they precede; GNU sparse files (old 'S' entries and pax 0.0/0.1/1.0) come with their map (`sparse`) and
 * their stored data segments as content. Errors are plain Errors (the caller names the archive), but for
 * a truncated archive, which is an InputError naming `what`.
 */
export async function* readTarEntries(input: AsyncIterable<Buffer>, what: string): AsyncGenerator<TarInputItem> {
  const source = new ByteSource(input);
  const truncated = () =>
    new InputError(`${what} is truncated: the tar archive ends inside an entry`, { hint: "check that it was written completely" });
  const pending: Pending = { global: new Map(), local: [] };
  let first = true;
  for (;;) {
    const offset = source.position;
    const header = await source.read(block, truncated);
    if (!header) {
      if (first) throw new Error("it is empty");
      return; // no end-of-archive records: accepted, as GNU tar does
    }
    if (header.every((byte) => byte === 0)) {
      await source.drain();
      if (first) throw new Error("it holds no entries");
      return;
    }
    if (!checksumOk(header)) throw new Error(first ? "it is not a tar archive" : `the header at byte ${offset} is damaged (checksum)`);
    first = false;
    const entry = headerFields(header, offset);
    if (metaTypes.has(entry.typeflag)) {
      await readMeta(entry, pending, source, truncated);
      continue;
    }
    const records = new Map(pending.global);
    for (const [key, value] of pending.local) records.set(key, value);
    const local = pending.local;
    if (pending.longName !== undefined) entry.name = pending.longName;
    if (pending.longLink !== undefined) entry.linkname = pending.longLink;
    pending.local = [];
    pending.longName = undefined;
    pending.longLink = undefined;
    applyPax(entry, records);
    let stored = entry.size;
    if (entry.typeflag === "S") {
      entry.sparse = await oldSparseMap(header, source, truncated);
      entry.typeflag = "0";
    } else if (entry.typeflag === "0") {
      const map = paxSparseMap(local, records);
      if (map !== undefined) {
        entry.name = records.get("GNU.sparse.name") ?? entry.name;
        if (map === "1.0") {
          const realSize = decimal(records.get("GNU.sparse.realsize"));
          if (realSize === undefined) throw new Error(`entry at byte ${offset} has no GNU.sparse.realsize`);
          const { map: read, used } = await sparseMap1x0(source, realSize, truncated);
          entry.sparse = read;
          stored -= used;
        } else entry.sparse = map;
      }
    }
    if (entry.sparse) checkSparse(entry.sparse, stored);
    const content = source.pieces(stored, truncated);
    yield { entry, content };
    // Whatever the caller did not read is skipped, with the padding to the next record.
    for await (const _ of content);
    await source.skip((block - (entry.size % block)) % block, truncated);
  }
}

/** Read a metadata header's data into `pending`. */
async function readMeta(entry: TarInputEntry, pending: Pending, source: ByteSource, truncated: () => Error): Promise<void> {
  if (entry.size > maxMetaBytes) throw new Error(`its ${entry.typeflag} header at byte ${entry.offset} is too large (${entry.size} bytes)`);
  const data = Buffer.from((await source.read(entry.size, truncated)) ?? Buffer.alloc(0));
  if (data.length !== entry.size) throw truncated();
  await source.skip((block - (entry.size % block)) % block, truncated);
  if (entry.typeflag === "L" || entry.typeflag === "K") {
    const end = data.indexOf(0);
    const text = data.toString("latin1", 0, end < 0 ? data.length : end);
    if (entry.typeflag === "L") pending.longName = text;
    else pending.longLink = text;
    return;
  }
  const records = parsePaxRecords(data);
  if (!records) throw new Error(`its pax header at byte ${entry.offset} is damaged`);
  if (entry.typeflag === "g") for (const [key, value] of records) pending.global.set(key, value);
  else pending.local.push(...records);
}
