// A fallback for when dist/test-support/registry.js is not built: Debian's docker-registry on a free
// loopback port with a temp config and temp storage. Same shape: { host, url, dir, stop() }.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Start `docker-registry serve` and wait until /v2/ answers. */
export async function startRegistry() {
  const dir = mkdtempSync(join(tmpdir(), "ocify-bench-registry-"));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  // JSON is YAML.
  const config = {
    version: 0.1,
    log: { level: "error", accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: join(dir, "data") }, delete: { enabled: true } },
    http: { addr: host },
  };
  writeFileSync(join(dir, "config.yml"), JSON.stringify(config));
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("REGISTRY_")));
  const child = spawn("/usr/bin/docker-registry", ["serve", join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"], env });
  let output = "";
  child.stderr.on("data", (d) => {
    output = (output + d).slice(-8192);
  });
  let exited = false;
  const exit = new Promise((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  const stop = async () => {
    process.off("exit", kill);
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(kill, 5000);
      await exit;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`docker-registry exited before it answered: ${output}`);
    }
    try {
      const response = await fetch(`${url}/v2/`);
      if (response.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer on ${host}: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { host, url, dir, stop };
}
