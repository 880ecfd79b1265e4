/**
 * A worker thread that compresses blocks into zstd frames with @cloudpss/zstd (Node 20 has no zstd in
 * zlib). One message at a time; it exits when asked, never while compressing.
 */
import { parentPort, workerData } from "node:worker_threads";

const port = parentPort as NonNullable<typeof parentPort>;
const { level } = workerData as { level: number };
type Binding = { compress: (data: Uint8Array, level: number) => Uint8Array; ZSTD_VERSION: () => string };
let binding: Binding | undefined;
try {
  binding = (await import("@cloudpss/zstd/napi" as string)) as Binding;
  port.postMessage({ version: binding.ZSTD_VERSION() });
} catch (error) {
  port.postMessage({ error: (error as Error).message });
  port.close();
}

port.on("message", (message: { id: number; data: Uint8Array; close?: boolean }) => {
  if (message.close || !binding) {
    port.close();
    return;
  }
  try {
    // Always copy: the binding returns memory it owns, which must not be transferred.
    const out = new Uint8Array(binding.compress(message.data, level));
    port.postMessage({ id: message.id, data: out }, [out.buffer]);
  } catch (error) {
    port.postMessage({ id: message.id, error: (error as Error).message });
  }
});
