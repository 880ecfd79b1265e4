import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { typeInstructions } from "./instructions.js";
import { heredocMarkers, parseDockerfile, splitFlags } from "./parser.js";

describe("parseDockerfile", () => {
  it("reads parser directives only at the very top", () => {
    const parsed = parseDockerfile("# syntax=docker/dockerfile:1\n#  ESCAPE = `\nFROM a\n# escape=\\\n");
    assert.equal(parsed.directives.get("syntax"), "docker/dockerfile:1");
    assert.equal(parsed.escapeChar, "`");
    assert.equal(parsed.instructions.length, 1);
    // After a comment, an empty line or an unknown directive, a directive is a comment.
    assert.equal(parseDockerfile("# hello\n# escape=`\nFROM a\n").escapeChar, "\\");
    assert.equal(parseDockerfile("\n# escape=`\nFROM a\n").escapeChar, "\\");
    assert.equal(parseDockerfile("# unknown=1\n# escape=`\nFROM a\n").escapeChar, "\\");
  });

  it("refuses a directive given twice and a bad escapeChar character", () => {
    assert.throws(() => parseDockerfile("# escape=`\n# escape=`\nFROM a"), /Dockerfile:2: .*twice/);
    assert.throws(() => parseDockerfile("# escape=x\nFROM a"), /invalid escapeChar character "x"/);
  });

  it("joins continued lines, dropping comments and blank lines inside them", () => {
    const text = "FROM a\nENV A=1 \\\n# a comment\n\n    B=2 \\   \n  C=3\nLABEL x=y\n";
    const parsed = parseDockerfile(text);
    const env = parsed.instructions[1];
    assert.equal(env?.keyword, "ENV");
    assert.equal(env?.rest, "A=1     B=2   C=3");
    assert.equal(env?.line, 2);
    assert.equal(env?.endLine, 6);
    assert.equal(parsed.instructions[2]?.line, 7);
  });

  it("uses the escapeChar directive for continuations", () => {
    const parsed = parseDockerfile("# escape=`\nFROM a\nCOPY a `\n  C:\\dest\\\n");
    assert.equal(parsed.instructions[1]?.rest, "a   C:\\dest\\");
  });

  it("takes instruction names in any case and options before the arguments", () => {
    const parsed = parseDockerfile('from a AS b\ncopy --from=b --chown="1:2" --link src/ /dst/\n');
    const copy = parsed.instructions[1];
    assert.equal(copy?.keyword, "COPY");
    assert.deepEqual(copy?.flags, [
      { name: "from", value: "b" },
      { name: "chown", value: "1:2" },
      { name: "link", value: undefined },
    ]);
    assert.equal(copy?.rest, "src/ /dst/");
  });

  it("ends options at --", () => {
    assert.deepEqual(splitFlags("--a=1 -- --b x"), { flags: ["--a=1"], rest: "--b x" });
  });

  it("reads heredocs: several per instruction, <<- strips tabs, quoted names do not expand", () => {
    const text = 'FROM a\nCOPY <<one <<-"two" /dst/\nhello $X\none\n\tbye\n\ttwo\nCMD ["x"]\n';
    const parsed = parseDockerfile(text);
    const copy = parsed.instructions[1];
    assert.deepEqual(copy?.heredocs, [
      { name: "one", content: "hello $X\n", expand: true },
      { name: "two", content: "bye\n", expand: false },
    ]);
    assert.equal(copy?.endLine, 6);
    assert.equal(parsed.instructions[2]?.keyword, "CMD");
  });

  it("finds heredoc markers, not here-strings or redirections", () => {
    assert.deepEqual(
      heredocMarkers("<<EOF 2<<'X' <<<str a<b").map((m) => m.name),
      ["EOF", "X"],
    );
  });

  it("refuses a heredoc that is never closed, naming its line", () => {
    assert.throws(() => parseDockerfile("FROM a\nCOPY <<EOF /x\nbody\n"), /Dockerfile:2: the heredoc <<EOF is not closed/);
  });

  it("strips a byte-order mark and CRLF line ends", () => {
    const parsed = parseDockerfile("\uFEFFFROM a\r\nUSER b\r\n");
    assert.deepEqual(
      parsed.instructions.map((i) => [i.keyword, i.rest]),
      [
        ["FROM", "a"],
        ["USER", "b"],
      ],
    );
  });
});

