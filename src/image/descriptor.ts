/** Descriptors and platforms (image-spec descriptor.md, image-index.md). */

import type { Digest } from "../digest.js";
import { PlatformNotFoundError } from "../errors.js";

/** A platform an image runs on. */
export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  features?: string[];
}

/** A reference to content by media type, digest and size. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

const archAliases: Record<string, string> = { x64: "amd64", x86_64: "amd64", aarch64: "arm64", ia32: "386", i386: "386" };

/** The platform this process runs on, in Go's naming (`linux/amd64`). */
export function hostPlatform(): Platform {
  const architecture = archAliases[process.arch] ?? process.arch;
  const platform: Platform = { os: "linux", architecture };
  if (architecture === "arm64") platform.variant = "v8";
  if (architecture === "arm") platform.variant = `v${(process.config.variables as { arm_version?: string }).arm_version ?? "7"}`;
  return platform;
}

/** Parse `os/arch[/variant]`; throws PlatformNotFoundError-free usage errors through the caller. */
export function parsePlatform(text: string): Platform {
  const parts = text.split("/");
  const [os, architecture, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || !os || !architecture || (parts.length === 3 && !variant)) {
    throw new PlatformNotFoundError(`invalid platform "${text}"`, { hint: "write OS/ARCH[/VARIANT], e.g. linux/arm64" });
  }
  const platform: Platform = { os, architecture: archAliases[architecture] ?? architecture };
  if (variant) platform.variant = variant;
  return platform;
}

/** `os/arch[/variant]` for messages. */
export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

// A platform that names no variant means the usual one, as containerd reads it: v8 for arm64, v7 for arm.
function normalizedVariant(platform: Platform): string | undefined {
  if (platform.architecture === "arm64" && (platform.variant === undefined || platform.variant === "v8")) return "v8";
  if (platform.architecture === "arm" && platform.variant === undefined) return "v7";
  return platform.variant;
}

/** Whether `candidate` satisfies `wanted` (variant compared only when wanted names one; arm64 v8 and arm v7 are the defaults). */
export function platformMatches(candidate: Platform | undefined, wanted: Platform): boolean {
  if (!candidate || candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  if (wanted.variant === undefined) return true;
  return normalizedVariant(candidate) === normalizedVariant(wanted);
}

/** Pick the manifest for a platform from an index's descriptors; throws PlatformNotFoundError listing what exists. */
export function selectPlatform(manifests: readonly Descriptor[], wanted: Platform, what: string): Descriptor {
  const candidates = manifests.filter((d) => platformMatches(d.platform, wanted));
  // Prefer an exact variant match, then the first listed (as containerd and skopeo do).
  const exact = candidates.find((d) => d.platform?.variant === wanted.variant);
  const chosen = exact ?? candidates[0];
  if (chosen) return chosen;
  const available = manifests
    .map((d) => (d.platform ? formatPlatform(d.platform) : undefined))
    .filter((p): p is string => p !== undefined && p !== "unknown/unknown");
  throw new PlatformNotFoundError(`${what} has no image for ${formatPlatform(wanted)}`, {
    hint: available.length ? `available: ${available.join(", ")}; choose one with \`platform\`` : "choose another image",
  });
}
