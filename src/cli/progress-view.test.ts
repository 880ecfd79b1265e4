/** The progress lines on a pipe: a retry names its subject whole, and nothing is said once the error line is due. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createProgressView, endProgress } from "./progress-view.js";

function pipe(): { stream: NodeJS.WriteStream; text(): string } {
  let written = "";
  const write = (chunk: string): boolean => {
    written += chunk;
    return true;
  };
  const stream = { isTTY: false, write } as unknown as NodeJS.WriteStream;
  return { stream, text: () => written };
}

describe("progress lines on a pipe", () => {
  it("say a retry of a request or a download as `SUBJECT: retrying (…)`", () => {
    const { stream, text } = pipe();
    const view = createProgressView(stream, false);
    view.sink({
      phase: "retry",
      kind: "blob sha256:637753e7d027 in 127.0.0.1:5000/base",
      id: "",
      bytes: 0,
      reason: "ECONNRESET; try 2 in 0.2 s",
    });
    view.sink({ phase: "done", kind: "layer", id: `sha256:${"ab".repeat(32)}`, bytes: 10, total: 10 });
    assert.equal(
      text(),
      "blob sha256:637753e7d027 in 127.0.0.1:5000/base: retrying (ECONNRESET; try 2 in 0.2 s)\nlayer abababababab: done (10 B)\n",
    );
  });

  it("say nothing after endProgress(), whatever is still winding down", () => {
    const { stream, text } = pipe();
    const view = createProgressView(stream, false);
    view.sink({ phase: "done", kind: "layer", id: `sha256:${"cd".repeat(32)}`, bytes: 1, total: 1 });
    const before = text();
    assert.notEqual(before, "");
    endProgress();
    view.sink({ phase: "retry", kind: "GET https://127.0.0.1/v2/", id: "", bytes: 0, reason: "ECONNRESET" });
    view.sink({ phase: "done", kind: "layer", id: `sha256:${"ef".repeat(32)}`, bytes: 1, total: 1 });
    assert.equal(text(), before);
  });
});
