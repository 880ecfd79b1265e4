/**
 * Transports: where images are read from and written to. References use skopeo's syntax:
 * `docker://REF` (or a bare reference), `oci:DIR[:tag]`, `oci-archive:FILE[:tag]`,
 * `docker-archive:FILE[:name:tag | :@index]`.
 */
import { InvalidReferenceError } from "../errors.js";
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

/** Open a transport reference for reading. Transport modules load lazily, so startup stays fast. */
export async function openSource(ref: TransportReference, options: TransportOptions = {}): Promise<ImageSource> {
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

/** Open a transport reference for writing. */
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
