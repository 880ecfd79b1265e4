import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { expandWord, expandWords } from "./shell-word.js";

const vars = new Map([
  ["HOME_DIR", "/home"],
  ["SH", "bash"],
  ["EMPTY", ""],
  ["PORTS", "80 443/udp"],
]);

describe("expandWord", () => {
  // [input, expected]; `undefined` means the word is refused.
  const cases: [string, string | undefined][] = [
    ["plain", "plain"],
    ["pl'ai'n", "plain"],
    ["pl'ain", undefined],
    ["it\\'s", "it's"],
    ["a\\\\'b", undefined],
    ["tab\\tx", "tabtx"],
    ['"tab\\tx"', "tab\\tx"],
    ['"tab\\\\tx"', "tab\\tx"],
    ["'tab\\tx'", "tab\\tx"],
    ["end\\", "end"],
    ["end\\\\", "end\\"],
    ['"open', undefined],
    ['"esc\\"', undefined],
    ['"one\'two"', "one'two"],
    ["'single\\'", "single\\"],
    ["\"''\"", "''"],
    ["$.", "$."],
    ["x$", "x$"],
    ["a$1b", "ab"],
    ["a$.b", "a$.b"],
    ["at$HOME_DIR", "at/home"],
    ["at\\$HOME_DIR", "at$HOME_DIR"],
    ["at\\\\$HOME_DIR", "at\\/home"],
    ['"at\\$HOME_DIR"', "at$HOME_DIR"],
    ['"at\\\\$HOME_DIR"', "at\\/home"],
    ["\\${}", "${}"],
    ["x${}", undefined],
    ["x${.}", undefined],
    ["x${UNSET}y", "xy"],
    ["x${HOME_DIR}y", "x/homey"],
    ["x${UNSET:-def}y", "xdefy"],
    ["x${HOME_DIR:-def}y", "x/homey"],
    ["x${UNSET:-$HOME_DIR}y", "x/homey"],
    ["x${UNSET:-${ALSO:-deep}}y", "xdeepy"],
    ["x${EMPTY:-def}y", "xdefy"],
    ["x${EMPTY-def}y", "xy"],
    ["x${UNSET-def}y", "xdefy"],
    ["x${UNSET:+alt}y", "xy"],
    ["x${HOME_DIR:+alt}y", "xalty"],
    ["x${EMPTY:+alt}y", "xy"],
    ["x${EMPTY+alt}y", "xalty"],
    ["x${HOME_DIR:+${SH}}y", "xbashy"],
    ["x${HOME_DIR+${HOME_DIR}:}y", "x/home:y"],
    ["x${UNSET:-\\$HOME_DIR:}y", "x$HOME_DIR:y"],
    ["x${UNSET:-\\${HOME_DIR}z}y", "x${HOME_DIRz}y"],
    ["x${UNSET?}", undefined],
    ["x${EMPTY:?}", undefined],
    ["x${EMPTY?}", "x"],
    ["x${HOME_DIR:?}", "x/home"],
    ["x${HOME_DIR=def}", undefined],
    ["x${HOME_DIR", undefined],
    ["x${UNSET:bad}", undefined],
    ["'x${HOME_DIR}'", "x${HOME_DIR}"],
    ['"x${HOME_DIR}"', "x/home"],
    ["\"x'$HOME_DIR'\"", "x'/home'"],
    ["'\\$HOME_DIR'", "\\$HOME_DIR"],
    ["'\"q\"'", '"q"'],
    ["안'녕'하세요$SH", "안녕하세요bash"],
    ["a b  c", "a b  c"],
  ];
  for (const [input, expected] of cases) {
    it(`${input} → ${expected ?? "refused"}`, () => {
      if (expected === undefined) assert.throws(() => expandWord(input, vars), /ocify|in "|:/);
      else assert.equal(expandWord(input, vars), expected);
    });
  }

  it("uses the escapeChar character the Dockerfile chose", () => {
    assert.equal(expandWord("C:\\dir\\`$SH", vars, "`"), "C:\\dir\\$SH");
    assert.equal(expandWord('"a`"b"', vars, "`"), 'a"b');
  });
});

describe("expandWords", () => {
  it("splits on whitespace outside quotes, including whitespace a variable brings", () => {
    assert.deepEqual(expandWords("8080 $PORTS", vars), ["8080", "80", "443/udp"]);
    assert.deepEqual(expandWords('"$PORTS" x', vars), ["80 443/udp", "x"]);
    assert.deepEqual(expandWords("a\\ b c", vars), ["a b", "c"]);
  });

  it("keeps an empty quoted word and drops empty expansions", () => {
    assert.deepEqual(expandWords("'' $UNSET x", vars), ["", "x"]);
  });
});
