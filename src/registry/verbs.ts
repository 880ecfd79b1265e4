/**
 * The registry verbs users reach for in crane and regctl: list a repository's tags, resolve a reference to
 * its manifest digest (HEAD, which Docker Hub does not count as a pull), put a manifest under another tag
 * without moving a blob, and delete a manifest by digest where the registry allows it.
 */
import type { Digest } from "../digest.js";
import { digestOf } from "../digest.js";
import { InputError } from "../errors.js";
import { formatReference, manifestReference, type Reference } from "../reference.js";
import { repositoryScope } from "./auth.js";
import { registryClient } from "./client.js";
import type { CredentialProvider } from "./credentials.js";
import { RegistryError } from "./errors.js";

/** Options of the registry verbs. */
export interface RegistryVerbOptions {
  /** Registries (HOST[:PORT]) reached over plain HTTP or with unverified TLS. */
  insecureRegistries?: readonly string[] | undefined;
  /** Where credentials come from; default: auth.json files, then docker's config.json. */
  credentials?: readonly CredentialProvider[] | undefined;
  userAgent?: string | undefined;
  signal?: AbortSignal | undefined;
}

function clientOf(reference: Reference, options: RegistryVerbOptions) {
  return registryClient(reference.registry, {
    insecureRegistries: options.insecureRegistries,
    credentials: options.credentials,
    userAgent: options.userAgent,
  });
}

/** Every tag of the reference's repository, in the registry's order. */
export async function listTags(reference: Reference, options: RegistryVerbOptions & { pageSize?: number } = {}): Promise<string[]> {
  const what = `${reference.registry}/${reference.repository}`;
  const pull = [repositoryScope(reference.repository, "pull")];
  return clientOf(reference, options).listTags(reference.repository, pull, what, {
    ...(options.pageSize ? { pageSize: options.pageSize } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

/** The digest of the manifest a reference names, exactly as the registry has it (HEAD; GET when HEAD does not say). */
export async function resolveDigest(reference: Reference, options: RegistryVerbOptions = {}): Promise<Digest> {
  const client = clientOf(reference, options);
  const pull = [repositoryScope(reference.repository, "pull")];
  const what = formatReference(reference);
  const wanted = manifestReference(reference);
  const head = await client.headManifest(reference.repository, wanted, pull, what, options.signal);
  if (head) return head.digest;
  const manifest = await client.getManifest(reference.repository, wanted, pull, what, options.signal);
  return digestOf(manifest.bytes);
}

/** Put the manifest `reference` names under `tag` in the same repository; no blob moves. Returns its digest. */
export async function tagImage(reference: Reference, tag: string, options: RegistryVerbOptions = {}): Promise<Digest> {
  if (!/^[\w][\w.-]{0,127}$/.test(tag)) {
    throw new InputError(`"${tag}" is not a valid tag`, {
      hint: "use up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'",
    });
  }
  const client = clientOf(reference, options);
  const push = [repositoryScope(reference.repository, "pull,push")];
  const manifest = await client.getManifest(
    reference.repository,
    manifestReference(reference),
    push,
    formatReference(reference),
    options.signal,
  );
  const { digest: _pinned, ...named } = reference;
  const target = formatReference({ ...named, tag });
  await client.putManifest(reference.repository, tag, manifest, push, target, options.signal);
  return manifest.digest;
}

/** Delete the manifest `reference@digest` names (every tag pointing at it goes with it). */
export async function deleteImage(reference: Reference, options: RegistryVerbOptions = {}): Promise<void> {
  const digest = reference.digest;
  if (digest === undefined) {
    throw new InputError(`${formatReference(reference)}: delete needs a digest`, {
      hint: `name it REPOSITORY@sha256:…; ocify digest ${formatReference(reference)} prints it`,
    });
  }
  const scopes = [`repository:${reference.repository}:delete`];
  const what = `deleting ${reference.registry}/${reference.repository}@${digest}`;
  try {
    await clientOf(reference, options).deleteManifest(reference.repository, digest as Digest, scopes, what, options.signal);
  } catch (error) {
    if (error instanceof RegistryError && error.code === "UNSUPPORTED") {
      throw new RegistryError("UNSUPPORTED", `${what}: ${reference.registry} does not allow deleting manifests`, {
        hint: "delete it in the registry's web interface, or ask its operator (docker-registry: storage.delete.enabled)",
        status: error.status,
        cause: error,
      });
    }
    throw error;
  }
}
