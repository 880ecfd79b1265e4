/**
 * Non-distributable layers (Docker's "foreign" layers: Windows base images, some vendor images) carry
 * `urls` where their content lives; registries and OCI layouts keep only their descriptors (image-spec
 * layer.md, "Non-Distributable Layers"). Only a destination that must hold every blob (a docker-archive,
 * for `docker load`) needs the content, and then it is downloaded from those URLs only when the user allows
 * it, without credentials, with TLS verified (plain HTTP only for loopback and --insecure-registry hosts),
 * and verified against the descriptor while it streams.
 */
import { pipeline as pipelineCallback, type Readable } from "node:stream";
import { createVerifier, shortDigest } from "./digest.js";
import { InputError, OcifyError } from "./errors.js";
import type { Descriptor } from "./image/descriptor.js";

/** What fetching a non-distributable layer needs to know. */
export interface ForeignLayerOptions {
  /** The user allowed downloading such layers from their URLs (`--fetch-foreign-layers`). */
  fetchForeignLayers?: boolean | undefined;
  /** Hosts that may be reached over plain HTTP or with unverified TLS. */
  insecureRegistries?: readonly string[] | undefined;
  userAgent?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** The option that allows downloading non-distributable layers (the CLI's --fetch-foreign-layers). */
export const fetchForeignLayersFlag = "`fetchForeignLayers`";

/**
 * Check that a non-distributable layer `destination` needs can be fetched: it names URLs and the user
 * allowed it. Throws a one-line InputError otherwise, before anything is written.
 */
export function checkForeignLayer(descriptor: Descriptor, destination: string, options: ForeignLayerOptions): void {
  const layer = `non-distributable layer ${shortDigest(descriptor.digest)}`;
  const first = descriptor.urls?.[0];
  if (first === undefined) {
    throw new InputError(`${destination} needs the content of ${layer}, which names no URL to fetch it from`, {
      hint: "write to a registry or an oci: layout, which keep such layers as descriptors",
    });
  }
  if (!options.fetchForeignLayers) {
    throw new InputError(`${destination} needs the content of ${layer}, which is not in the image but at ${redact(first)}`, {
      hint: `add ${fetchForeignLayersFlag} to download it from there, or write to a registry or an oci: layout, which keep its URLs`,
    });
  }
}

function redact(text: string): string {
  try {
    const url = new URL(text);
    return `${url.origin}${url.pathname}${url.search ? "?…" : ""}`;
  } catch {
    return JSON.stringify(text);
  }
}

/** Why a URL may not be fetched, or undefined when it may. */
async function refusal(url: URL, options: ForeignLayerOptions): Promise<string | undefined> {
  if (url.protocol !== "https:" && url.protocol !== "http:") return "not an http(s) URL";
  const { allowUnverifiedTls, transportPolicy } = await import("./registry/http.js");
  const policy = transportPolicy(url.host, options.insecureRegistries);
  if (url.protocol === "http:" && !policy.schemes.includes("http")) {
    return `plain HTTP is used only for loopback hosts and --insecure-registry ${url.host}`;
  }
  if (url.protocol === "https:" && !policy.verifyTls) allowUnverifiedTls(url.origin);
  return undefined;
}

/**
 * The content of a non-distributable layer, from the first of its URLs that serves it, verified against
 * the descriptor's digest and size while it streams. No credentials are sent.
 */
export async function openForeignLayer(descriptor: Descriptor, options: ForeignLayerOptions): Promise<Readable> {
  const what = `non-distributable layer ${shortDigest(descriptor.digest)}`;
  const { httpRequest } = await import("./registry/http.js");
  const failures: string[] = [];
  for (const text of descriptor.urls ?? []) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      failures.push(`${redact(text)}: not a URL`);
      continue;
    }
    const refused = await refusal(url, options);
    if (refused) {
      failures.push(`${redact(text)}: ${refused}`);
      continue;
    }
    try {
      const { signal, userAgent } = options;
      const response = await httpRequest({ method: "GET", url, registry: url.host, followRedirects: true, signal, userAgent });
      if (response.status !== 200) {
        response.body.resume();
        failures.push(`${redact(text)}: HTTP ${response.status}`);
        continue;
      }
      return pipelineCallback(response.body, createVerifier(descriptor, `${what} from ${redact(text)}`), () => {}) as unknown as Readable;
    } catch (error) {
      if (options.signal?.aborted) throw error;
      failures.push(`${redact(text)}: ${error instanceof OcifyError ? error.message : String(error)}`);
    }
  }
  throw new InputError(`cannot fetch ${what}: ${failures.join("; ") || "it names no URL"}`, {
    hint: "check the URLs in the image's manifest",
  });
}
