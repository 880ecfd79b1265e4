/** `ocify cache info|prune`: what the cache holds, and keeping it bounded. */

import {
  cacheInfo,
  defaultCacheDir,
  defaultCacheMaxSize,
  formatSize,
  parseDuration,
  parseSize,
  pruneCache,
  UsageError,
} from "../../index.js";
import { helpRequested, parseFlags } from "../flags.js";

export const help = `Usage: ocify cache info [--json] [--cache-dir DIR]
       ocify cache prune [--max-size SIZE] [--older-than DURATION] [--cache-dir DIR]

The cache ($OCIFY_CACHE_DIR, else $XDG_CACHE_HOME/ocify, else ~/.cache/ocify) keeps compressed layer
blocks, layer records, base blobs and notes of where layers were pushed. Anything in it can go: what is
missing is made again or fetched again by the next build.

  info                      what it holds, by kind, and how large it is
  prune                     remove entries, least recently used first:
    --max-size SIZE         until the cache holds at most SIZE (500M, 10G, 1.5GiB; 0 empties it)
    --older-than DURATION   those not used for DURATION (30m, 12h, 7d, 2w)
  --cache-dir DIR           another cache directory
  --json                    (info) a JSON summary for scripts

After each build the least recently used entries go until the cache fits OCIFY_CACHE_MAX_SIZE
(default ${formatSize(defaultCacheMaxSize)}; 'off' disables it), at most once an hour, keeping what the last hour used.`;

function ago(ms: number | undefined): string {
  if (ms === undefined) return "-";
  const minutes = Math.round((Date.now() - ms) / 60_000);
  if (minutes < 120) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.round(hours / 24)} days ago`;
}

/** Run the cache command. */
export async function run(argv: string[], _signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags(argv, {
    "max-size": { type: "string" },
    "older-than": { type: "string" },
    "cache-dir": { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (helpRequested(values, help)) return 0;
  const [action, ...extra] = positionals;
  if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`, { hint: "see ocify cache --help" });
  const dir = values["cache-dir"] ?? defaultCacheDir();
  if (action === "info") {
    const summary = await cacheInfo(dir);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      return 0;
    }
    const lines = [`Cache:   ${dir}`, `Size:    ${formatSize(summary.size)}`];
    for (const [kind, { count, size }] of Object.entries(summary.kinds))
      lines.push(`  ${`${kind}s:`.padEnd(11)}${count} (${formatSize(size)})`);
    lines.push(`Used:    oldest ${ago(summary.oldestUseMs)}, newest ${ago(summary.newestUseMs)}`);
    process.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  }
  if (action === "prune") {
    const maxSize = values["max-size"] === undefined ? undefined : parseSize(values["max-size"], "--max-size");
    const olderThanMs = values["older-than"] === undefined ? undefined : parseDuration(values["older-than"], "--older-than");
    if (maxSize === undefined && olderThanMs === undefined) {
      throw new UsageError("cache prune needs --max-size or --older-than", { hint: "e.g. ocify cache prune --max-size 5G" });
    }
    const result = await pruneCache(dir, { maxSize, olderThanMs });
    process.stdout.write(`removed ${result.removed} entries (${formatSize(result.freed)}); ${formatSize(result.size)} left in ${dir}\n`);
    return 0;
  }
  throw new UsageError(action === undefined ? "cache needs an action" : `unknown cache action "${action}"`, { hint: "use info or prune" });
}
