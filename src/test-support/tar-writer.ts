/**
 * A raw tar writer for hostile-input tests: it writes exactly the entries it is given (names with "..",
 * absolute names, duplicates, links anywhere, devices, oversized PAX headers), which no real tar tool does.
 */

/** One PAX extended header record, `LEN key=value\n` (LEN counts its own digits). */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (`${length}${body}`.length !== length) length = Buffer.byteLength(body) + String(length).length;
  return `${length}${body}`;
}

/** One entry as written. */
export interface RawEntry {
  name: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "char" | "pax";
  data?: Buffer | string;
  linkname?: string;
  mode?: number;
  /** Declared size when it must differ from the data's (a truncated archive). */
  size?: number;
}

const typeFlags = { file: "0", hardlink: "1", symlink: "2", char: "3", dir: "5", pax: "x" } as const;

function header(entry: RawEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(entry.name.slice(0, 100), 0, "latin1");
  h.write(`${(entry.mode ?? (entry.type === "dir" ? 0o755 : 0o644)).toString(8).padStart(7, "0")}\0`, 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write("00000000000\0", 136);
  h.write("        ", 148);
  h.write(typeFlags[entry.type ?? "file"], 156);
  if (entry.linkname) h.write(entry.linkname.slice(0, 100), 157, "latin1");
  h.write("ustar\u000000", 257, "latin1");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

/** A tar archive of exactly these entries, with the two end blocks unless `end` is false. */
export function rawTar(entries: readonly RawEntry[], end = true): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const data = typeof entry.data === "string" ? Buffer.from(entry.data) : (entry.data ?? Buffer.alloc(0));
    parts.push(header(entry, entry.size ?? data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
