/**
 * Transports: where images are read from and written to. References use skopeo's syntax:
 * `docker://REF` (or a bare reference), `oci:DIR[:tag]`, `oci-archive:FILE[:tag]`,
 * `docker-archive:FILE[:name:tag | :@index]`.
 */
import { readdirSync, type Stats, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { InvalidReferenceError, UsageError } from "../errors.js";
import { isWriterScratch } from "../fs-atomic.js";
import type { ImageSource } from "../image/source.js";
import { parseReference, parseReferenceWithDefaultTag } from "../reference.js";
import type { ImageDestination, TransportOptions, TransportReference } from "./types.js";

export type { ImageDestination, ImageSource, RegistryLocation, TransportOptions, TransportReference } from "./types.js";

function splitPath(body: string, input: string, transport: string): [string, string | undefined] {
  const colon = body.indexOf(":");
  const path = colon < 0 ? body : body.slice(0, colon);
  const rest = colon < 0 ? undefined : body.slice(colon + 1);
  if (path.length === 0) throw new InvalidReferenceError(input, `${transport}: needs a path`, { hint: `write ${transport}:PATH` });
  return [path, rest === "" ? undefined : rest];
}

// skopeo transports we do not implement: named so that users get a clear error, not a parse of a host name.
const otherTransports = new Set(["containers-storage", "dir", "docker-daemon", "ostree", "sif", "tarball"]);

/** Parse a transport reference in skopeo's syntax; a bare image reference means `docker://`. */
export function parseTransportReference(input: string): TransportReference {
  if (input.startsWith("docker://")) {
    return { transport: "docker", reference: parseReferenceWithDefaultTag(input.slice("docker://".length)) };
  }
  const colon = input.indexOf(":");
  const prefix = colon < 0 ? "" : input.slice(0, colon);
  const body = input.slice(colon + 1);
  switch (prefix) {
    case "docker-archive": {
      const [path, rest] = splitPath(body, input, prefix);
      if (rest === undefined) return { transport: "docker-archive", path };
      if (rest.startsWith("@")) {
        const index = Number(rest.slice(1));
        if (!Number.isInteger(index) || index < 0 || rest.length === 1) {
          throw new InvalidReferenceError(input, `"${rest}" is not an image index`, { hint: "write @0, @1, …" });
        }
        return { transport: "docker-archive", path, index };
      }
      const name = parseReference(rest);
      if (name.digest !== undefined) {
        throw new InvalidReferenceError(input, "a docker-archive name cannot contain a digest", { hint: "use NAME:TAG" });
      }
      name.tag ??= "latest";
      return { transport: "docker-archive", path, name };
    }
    case "oci":
    case "oci-archive": {
      const [path, tag] = splitPath(body, input, prefix);
      if (tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(tag)) {
        throw new InvalidReferenceError(input, `"${tag}" is not a valid tag`, { hint: "use letters, digits, '_', '.', '-'" });
      }
      return tag === undefined ? { transport: prefix, path } : { transport: prefix, path, tag };
    }
    case "docker":
      throw new InvalidReferenceError(input, "docker transport references start with docker://");
    default:
      if (otherTransports.has(prefix)) {
        throw new InvalidReferenceError(input, `transport "${prefix}" is not supported`, {
          hint: "use docker://, docker-archive:, oci: or oci-archive:",
        });
      }
      return { transport: "docker", reference: parseReferenceWithDefaultTag(input) };
  }
}

/** What is at `path`: undefined when nothing is, or a file stands where a directory on the way should be. */
function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw error;
  }
}

