/**
 * A worker thread that compresses blocks into zstd frames with @cloudpss/zstd (Node 20 has no zstd in
 * zlib). It uses the binding's streaming compressor, whose context belongs to the instance: the one-shot
 * `compress` shares state between threads and crashed when two workers used it at once. Requests are
 * answered one at a time (threads.ts); `{ version: true }` asks for the library's version (part of the
 * codec's id).
 */
import type { Transform } from "node:stream";
import { workerData } from "node:worker_threads";
import { serveRequests } from "./threads.js";

const { level } = workerData as { level: number };
type Binding = { Compressor: new (level: number) => Transform; ZSTD_VERSION: () => string };
let binding: Promise<Binding> | undefined;

async function compress(data: Uint8Array): Promise<Uint8Array> {
  const compressor = new (await (binding as Promise<Binding>)).Compressor(level);
  const parts: Buffer[] = [];
  compressor.on("data", (part: Buffer) => parts.push(part));
  const done = new Promise<void>((resolve, reject) => {
    compressor.once("end", resolve);
    compressor.once("error", reject);
  });
  compressor.end(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  await done;
  // A fresh, transferable copy (the binding's buffers are its own).
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

serveRequests(async (body: { version?: boolean; data: ArrayBuffer; length: number }) => {
  binding ??= import("@cloudpss/zstd/napi" as string) as Promise<Binding>;
  if (body.version) return { result: (await binding).ZSTD_VERSION() };
  const frame = await compress(new Uint8Array(body.data, 0, body.length));
  return { result: { frame, data: body.data }, transfer: [frame.buffer as ArrayBuffer, body.data] };
});
