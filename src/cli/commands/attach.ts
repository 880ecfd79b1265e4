/** `ocify attach --subject REF --artifact-type TYPE FILE...`: attach files to an image as an OCI 1.1 referrer. */
import { attachArtifact, UsageError } from "../../index.js";
import { helpRequested, keyValues, parseFlags, transportFlags, transportOptions, writeDigestFile } from "../flags.js";

export const help = `Usage: ocify attach --subject IMAGE --artifact-type TYPE [OPTIONS] FILE...

Attach files (an SBOM, a signature, a report) to an image as an OCI 1.1 referrer: an artifact manifest
with TYPE as its artifactType, the empty config, one blob per FILE (named by its file name) and the
image's manifest as its subject. A registry with the referrers API lists it there; on others the
referrers tag scheme's index (tag sha256-<digest of IMAGE>) is updated, keeping what it listed. In an
OCI layout or archive (oci:DIR:TAG, oci-archive:FILE:TAG) the artifact is added to index.json.

  --subject IMAGE           the image: a registry reference, oci:DIR[:TAG] or oci-archive:FILE[:TAG]
  --artifact-type TYPE      e.g. application/spdx+json, application/vnd.cyclonedx+json
  --file-type TYPE          the blobs' media type (default: the artifact type)
  --annotation KEY=VALUE    an annotation of the artifact manifest (repeatable)
  --insecure-registry HOST:PORT, --digest-file FILE, --quiet   as in ocify copy

Prints the artifact manifest's digest and where it is listed.`;

/** Run the attach command. */
export async function run(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    ...transportFlags,
    subject: { type: "string" },
    "artifact-type": { type: "string" },
    "file-type": { type: "string" },
    annotation: { type: "string", multiple: true },
  });
  if (helpRequested(values, help)) return 0;
  if (values.subject === undefined) throw new UsageError("attach needs --subject IMAGE", { hint: "see ocify attach --help" });
  const artifactType = values["artifact-type"];
  if (artifactType === undefined) throw new UsageError("attach needs --artifact-type TYPE", { hint: "e.g. application/spdx+json" });
  if (!positionals.length) throw new UsageError("attach needs at least one FILE", { hint: "see ocify attach --help" });
  const { options: transport, finish } = transportOptions(values, signal);
  const fileType = values["file-type"];
  const annotations = keyValues(values.annotation, "--annotation");
  const result = await attachArtifact({
    ...transport,
    subject: values.subject,
    artifactType,
    files: positionals.map((path) => (fileType === undefined ? { path } : { path, mediaType: fileType })),
    ...(annotations ? { annotations } : {}),
  });
  finish();
  process.stdout.write(`${result.digest} ${values.subject} (${result.indexedBy})\n`);
  await writeDigestFile(values["digest-file"], result.digest);
  return 0;
}
