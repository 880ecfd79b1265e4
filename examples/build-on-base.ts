/**
 * Build on a base image: the files of examples/hello as a layer at /app, the entrypoint and an
 * environment variable set, the result written to a destination. The same as
 * `ocify build --from BASE --layer examples/hello:/app --entrypoint '["/app/hello.sh"]' --env MODE=demo -t DEST`.
 *
 *   node build-on-base.js BASE DEST      e.g. docker.io/library/alpine:3.20 oci:./out:1
 */
import { fileURLToPath } from "node:url";
import { build, OcifyError } from "ocify";

const [from = "docker.io/library/alpine:3.20", destination = "oci:./hello-layout:latest"] = process.argv.slice(2);
const hello = fileURLToPath(new URL("./hello", import.meta.url));

try {
  const result = await build({
    from,
    layers: [{ source: hello, dest: "/app" }],
    config: { entrypoint: ["/app/hello.sh"], env: ["MODE=demo"] },
    tags: [destination],
  });
  for (const written of result.written) console.log(`${written.digest} ${written.destination}`);
} catch (error) {
  // Every failure ocify expects is an OcifyError with a one-line message and a hint.
  if (!(error instanceof OcifyError)) throw error;
  console.error(`build-on-base: ${error.userMessage}`);
  process.exitCode = 1;
}