/** An archive is written to a temp file beside its path, then renamed over it: a file, or nothing yet, in a directory. */
function checkArchivePath(path: string, what: string, transport: string): void {
  const found = statOf(path);
  if (found?.isDirectory()) {
    const layout = transport === "oci-archive" ? ", or write an OCI layout directory with oci:" : "";
    throw new UsageError(`${what}: ${path} is a directory, not an archive file`, {
      hint: `name a file, e.g. ${join(path, "image.tar")}${layout}`,
    });
  }
  if (found && !found.isFile()) {
    throw new UsageError(`${what}: ${path} is not a regular file`, { hint: "name a new file or a regular one to replace" });
  }
  const parent = dirname(resolve(path));
  const directory = statOf(parent);
  if (!directory) throw new UsageError(`${what}: directory ${parent} does not exist`, { hint: "create it first" });
  if (!directory.isDirectory()) throw new UsageError(`${what}: ${parent} is not a directory`);
}

/** An OCI layout is a directory: new, empty, or a layout already (its index is merged). */
function checkLayoutPath(path: string, what: string): void {
  const found = statOf(path);
  if (found && !found.isDirectory()) {
    throw new UsageError(`${what}: ${path} is not a directory`, { hint: "an OCI layout is a directory; for a tar file use oci-archive:" });
  }
  if (found) {
    const entries = readdirSync(path).filter((name) => !isWriterScratch(name));
    if (entries.length > 0 && !entries.includes("oci-layout")) {
      throw new UsageError(`${what}: ${path} is not empty and not an OCI layout`, {
        hint: "choose a new or empty directory, or an existing layout",
      });
    }
    return;
  }
  // Created with its missing parents: the nearest that exists must be a directory.
  let ancestor = dirname(resolve(path));
  while (!statOf(ancestor) && dirname(ancestor) !== ancestor) ancestor = dirname(ancestor);
  if (!statOf(ancestor)?.isDirectory()) throw new UsageError(`${what}: ${ancestor} is not a directory`);
}

/**
 * Check that a destination can be written where it points, before any work: an archive's path is a file
 * (or nothing yet) in a directory that exists, a layout's is a directory that is new, empty or a layout.
 * A wrong one is a usage error (exit 2); what only writing tells (permissions, space) fails when written.
 */
export function checkDestination(ref: TransportReference): void {
  if (ref.transport === "docker") return;
  const what = `${ref.transport}:${ref.path}`;
  if (ref.transport === "oci") {
    checkLayoutPath(ref.path, what);
    return;
  }
  if (ref.transport === "docker-archive" && ref.index !== undefined) {
    throw new UsageError(`${what}:@${ref.index}: @index selects an image to read, it cannot name one to write`, {
      hint: "write docker-archive:FILE or docker-archive:FILE:NAME:TAG",
    });
  }
  checkArchivePath(ref.path, what, ref.transport);
}

/**
 * Open a transport reference for reading. Transport modules load lazily, so startup stays fast. Docker
 * schema 1 manifests are read as the schema 2 images they convert to.
 */
export async function openSource(ref: TransportReference, options: TransportOptions = {}): Promise<ImageSource> {
  const [source, { convertingSchema1 }] = await Promise.all([openPlainSource(ref, options), import("./schema1-source.js")]);
  return convertingSchema1(source, options);
}

async function openPlainSource(ref: TransportReference, options: TransportOptions): Promise<ImageSource> {
  switch (ref.transport) {
    case "docker":
      return (await import("./registry.js")).openRegistrySource(ref.reference, options);
    case "docker-archive":
      return (await import("./docker-archive.js")).openDockerArchiveSource(ref, options);
    case "oci":
      return (await import("./oci-layout.js")).openOciLayoutSource(ref, options);
    case "oci-archive":
      return (await import("./oci-archive.js")).openOciArchiveSource(ref, options);
  }
}

/** Open a transport reference for writing (the CLI checks it first with checkDestination). */
export async function openDestination(ref: TransportReference, options: TransportOptions = {}): Promise<ImageDestination> {
  switch (ref.transport) {
    case "docker":
      return (await import("./registry.js")).openRegistryDestination(ref.reference, options);
    case "docker-archive":
      return (await import("./docker-archive.js")).openDockerArchiveDestination(ref, options);
    case "oci":
      return (await import("./oci-layout.js")).openOciLayoutDestination(ref, options);
    case "oci-archive":
      return (await import("./oci-archive.js")).openOciArchiveDestination(ref, options);
  }
}