describe("typeInstructions", () => {
  const type = (text: string) => typeInstructions(parseDockerfile(text));

  it("reads FROM with a stage name and --platform", () => {
    const [from] = type("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n");
    assert.deepEqual(from && { ...from, source: undefined }, {
      kind: "FROM",
      image: "golang:1.22",
      stageName: "build",
      platform: "$BUILDPLATFORM",
      source: undefined,
    });
    assert.throws(() => type("FROM a b\n"), /expected "FROM image \[AS name\]"/);
    assert.throws(() => type("FROM a AS 1x\n"), /not a valid stage name/);
  });

  it("reads ENV and LABEL in both forms, quotes kept for expansion", () => {
    const [, env, legacy, label] = type('FROM a\nENV A=1 B="two words" C=\nENV D  several words  here\nLABEL "k.a"="v 1" b=2\n');
    assert.deepEqual(env?.kind === "ENV" && env.pairs, [
      ["A", "1"],
      ["B", '"two words"'],
      ["C", ""],
    ]);
    assert.deepEqual(legacy?.kind === "ENV" && legacy.pairs, [["D", "several words  here"]]);
    assert.deepEqual(label?.kind === "LABEL" && label.pairs, [
      ['"k.a"', '"v 1"'],
      ["b", "2"],
    ]);
    assert.throws(() => type("FROM a\nENV A=1 B\n"), /"B" is not KEY=VALUE/);
    assert.throws(() => type("FROM a\nENV A\n"), /needs a value/);
  });

  it("reads exec and shell forms", () => {
    const [, cmd, entry, broken] = type('FROM a\nCMD ["a", "b c"]\nENTRYPOINT exec x "$Y"\nCMD [not json\n');
    assert.deepEqual(cmd?.kind === "CMD" && cmd.command, { exec: ["a", "b c"] });
    assert.deepEqual(entry?.kind === "ENTRYPOINT" && entry.command, { shell: 'exec x "$Y"' });
    assert.deepEqual(broken?.kind === "CMD" && broken.command, { shell: "[not json" });
  });

  it("reads COPY sources and destination, JSON form included", () => {
    const [, copy, json] = type('FROM a\nCOPY --chmod=755 a b* /dst/\nCOPY ["with space", "/d e/"]\n');
    assert.ok(copy?.kind === "COPY");
    assert.deepEqual([copy.sources, copy.dest, copy.chmod], [["a", "b*"], "/dst/", "755"]);
    assert.ok(json?.kind === "COPY");
    assert.deepEqual([json.sources, json.dest], [["with space"], "/d e/"]);
    assert.throws(() => type("FROM a\nCOPY only\n"), /needs at least one source and a destination/);
    assert.throws(() => type("FROM a\nCOPY --nope=1 a b\n"), /Dockerfile:2: COPY: unknown option --nope/);
    assert.throws(() => type("FROM a\nADD --from=x a b\n"), /ADD: unknown option --from/);
  });

  it("reads HEALTHCHECK with options, and NONE", () => {
    const [, check, none] = type('FROM a\nHEALTHCHECK --interval=5s --retries=3 CMD ["curl","-f","x"]\nHEALTHCHECK NONE\n');
    assert.ok(check?.kind === "HEALTHCHECK");
    assert.deepEqual(check.command, { exec: ["curl", "-f", "x"] });
    assert.deepEqual(check.options, { interval: "5s", retries: "3" });
    assert.ok(none?.kind === "HEALTHCHECK" && none.command === null);
    assert.throws(() => type("FROM a\nHEALTHCHECK curl x\n"), /expected HEALTHCHECK/);
  });

  it("checks ONBUILD triggers", () => {
    const [, onbuild] = type("FROM a\nONBUILD COPY . /app\n");
    assert.deepEqual(onbuild?.kind === "ONBUILD" && onbuild.trigger, "COPY . /app");
    assert.throws(() => type("FROM a\nONBUILD ONBUILD COPY . /\n"), /ONBUILD ONBUILD is not allowed/);
    assert.throws(() => type("FROM a\nONBUILD FROM b\n"), /FROM is not allowed as an ONBUILD trigger/);
    assert.throws(() => type("FROM a\nONBUILD NOPE x\n"), /unknown instruction NOPE/);
  });

  it("reads ARGs, several per line, with and without defaults", () => {
    const [arg] = type('ARG A B=2 C="x y"\n');
    assert.deepEqual(arg?.kind === "ARG" && arg.args, [
      { name: "A", value: undefined },
      { name: "B", value: "2" },
      { name: "C", value: '"x y"' },
    ]);
    assert.throws(() => type("ARG 1A\n"), /not a valid argument name/);
  });

  it("refuses unknown instructions with their line", () => {
    assert.throws(() => type("FROM a\n\nFOO bar\n"), /Dockerfile:3: unknown instruction FOO/);
  });
});
