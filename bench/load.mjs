// The bench's `--load` mode: a fixed CPU hog at a lower priority, running during every measured command
// (ocify's and the peers' alike), as a build host or a CI runner has other work going on. The hog is a
// Node process spinning on one core; its priority is set with setpriority(2), so no `nice` binary is needed.
import { spawn } from "node:child_process";
import { setPriority } from "node:os";

/**
 * Start `hogs` spinning processes at niceness `nice`, each in its own process group; returns a function that
 * stops them. They spin for a moment (`warmMs`) before this resolves, so the measured command meets them busy.
 */
export async function startLoad({ hogs, nice, warmMs = 150 }, children) {
  const started = [];
  for (let i = 0; i < hogs; i++) {
    const child = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore", detached: true });
    child.once("error", () => {});
    children.add(child);
    started.push(child);
    try {
      setPriority(child.pid, nice);
    } catch {}
  }
  if (started.length > 0) await new Promise((resolve) => setTimeout(resolve, warmMs));
  return async () => {
    for (const child of started) {
      children.delete(child);
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const gone = new Promise((resolve) => child.once("exit", resolve));
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
      await gone;
    }
  };
}
