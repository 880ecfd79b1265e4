/**
 * Where the layers ocify built were pushed: `<cacheDir>/locations/<hex>.json` lists the registry
 * repositories that received a blob. Pushing the same layer to another repository of the same registry
 * then mounts it (one request) instead of uploading it again. A location is only a hint: a mount the
 * registry refuses falls back to an upload.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type Digest, parseDigest } from "./digest.js";
import { writeFileAtomic } from "./fs-atomic.js";
import type { RegistryLocation } from "./image/source.js";

/** Repositories kept per blob, newest first. */
const keep = 8;

function pathOf(cacheDir: string, digest: Digest): string {
  const { algorithm, encoded } = parseDigest(digest);
  return join(cacheDir, "locations", `${algorithm}-${encoded}.json`);
}

/** The repositories a blob was pushed to, newest first (none when unknown or unreadable). */
export function knownLocations(cacheDir: string, digest: Digest): RegistryLocation[] {
  try {
    const list = JSON.parse(readFileSync(pathOf(cacheDir, digest), "utf8")) as unknown;
    if (!Array.isArray(list)) return [];
    return list.filter((l): l is RegistryLocation => typeof l?.registry === "string" && typeof l?.repository === "string");
  } catch {
    return [];
  }
}

/** Remember that a blob now lives in a repository (failing to is harmless). */
export async function rememberLocation(cacheDir: string, digest: Digest, location: RegistryLocation): Promise<void> {
  const same = (l: RegistryLocation): boolean => l.registry === location.registry && l.repository === location.repository;
  const list = [location, ...knownLocations(cacheDir, digest).filter((l) => !same(l))].slice(0, keep);
  await writeFileAtomic(pathOf(cacheDir, digest), JSON.stringify(list)).catch(() => {});
}
