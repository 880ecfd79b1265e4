/** Renders progress events: live per-blob lines on a TTY, plain lines otherwise, nothing with --quiet. */
import type { ProgressEvent, ProgressSink } from "../index.js";

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

/** What a line is about: `layer 0123456789ab`, or a retry's subject, already whole. */
function subject(event: { kind: string; id: string }): string {
  return event.id ? `${event.kind} ${short(event.id)}` : event.kind;
}

/**
 * What became of a blob, in a word, once it is settled: a layer to build that is the recorded build's is
 * unchanged; a blob the destination had before this run is already present; one this run put in the
 * destination's repository, for another tag, is pushed.
 */
function settledWord(event: ProgressEvent): string | undefined {
  if (event.phase === "skipped") return event.kind === "build" ? "unchanged" : "already present";
  if (event.phase === "mounted") return "mounted";
  if (event.phase === "sent") return "pushed";
  return undefined;
}

interface Row {
  label: string;
  target: string | undefined;
  bytes: number;
  total?: number | undefined;
  started: number;
  state: string;
}

/** Once a run's error line is due, nothing is said after it: work still winding down stays quiet. */
let ended = false;

/** Silence every progress view of this process (the error line is about to be written, last). */
export function endProgress(): void {
  ended = true;
}

/** A progress sink writing to `stream` (stderr). */
export function createProgressView(stream: NodeJS.WriteStream, quiet: boolean): { sink: ProgressSink; finish(): void } {
  if (quiet) return { sink: () => {}, finish() {} };
  if (!stream.isTTY) {
    const sink: ProgressSink = (event) => {
      if (ended) return;
      const what = subject(event);
      const size = event.total !== undefined ? ` (${formatBytes(event.total)})` : "";
      const to = event.target ? ` → ${event.target}` : "";
      const settled = settledWord(event);
      if (settled) stream.write(`${what}: ${settled}${to}\n`);
      else if (event.phase === "done")
        stream.write(`${what}: done${event.kind === "build" ? ` (${formatBytes(event.bytes)})` : size}${to}\n`);
      else if (event.phase === "start" && event.kind === "build") stream.write(`${what}: building\n`);
      else if (event.phase === "retry") stream.write(`${what}: retrying (${event.reason ?? "failed"})${to}\n`);
    };
    return { sink, finish() {} };
  }
  const rows = new Map<string, Row>();
  // Once blobs go to several destinations, each row says which one it is for.
  const targets = new Set<string>();
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
      const to = targets.size > 1 && row.target ? ` → ${row.target}` : "";
      return `${row.label}${to}: ${row.state === "…" ? `${formatBytes(row.bytes)}${of}${rate}` : row.state}`;
    });
    let out = drawn > 0 ? `\x1b[${drawn}A` : "";
    for (const line of lines) out += `\x1b[2K${line.slice(0, (stream.columns || 80) - 1)}\n`;
    stream.write(out);
    drawn = lines.length;
  };
  const sink: ProgressSink = (event: ProgressEvent) => {
    if (ended) return;
    const key = `${event.kind}|${event.id}|${event.target ?? ""}`;
    let row = rows.get(key);
    if (!row) {
      row = { label: subject(event), target: event.target, bytes: 0, started: Date.now(), state: "…" };
      rows.set(key, row);
    }
    if (event.target) targets.add(event.target);
    row.bytes = event.bytes;
    row.total = event.total;
    const settled = settledWord(event);
    if (settled) row.state = settled;
    else if (event.phase === "done") row.state = `done (${formatBytes(event.bytes)})`;
    else if (event.phase === "retry") row.state = `retrying (${event.reason ?? "failed"})`;
    else if (row.state.startsWith("retrying")) row.state = "…";
    draw(event.phase !== "progress");
  };
  return { sink, finish: () => draw(true) };
}
