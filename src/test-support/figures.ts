/**
 * The reliability figures: tests that inject faults, kill runs or feed hostile inputs record what they
 * did here, as JSON lines appended to $OCIFY_RELIABILITY_FIGURES when it is set (scripts/reliability.mjs
 * sets it, runs those tests and sums the lines into docs/reliability.md). Without it, nothing is written.
 */
import { appendFileSync } from "node:fs";

/** One scenario's figures. */
export interface Figures {
  /** fault | kill | hostile */
  kind: "fault" | "kill" | "hostile";
  /** What was done, for the table. */
  scenario: string;
  [figure: string]: unknown;
}

/** Record one scenario's figures (a no-op outside `npm run reliability`). */
export function recordFigures(figures: Figures): void {
  const path = process.env.OCIFY_RELIABILITY_FIGURES;
  if (path) appendFileSync(path, `${JSON.stringify(figures)}\n`);
}
