/**
 * A plan's tar headers, kept compact. A header is one or more 512-byte records that are mostly zeros (a
 * name, a few octal fields, the magic); it is kept as runs: a 16-bit count of literal bytes, those bytes,
 * a 16-bit count of zeros, and again, until the header's length is reached. 300,000 headers take ~40 MiB
 * this way instead of ~150. An octal field never holds a zero byte before its terminator, so a header
 * whose size field is rewritten keeps runs of the same lengths and can be patched where it lies.
 */

const maxRun = 0xffff;

/**
 * The most bytes a header of `length` bytes can take compacted: runs of one literal byte and one zero
 * take 5 bytes for 2, so never more than 3 bytes a byte, and 4.
 */
export function compactBound(length: number): number {
  return length * 3 + 4;
}

/** Bytes `header` takes compacted. */
export function compactLength(header: Uint8Array): number {
  return compactInto(header, new Uint8Array(compactBound(header.length)), 0);
}

/** Write `header` compacted into `target` at `at`; returns where it ends. */
export function compactInto(header: Uint8Array, target: Uint8Array, at: number): number {
  let o = at;
  for (let i = 0; i < header.length; ) {
    let j = i;
    while (j < header.length && j - i < maxRun && header[j] !== 0) j++;
    let k = j;
    while (k < header.length && k - j < maxRun && header[k] === 0) k++;
    target[o] = (j - i) & 0xff;
    target[o + 1] = (j - i) >> 8;
    o += 2;
    // Byte by byte: runs are short, and a subarray per run costs more than copying it (300,000 headers).
    for (let x = i; x < j; x++) target[o++] = header[x] as number;
    target[o] = (k - j) & 0xff;
    target[o + 1] = (k - j) >> 8;
    o += 2;
    i = k;
  }
  return o;
}

/** Write the header compacted in `compacted[start, end)` out in full into `target` at `at`; returns its length. */
export function expandInto(compacted: Uint8Array, start: number, end: number, target: Uint8Array, at: number): number {
  let o = at;
  for (let p = start; p < end; ) {
    const literal = (compacted[p] as number) | ((compacted[p + 1] as number) << 8);
    p += 2;
    for (const stop = p + literal; p < stop; ) target[o++] = compacted[p++] as number;
    const zeros = (compacted[p] as number) | ((compacted[p + 1] as number) << 8);
    target.fill(0, o, o + zeros);
    o += zeros;
    p += 2;
  }
  return o - at;
}
