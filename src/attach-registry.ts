/**
 * Pushing a referrer to a registry: blobs, then the artifact manifest by digest. A registry that answers
 * with `OCI-Subject` indexes it for the referrers API itself; otherwise the referrers tag scheme's index
 * (`sha256-<hex>` of the subject) is read, the artifact added, and the index put back, so that referrers
 * other tools attached stay listed (distribution-spec "Pushing Manifests with Subject").
 */
import type { Readable } from "node:stream";
import {
  type AttachResult,
  addReferrer,
  bytesStream,
  emptyConfig,
  emptyConfigBytes,
  parseReferrersIndex,
  type Referrer,
  referrersTag,
} from "./attach.js";
import { type Digest, shortDigest } from "./digest.js";
import { maxManifestBytes, type RawManifest } from "./image/manifest.js";
import { MediaType } from "./media-types.js";
import type { Reference } from "./reference.js";
import { repositoryScope } from "./registry/auth.js";
import { type RegistryClient, registryClient } from "./registry/client.js";
import { readBody } from "./registry/http.js";
import type { TransportOptions } from "./transport/transport.js";

async function pushBlob(
  client: RegistryClient,
  repository: string,
  scopes: readonly string[],
  descriptor: { digest: Digest; size: number },
  open: () => Readable,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (await client.hasBlob(repository, descriptor, scopes, signal)) return;
  const upload = await client.startUpload(repository, scopes, signal);
  const what = `pushing blob ${shortDigest(descriptor.digest)} to ${client.registry}/${repository}`;
  await client.putBlob(upload, descriptor, open(), scopes, what, signal);
}

async function putManifest(
  client: RegistryClient,
  repository: string,
  reference: string,
  manifest: RawManifest,
  scopes: readonly string[],
  signal?: AbortSignal,
) {
  const response = await client.request({
    method: "PUT",
    target: `/v2/${repository}/manifests/${reference}`,
    scopes,
    headers: { "content-type": manifest.mediaType },
    body: manifest.bytes,
    signal,
    ok: [200, 201],
    context: { what: `${client.registry}/${repository}:${reference}`, kind: "manifest" },
  });
  response.body.resume();
  return response;
}

async function readTagIndex(client: RegistryClient, repository: string, tag: string, scopes: readonly string[], signal?: AbortSignal) {
  const what = `${client.registry}/${repository}:${tag}`;
  const response = await client.request({
    method: "GET",
    target: `/v2/${repository}/manifests/${tag}`,
    scopes,
    headers: { accept: MediaType.ociIndex },
    signal,
    followRedirects: true,
    ok: [200, 404],
    context: { what, kind: "manifest" },
  });
  if (response.status === 404) {
    response.body.resume();
    return undefined;
  }
  return parseReferrersIndex(await readBody(response, maxManifestBytes, what), `referrers index ${what}`);
}

/** Push the referrer's blobs and manifest to `reference`'s repository and make it findable from its subject. */
export async function pushReferrer(
  reference: Reference,
  referrer: Referrer,
  options: TransportOptions,
): Promise<AttachResult["indexedBy"]> {
  const client = registryClient(reference.registry, { insecureRegistries: options.insecureRegistries, userAgent: options.userAgent });
  const { repository } = reference;
  const scopes = [repositoryScope(repository, "pull,push")];
  const signal = options.signal;
  await pushBlob(client, repository, scopes, emptyConfig, () => bytesStream(emptyConfigBytes), signal);
  for (const blob of referrer.blobs) await pushBlob(client, repository, scopes, blob.descriptor, blob.open, signal);
  const response = await putManifest(client, repository, referrer.manifest.digest, referrer.manifest, scopes, signal);
  if (response.header("oci-subject") === referrer.subject.digest) return "referrers-api";
  // No referrers API: the tag scheme. Read, add, put back (a concurrent writer may race; the spec accepts it).
  const tag = referrersTag(referrer.subject.digest);
  const existing = await readTagIndex(client, repository, tag, scopes, signal);
  await putManifest(client, repository, tag, addReferrer(existing, referrer.entry), scopes, signal);
  return "referrers-tag";
}
