/** Image references in the distribution grammar: `[registry/]repository[:tag][@digest]`. */
import { isDigest } from "./digest.js";
import { InvalidReferenceError } from "./errors.js";

/** A parsed, normalized image reference. */
export interface Reference {
  /** Registry host as written by users, normalized (`docker.io` for Docker Hub), with port if any. */
  registry: string;
  /** Repository path, with `library/` added for Docker Hub official images. */
  repository: string;
  tag?: string;
  digest?: string;
}

export const dockerHub = "docker.io";
const dockerHubApiHost = "registry-1.docker.io";

// reference grammar of distribution/reference (regexp.go), written out here.
const component = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const pathPattern = new RegExp(`^${component}(?:/${component})*$`);
const hostLabel = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const domainPattern = new RegExp(`^(?:${hostLabel}(?:\\.${hostLabel})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const tagPattern = /^[\w][\w.-]{0,127}$/;
const maxNameLength = 255;

/** Parse a reference; throws InvalidReferenceError with a one-line reason. Tag defaults to none. */
export function parseReference(input: string): Reference {
  const fail = (reason: string, hint?: string): never => {
    throw new InvalidReferenceError(input, reason, hint === undefined ? {} : { hint });
  };
  if (input.length === 0) fail("it is empty");
  if (/\s/.test(input)) fail("it contains whitespace");
  if (input.includes("://")) fail("a scheme is not part of an image reference", "write HOST/REPOSITORY:TAG");

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) fail(`"${digest}" is not a valid digest`, "use sha256: followed by 64 hex digits");
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > lastSlash) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!tagPattern.test(tag)) {
      fail(`"${tag}" is not a valid tag`, "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'");
    }
  }

  let registry = dockerHub;
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase()) {
      registry = first;
      repository = rest.slice(slash + 1);
      if (!domainPattern.test(registry)) fail(`"${registry}" is not a valid registry host`);
    }
  }
  if (registry === "index.docker.io") registry = dockerHub;
  if (repository.length === 0) fail("the repository name is empty");
  if (repository !== repository.toLowerCase()) fail("repository names must be lowercase");
  if (!pathPattern.test(repository)) {
    fail(`"${repository}" is not a valid repository name`, "use lowercase letters, digits and separators . _ __ - /");
  }
  if (registry === dockerHub && !repository.includes("/")) repository = `library/${repository}`;
  if (registry.length + 1 + repository.length > maxNameLength) fail(`the name is longer than ${maxNameLength} characters`);

  const reference: Reference = { registry, repository };
  if (tag !== undefined) reference.tag = tag;
  if (digest !== undefined) reference.digest = digest;
  return reference;
}

/** Parse a reference and default the tag to `latest` when it has neither tag nor digest. */
export function parseReferenceWithDefaultTag(input: string): Reference {
  const reference = parseReference(input);
  if (reference.tag === undefined && reference.digest === undefined) reference.tag = "latest";
  return reference;
}

/** The canonical string of a reference (`docker.io/library/alpine:3.20@sha256:…`). */
export function formatReference(reference: Reference): string {
  let text = `${reference.registry}/${reference.repository}`;
  if (reference.tag !== undefined) text += `:${reference.tag}`;
  if (reference.digest !== undefined) text += `@${reference.digest}`;
  return text;
}

/** The short name users know (`alpine:3.20` for Docker Hub official images), as docker load wants in RepoTags. */
export function familiarName(reference: Reference): string {
  let name = `${reference.registry}/${reference.repository}`;
  if (reference.registry === dockerHub) {
    name = reference.repository.startsWith("library/") ? reference.repository.slice(8) : reference.repository;
  }
  return name;
}

/** The host to send API requests to (Docker Hub's API lives on another host than its name). */
export function registryApiHost(registry: string): string {
  return registry === dockerHub ? dockerHubApiHost : registry;
}

/** The tag or digest to request a manifest by: the digest wins when both are given. */
export function manifestReference(reference: Reference): string {
  return reference.digest ?? reference.tag ?? "latest";
}
