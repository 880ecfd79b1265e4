/** Renders progress events: live per-blob lines on a TTY, plain lines otherwise, nothing with --quiet. */
import type { ProgressEvent, ProgressSink } from "../progress.js";

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function short(id: string): string {
  const colon = id.indexOf(":");
  return colon > 0 && id.length > 40 ? id.slice(colon + 1, colon + 13) : id;
}

interface Row {
  label: string;
  bytes: number;
  total?: number | undefined;
  started: number;
  state: string;
}

/** A progress sink writing to `stream` (stderr). */
export function createProgressView(stream: NodeJS.WriteStream, quiet: boolean): { sink: ProgressSink; finish(): void } {
  if (quiet) return { sink: () => {}, finish() {} };
  if (!stream.isTTY) {
    const sink: ProgressSink = (event) => {
      const what = `${event.kind} ${short(event.id)}`;
      const size = event.total !== undefined ? ` (${formatBytes(event.total)})` : "";
      const to = event.target ? ` → ${event.target}` : "";
      if (event.phase === "skipped") stream.write(`${what}: already present${to}\n`);
      else if (event.phase === "mounted") stream.write(`${what}: mounted${to}\n`);
      else if (event.phase === "done")
        stream.write(`${what}: done${event.kind === "build" ? ` (${formatBytes(event.bytes)})` : size}${to}\n`);
      else if (event.phase === "start" && event.kind === "build") stream.write(`${what}: building\n`);
      else if (event.phase === "retry") stream.write(`${what}: retrying (${event.reason ?? "failed"})${to}\n`);
    };
    return { sink, finish() {} };
  }
  const rows = new Map<string, Row>();
  let drawn = 0;
  let last = 0;
  const draw = (force: boolean) => {
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    const lines = [...rows.values()].map((row) => {
      const seconds = Math.max((now - row.started) / 1000, 0.001);
      const rate = row.state === "…" ? ` ${formatBytes(row.bytes / seconds)}/s` : "";
      const of = row.total !== undefined ? ` / ${formatBytes(row.total)}` : "";
      return `${row.label}: ${row.state === "…" ? `${formatBytes(row.bytes)}${of}${rate}` : row.state}`;
    });
    let out = drawn > 0 ? `\x1b[${drawn}A` : "";
    for (const line of lines) out += `\x1b[2K${line.slice(0, (stream.columns || 80) - 1)}\n`;
    stream.write(out);
    drawn = lines.length;
  };
  const sink: ProgressSink = (event: ProgressEvent) => {
    const key = `${event.kind}|${event.id}|${event.target ?? ""}`;
    let row = rows.get(key);
    if (!row) {
      row = { label: `${event.kind} ${short(event.id)}`, bytes: 0, started: Date.now(), state: "…" };
      rows.set(key, row);
    }
    row.bytes = event.bytes;
    row.total = event.total;
    if (event.phase === "skipped") row.state = "already present";
    else if (event.phase === "mounted") row.state = "mounted";
    else if (event.phase === "done") row.state = `done (${formatBytes(event.bytes)})`;
    else if (event.phase === "retry") row.state = `retrying (${event.reason ?? "failed"})`;
    else if (row.state.startsWith("retrying")) row.state = "…";
    draw(event.phase !== "progress");
  };
  return { sink, finish: () => draw(true) };
}
