/**
 * Assemble an image in memory, with no file on disk and no base: a layer from entries a program holds
 * (a config file, a script, a directory), the config set by a pure function of the old one, written as
 * an image that `docker load`, skopeo or a registry takes.
 *
 *   node in-memory.js DEST               e.g. docker-archive:./generated.tar:generated:1
 */
import { copyImage, emptyImage, layerFromFiles, mutate, openDestination, parseTransportReference } from "ocify";

const [destination = "docker-archive:./generated.tar:generated:1"] = process.argv.slice(2);

const layer = await layerFromFiles([
  { path: "etc/app/", type: "directory" },
  { path: "etc/app/config.json", content: JSON.stringify({ mode: "demo" }) },
  { path: "usr/local/bin/run.sh", content: "#!/bin/sh\necho generated\n", mode: 0o755 },
]);
const configured = mutate.config(emptyImage({ os: "linux", architecture: "amd64" }), (config) => ({
  ...config,
  config: { ...config.config, Entrypoint: ["/usr/local/bin/run.sh"], Env: ["APP_CONFIG=/etc/app/config.json"] },
}));
const image = mutate.append(configured, [{ layer, history: { created_by: "in-memory example", comment: "ocify" } }]);
const written = await copyImage(image, await openDestination(parseTransportReference(destination)));
console.log(`${written.digest} ${written.destination}`);
