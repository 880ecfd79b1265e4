/**
 * The JSON ocify writes for every manifest, index and config it makes: no whitespace, and the keys of
 * every object in the order of their UTF-8 bytes, which is the order Go's encoding/json gives a map's keys
 * (Docker, containerd, buildah, umoci) and the canonical JSON image-spec asks for (considerations.md). The
 * same content then has the same bytes, so the same digest, whatever order its parts were put together in:
 * `--label b=1 --label a=2` and `--label a=2 --label b=1` make one image. Values are written as
 * JSON.stringify writes them.
 */

/**
 * A UTF-16 code unit's rank in code point order: the surrogates (D800–DFFF, halves of the code points above
 * FFFF) come after E000–FFFF, every other unit keeps its place.
 */
function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

/** Compare two strings as their UTF-8 bytes compare (Go's `strings.Compare`), not as their UTF-16 units do. */
export function compareUtf8(a: string, b: string): number {
  const shorter = Math.min(a.length, b.length);
  for (let i = 0; i < shorter; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** What JSON.stringify would do with `value` before writing it: toJSON called, undefined for what it leaves out. */
function prepared(value: unknown, key: string): unknown {
  const withToJson = value as { toJSON?: (key: string) => unknown } | null;
  if (typeof withToJson === "object" && withToJson !== null && typeof withToJson.toJSON === "function") return withToJson.toJSON(key);
  return value;
}

function write(value: unknown, key: string, out: string[]): boolean {
  const v = prepared(value, key);
  if (v === undefined || typeof v === "function" || typeof v === "symbol") return false;
  if (v === null || typeof v !== "object") {
    out.push(JSON.stringify(v));
    return true;
  }
  if (Array.isArray(v)) {
    out.push("[");
    for (const [i, item] of v.entries()) {
      if (i > 0) out.push(",");
      if (!write(item, String(i), out)) out.push("null");
    }
    out.push("]");
    return true;
  }
  // Boxed primitives (new String("x")) are written as their value, as JSON.stringify does.
  if (v instanceof String || v instanceof Number || v instanceof Boolean) {
    out.push(JSON.stringify(v));
    return true;
  }
  const object = v as Record<string, unknown>;
  out.push("{");
  let first = true;
  for (const name of Object.keys(object).sort(compareUtf8)) {
    const mark = out.length;
    out.push(first ? "" : ",", JSON.stringify(name), ":");
    if (write(object[name], name, out)) first = false;
    else out.length = mark; // a member JSON.stringify leaves out (undefined, a function)
  }
  out.push("}");
  return true;
}

/** `value` as canonical JSON text, keys sorted at every depth (see the module's comment). */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  if (!write(value, "", out)) throw new TypeError("canonicalJson: not a JSON value");
  return out.join("");
}
