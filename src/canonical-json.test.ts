import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalJson, compareUtf8 } from "./canonical-json.js";

describe("canonical JSON", () => {
  it("sorts the keys of every object, at every depth, and keeps arrays in their order", () => {
    const value = { b: 1, a: { d: [{ z: 1, y: [3, 1, 2] }], c: null }, "": true };
    assert.equal(canonicalJson(value), '{"":true,"a":{"c":null,"d":[{"y":[3,1,2],"z":1}]},"b":1}');
  });

  it("gives the same text whatever order the keys were put in", () => {
    const labels = ["org.opencontainers.image.version", "a", "B", "org.example.team", "z-last"];
    const texts = new Set<string>();
    for (let shift = 0; shift < labels.length; shift++) {
      const order = [...labels.slice(shift), ...labels.slice(0, shift)].reverse();
      texts.add(canonicalJson({ config: { Labels: Object.fromEntries(order.map((key) => [key, key.length])) } }));
    }
    assert.equal(texts.size, 1);
  });

  it("orders keys by their UTF-8 bytes, as Go's encoding/json orders a map's keys", () => {
    // Integer-like keys, which a JavaScript object would list first in numeric order ("9" before "10"),
    // and a code point above U+FFFF, whose UTF-16 surrogates sort before U+FF61 but whose UTF-8 bytes do not.
    const keys = ["\u{1f600}", "\uff61", "é", "a", "B", "9", "10", "1/tcp"];
    const object = Object.fromEntries(keys.map((key) => [key, 0]));
    const written = Object.keys(JSON.parse(canonicalJson(object)) as object);
    // The order of the text itself (JSON.parse would list integer-like keys first again).
    const order = [...canonicalJson(object).matchAll(/"((?:[^"\\]|\\.)*)":/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
    assert.deepEqual(order, ["1/tcp", "10", "9", "B", "a", "é", "\uff61", "\u{1f600}"]);
    assert.deepEqual(new Set(written), new Set(keys));
    const bytewise = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual([...keys].sort(compareUtf8), bytewise);
  });

  it("writes values exactly as JSON.stringify does", () => {
    const samples: unknown[] = [
      "plain",
      'quote " backslash \\ newline \n tab \t nul \u0000 del \u007f',
      "ünïcödé \u2028 \u{1f600}",
      "lone \ud800 surrogate",
      0,
      -1.5,
      1e21,
      Number.MAX_SAFE_INTEGER,
      true,
      null,
      [],
      {},
      [1, "two", null, [3]],
      new Date(0),
    ];
    for (const sample of samples) assert.equal(canonicalJson(sample), JSON.stringify(sample), String(sample));
    assert.equal(canonicalJson(Number.NaN), "null");
  });

  it("leaves out what JSON.stringify leaves out", () => {
    assert.equal(canonicalJson({ b: undefined, a: 1, c: () => 1 }), '{"a":1}');
    assert.equal(canonicalJson({ only: undefined }), "{}");
    assert.equal(canonicalJson([undefined, () => 1]), "[null,null]");
    assert.equal(canonicalJson({ when: new Date(1000) }), '{"when":"1970-01-01T00:00:01.000Z"}');
    assert.throws(() => canonicalJson(undefined), TypeError);
    assert.throws(() => canonicalJson({ n: 1n }), TypeError);
  });

  it("reads back as the value it was made from", () => {
    const config = {
      architecture: "amd64",
      os: "linux",
      config: { Env: ["B=2", "A=1"], ExposedPorts: { "8080/tcp": {}, "53/udp": {} }, Labels: { b: "1", a: "2" } },
      rootfs: { type: "layers", diff_ids: [`sha256:${"1".repeat(64)}`] },
      container_config: { Hostname: "x", Cmd: ["/bin/sh", "-c", "#(nop) "] },
      "vendor.example/extension": { nested: { z: [1, { y: 2, x: 3 }] } },
    };
    assert.deepEqual(JSON.parse(canonicalJson(config)), config);
  });
});
