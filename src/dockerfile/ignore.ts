/**
 * `.dockerignore`: which paths of the build context are left out, with docker's matching rules (not
 * gitignore's): patterns are cleaned paths relative to the context root, `*` and `?` stay within one path
 * element, `**` spans any number of them, `!` re-includes, the last matching pattern wins, and a pattern
 * that matches a directory matches everything under it.
 */

interface Pattern {
  exclusion: boolean;
  regex: RegExp;
  /** The cleaned pattern, without its `!`. */
  text: string;
}

/** Clean a path the way Go's path.Clean does: no `.`, no `..` past what can be resolved, no double slashes. */
export function cleanPath(path: string): string {
  const rooted = path.startsWith("/");
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
      else if (!rooted) parts.push("..");
      continue;
    }
    parts.push(part);
  }
  const joined = parts.join("/");
  return rooted ? `/${joined}` : joined || ".";
}

const regexSpecial = new Set([".", "+", "(", ")", "|", "{", "}", "$", "^"]);

/** Translate one cleaned pattern into an anchored regular expression. */
function compile(pattern: string): RegExp {
  let source = "^";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === "*") {
      if (pattern[i + 1] === "*") {
        i++;
        if (pattern[i + 1] === "/") i++; // `**/` is `**`
        // `**` at the end matches everything below; elsewhere any number of whole elements.
        source += i + 1 >= pattern.length ? ".*" : "(?:.*/)?";
      } else {
        source += "[^/]*";
      }
    } else if (ch === "?") {
      source += "[^/]";
    } else if (ch === "\\") {
      const next = pattern[i + 1];
      if (next === undefined) source += "\\\\";
      else {
        source += `\\${next}`;
        i++;
      }
    } else if (ch === "[" || ch === "]") {
      source += ch;
    } else {
      source += regexSpecial.has(ch) ? `\\${ch}` : ch;
    }
  }
  return new RegExp(`${source}$`, "s");
}

/** The patterns of a .dockerignore file: comments (`#` in column 1) and blank lines skipped, paths cleaned. */
export function parseIgnoreFile(text: string): string[] {
  const patterns: string[] = [];
  for (let line of text.replace(/^\uFEFF/, "").split(/\r?\n/)) {
    if (line.startsWith("#")) continue;
    line = line.trim();
    if (line === "") continue;
    const exclusion = line.startsWith("!");
    let pattern = exclusion ? line.slice(1).trim() : line;
    if (pattern !== "") {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith("/")) pattern = pattern.slice(1);
    }
    patterns.push(exclusion ? `!${pattern}` : pattern);
  }
  return patterns;
}

/** Decides, for a path relative to the context root, whether .dockerignore leaves it out. */
export class IgnoreMatcher {
  private readonly patterns: Pattern[];

  constructor(patterns: readonly string[]) {
    this.patterns = patterns
      .filter((p) => p !== "" && p !== "!")
      .map((p) => {
        const exclusion = p.startsWith("!");
        const text = exclusion ? p.slice(1) : p;
        return { exclusion, regex: compile(text), text };
      });
  }

  /** True when nothing is ignored at all. */
  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** Is `path` (relative, `/`-separated, no leading `./`) left out of the context? */
  ignores(path: string): boolean {
    const parents = path.split("/").slice(0, -1);
    let ignored = false;
    for (const pattern of this.patterns) {
      // A pattern can only change the answer: skip exclusions while not ignored, and inclusions while ignored.
      if (pattern.exclusion !== ignored) continue;
      let match = pattern.regex.test(path);
      for (let i = 1; !match && i <= parents.length; i++) match = pattern.regex.test(parents.slice(0, i).join("/"));
      if (match) ignored = !pattern.exclusion;
    }
    return ignored;
  }

  /**
   * Must an ignored directory still be walked, because an exception (`!pattern`) might re-include
   * something below it? As docker decides it: only when an exception's text starts with the directory's
   * path (`!dir/keep.txt`, `!dir/x*.txt`); an exception that starts with `**` does not reach into one.
   */
  mayIncludeUnder(dir: string): boolean {
    return this.patterns.some((p) => p.exclusion && `${p.text}/`.startsWith(`${dir}/`));
  }
}
