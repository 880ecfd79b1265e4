/** The Go encoding rules a converted schema 1 config depends on, case by case. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidImageError } from "../errors.js";
import { goCompact, goObject, goString, goTime, rawMembers } from "./go-json.js";

describe("Go's JSON encoding, as skopeo writes a converted config", () => {
  it("escapes strings HTML-safely, as json.Marshal does", () => {
    assert.equal(goString("a<b&c>d"), '"a\\u003cb\\u0026c\\u003ed"');
    assert.equal(goString('q"\\\n\r\t'), '"q\\"\\\\\\n\\r\\t"');
    assert.equal(goString("\u0001\u2028\u2029é😀"), '"\\u0001\\u2028\\u2029é😀"');
    assert.equal(goString("x\ud800y"), '"x\ufffdy"', "a lone surrogate is read by Go as U+FFFD");
  });

  it("compacts embedded JSON without touching the inside of strings but for HTML characters", () => {
    assert.equal(goCompact('{ "a" : [ 1 , "x  y" ] ,\n "b":"<\\" >" }'), '{"a":[1,"x  y"],"b":"\\u003c\\" \\u003e"}');
    assert.equal(goCompact('"\\u003c"'), '"\\u003c"', "an escape already there is kept");
  });

  it("splits an object into raw members, the last of a repeated key winning", () => {
    const members = rawMembers('{"a:}":{"x":[1,{"y":"}"}]}, "b" : "v\\"," , "a:}": 2.50 }');
    assert.deepEqual(
      [...members.entries()],
      [
        ["a:}", "2.50"],
        ["b", '"v\\","'],
      ],
    );
  });

  it("sorts keys by their UTF-8 bytes, as Go sorts a map's keys", () => {
    const members = new Map([
      ["b", "1"],
      ["😀", "2"],
      ["\uffff", "3"],
      ["Z", "4"],
      ["a<", '{ "k" : "v" }'],
    ]);
    assert.equal(goObject(members), '{"Z":4,"a\\u003c":{"k":"v"},"b":1,"\uffff":3,"😀":2}');
  });

  it("writes times as Go's RFC3339Nano, and an absent time as Go's zero time", () => {
    assert.equal(goTime("2017-01-02T03:04:05.100Z", "t"), "2017-01-02T03:04:05.1Z");
    assert.equal(goTime("2017-01-02T03:04:05.000000000Z", "t"), "2017-01-02T03:04:05Z");
    assert.equal(goTime("2017-01-02T03:04:05.1234567891Z", "t"), "2017-01-02T03:04:05.123456789Z");
    assert.equal(goTime("2017-01-02T03:04:05+00:00", "t"), "2017-01-02T03:04:05Z");
    assert.equal(goTime("2017-01-02T03:04:05.5-07:30", "t"), "2017-01-02T03:04:05.5-07:30");
    assert.equal(goTime(undefined, "t"), "0001-01-01T00:00:00Z");
    assert.throws(() => goTime("yesterday", "created"), InvalidImageError);
    assert.throws(() => goTime(5, "created"), InvalidImageError);
  });
});
