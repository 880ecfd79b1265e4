/**
 * A worker thread that compresses blocks into zstd frames with @cloudpss/zstd (Node 20 has no zstd in
 * zlib). It uses the binding's streaming compressor, whose context belongs to the instance: the one-shot
 * `compress` shares state between threads and crashed when two workers used it at once. One block at a
 * time; the thread exits when asked, never while compressing.
 */
import type { Transform } from "node:stream";
import { parentPort, workerData } from "node:worker_threads";

const port = parentPort as NonNullable<typeof parentPort>;
const { level } = workerData as { level: number };
type Binding = { Compressor: new (level: number) => Transform; ZSTD_VERSION: () => string };
let binding: Binding | undefined;
try {
  binding = (await import("@cloudpss/zstd/napi" as string)) as Binding;
  port.postMessage({ version: binding.ZSTD_VERSION() });
} catch (error) {
  port.postMessage({ error: (error as Error).message });
  port.close();
}

async function compress(data: Uint8Array): Promise<Uint8Array> {
  const compressor = new (binding as Binding).Compressor(level);
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

port.on("message", (message: { id: number; data: Uint8Array; close?: boolean }) => {
  if (message.close || !binding) {
    port.close();
    return;
  }
  compress(message.data).then(
    (out) => port.postMessage({ id: message.id, data: out }, [out.buffer as ArrayBuffer]),
    (error: unknown) => port.postMessage({ id: message.id, error: (error as Error).message }),
  );
});
