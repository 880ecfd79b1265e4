/** A worker thread that compresses blocks into zstd frames with @cloudpss/zstd (Node 20 has no zstd in zlib). */
import { parentPort, workerData } from "node:worker_threads";

const { level } = workerData as { level: number };
const { compress } = (await import("@cloudpss/zstd/napi" as string)) as { compress: (data: Uint8Array, level: number) => Uint8Array };

parentPort?.on("message", (message: { id: number; data: Uint8Array }) => {
  try {
    const out = compress(message.data, level);
    const copy = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : out.slice();
    parentPort?.postMessage({ id: message.id, data: copy }, [copy.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort?.postMessage({ id: message.id, error: (error as Error).message });
  }
});
