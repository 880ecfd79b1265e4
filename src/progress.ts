/** Per-blob progress events, reported by transports and the layer builder; the CLI renders them. */

/**
 * What happened to a blob: its transfer started, went on, or was done; it was skipped (the destination
 * had it before this run), mounted from another repository, or sent (this run put it in the destination's
 * repository already, for another tag); a transfer was retried (`reason` says why).
 */
export type BlobPhase = "start" | "progress" | "skipped" | "mounted" | "sent" | "done" | "retry";

/** One event about one blob (a layer, config or manifest) moving to a destination or being built. */
export interface ProgressEvent {
  phase: BlobPhase;
  /** What is moving: `layer`, `config`, `manifest`, `build`. */
  kind: string;
  /** The blob's digest, or a label such as the layer source while it is being built. */
  id: string;
  /** Bytes done so far. */
  bytes: number;
  /** Bytes in all, when known. */
  total?: number;
  /** The destination or source it concerns, for messages. */
  target?: string;
  /** With "retry": what failed and what is done about it. */
  reason?: string;
}

/** A receiver of progress events; must not throw. */
export type ProgressSink = (event: ProgressEvent) => void;

/** A sink that drops everything. */
export const noProgress: ProgressSink = () => {};
