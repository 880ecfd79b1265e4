/**
 * A worker thread that compresses blocks into gzip members with libdeflate (WebAssembly). libdeflate's
 * whole-buffer compressor fits a block exactly, and at level 1 it is both faster and ~6% smaller than
 * zlib's level 1 (docs/compression.md). A request brings a block's memory (moved, not copied) and the
 * answer moves it back with the member, so the owner can reuse it (threads.ts).
 */
import { workerData } from "node:worker_threads";
import { InputError } from "../errors.js";
import { type Deflater, loadDeflater } from "./libdeflate.js";
import { serveRequests } from "./threads.js";

const { level } = workerData as { level: number };
let deflater: Promise<Deflater> | undefined;

serveRequests(async (body: { data: ArrayBuffer; length: number }) => {
  deflater ??= loadDeflater(level).catch((error: unknown) => {
    throw new InputError(`gzip compression could not start: ${(error as Error).message}`, {
      hint: "reinstall ocify with its dependencies, or use Node's zlib for gzip (gzipEngine: zlib)",
    });
  });
  const member = (await deflater).gzip(new Uint8Array(body.data, 0, body.length));
  return { result: { member, data: body.data }, transfer: [member.buffer as ArrayBuffer, body.data] };
});
