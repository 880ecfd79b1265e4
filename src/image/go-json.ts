/**
 * The few rules of Go's encoding/json that decide the bytes of a converted schema 1 config, so that ocify
 * and skopeo (containers/image) write the same config and so the same digests: map keys sorted by their
 * UTF-8 bytes, embedded JSON compacted, `<`, `>`, `&`, U+2028 and U+2029 escaped, times as RFC 3339 with
 * nanoseconds and no trailing zeros.
 */
import { InvalidImageError } from "../errors.js";

const hex = (code: number, width: number): string => code.toString(16).padStart(width, "0");

const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A string as Go's json.Marshal writes it (HTML-safe escaping). */
export function goString(value: string): string {
  let out = '"';
  // Go reads a lone surrogate escape as U+FFFD.
  for (const char of value.replace(loneSurrogate, "\ufffd")) {
    const code = char.codePointAt(0) as number;
    if (char === '"' || char === "\\") out += `\\${char}`;
    else if (char === "\n") out += "\\n";
    else if (char === "\r") out += "\\r";
    else if (char === "\t") out += "\\t";
    else if (char === "\b") out += "\\b";
    else if (char === "\f") out += "\\f";
    else if (code < 0x20 || char === "<" || char === ">" || char === "&" || code === 0x2028 || code === 0x2029) {
      out += `\\u${hex(code, 4)}`;
    } else out += char;
  }
  return `${out}"`;
}

const space = new Set([" ", "\t", "\n", "\r"]);

/** JSON text compacted as Go compacts a json.RawMessage it marshals: no whitespace between tokens, HTML-safe. */
export function goCompact(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string;
    if (inString) {
      if (char === "\\") {
        out += char + (text[++i] ?? "");
        continue;
      }
      if (char === '"') inString = false;
    } else if (space.has(char)) continue;
    else if (char === '"') inString = true;
    if (char === "<" || char === ">" || char === "&" || char === "\u2028" || char === "\u2029") {
      out += `\\u${hex(char.charCodeAt(0), 4)}`;
    } else out += char;
  }
  return out;
}

/** The index just past the string token whose opening quote is at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') return i + 1;
  }
  return text.length;
}

/** The end (exclusive) of the JSON value starting at `start`: the `,` or `}` after it at depth 0. */
function valueEnd(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const char = text[i];
    if (char === '"') i = stringEnd(text, i) - 1;
    else if (char === "{" || char === "[") depth++;
    else if (char === "}" || char === "]") {
      if (depth === 0) return i;
      depth--;
    } else if (char === "," && depth === 0) return i;
  }
  return text.length;
}

/**
 * The members of a JSON object as (key, raw value text) pairs, a later duplicate key replacing an earlier
 * one, as Go fills a map[string]json.RawMessage. The text must already be known to be a valid object.
 */
export function rawMembers(text: string): Map<string, string> {
  const members = new Map<string, string>();
  let i = text.indexOf("{") + 1;
  const skip = (): void => {
    while (i < text.length && space.has(text[i] as string)) i++;
  };
  for (;;) {
    skip();
    if (text[i] !== '"') return members;
    const keyEnd = stringEnd(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = keyEnd;
    skip();
    i++; // the colon
    skip();
    const end = valueEnd(text, i);
    members.set(key, text.slice(i, end).trim());
    i = end + 1;
  }
}

/** A JSON object from (key, JSON text) members, keys sorted by their UTF-8 bytes as Go sorts a map's keys. */
export function goObject(members: Map<string, string>): string {
  const keys = [...members.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `{${keys.map((key) => `${goString(key)}:${goCompact(members.get(key) as string)}`).join(",")}}`;
}

const rfc3339 = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:[.,](\d+))?(Z|z|[+-]\d{2}:\d{2})$/;

/**
 * A time as Go's time.Time round-trips it through JSON: parsed as RFC 3339, written with up to nine
 * fractional digits and no trailing zeros, `Z` for a zero offset. An absent time is Go's zero time.
 */
export function goTime(value: unknown, what: string): string {
  if (value === undefined || value === null) return "0001-01-01T00:00:00Z";
  const match = typeof value === "string" ? rfc3339.exec(value) : null;
  if (!match) throw new InvalidImageError(`${what}: ${JSON.stringify(value)} is not an RFC 3339 time`);
  const [, date, time, fraction = "", zone = "Z"] = match;
  const nanos = fraction.slice(0, 9).replace(/0+$/, "");
  const offset = /^[+-]00:00$/.test(zone) || zone === "z" ? "Z" : zone;
  return `${date}T${time}${nanos ? `.${nanos}` : ""}${offset}`;
}
