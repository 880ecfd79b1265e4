/** Reading small documents (manifests, configs, error bodies) whole, with a size cap. */
import type { Readable } from "node:stream";
import { InvalidImageError } from "./errors.js";

/**
 * Read a stream into memory, failing once it exceeds `limit` bytes (the stream is destroyed); `tooLarge`
 * makes the error when the caller has a better one than InvalidImageError.
 */
export async function readBounded(stream: Readable, limit: number, what: string, tooLarge?: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buffer.length;
    if (size > limit) {
      stream.destroy();
      throw (
        tooLarge?.() ??
        new InvalidImageError(`${what} is larger than ${limit} bytes`, { hint: "this is not a manifest or config ocify can read" })
      );
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, size);
}
