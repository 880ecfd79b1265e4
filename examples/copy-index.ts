/**
 * Copy a multi-platform image, its index and every platform's image, from one store to another (here
 * any transport: a registry, an OCI layout or archive), after listing what it holds. The digest is kept
 * unless the destination needs the other manifest family.
 *
 *   node copy-index.js SOURCE DEST       e.g. docker.io/library/alpine:3.20 oci-archive:./alpine.tar
 */
import { copyImage, formatPlatform, openDestination, openSource, parseTransportReference, readImage } from "ocify";

const [from = "docker.io/library/alpine:3.20", to = "oci-archive:./alpine.tar"] = process.argv.slice(2);

const source = await openSource(parseTransportReference(from));
try {
  const top = await readImage(source);
  if (top.kind === "index") {
    for (const child of await top.children()) {
      const platform = child.descriptor.platform ? formatPlatform(child.descriptor.platform) : "unknown";
      console.log(`${platform} ${child.descriptor.digest}`);
    }
  }
  const written = await copyImage(top, await openDestination(parseTransportReference(to)));
  console.log(`${written.digest} ${written.destination}`);
} finally {
  await source.close();
}
