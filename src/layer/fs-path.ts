/** Paths as the layer engine holds them: latin1 strings, one char per byte of the name on disk. */

/** A path given as latin1 string, as fs wants it: the string itself when ASCII, else its bytes. */
export function fsPath(latin1: string): string | Buffer {
  return /^[\x00-\x7f]*$/.test(latin1) ? latin1 : Buffer.from(latin1, "latin1");
}
