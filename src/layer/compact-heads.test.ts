import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeHeader, recordSize, rewriteUstarSize } from "../tar/header.js";
import { compactInto, compactLength, expandInto } from "./compact-heads.js";
import { random } from "./fixtures.test.js";

function roundTrip(header: Uint8Array): number {
  const compacted = new Uint8Array(compactLength(header) + 8).fill(0xee);
  const end = compactInto(header, compacted, 3);
  assert.equal(end - 3, compactLength(header), "compactLength says what compactInto writes");
  const expanded = new Uint8Array(header.length + 2).fill(0xee);
  assert.equal(expandInto(compacted, 3, end, expanded, 1), header.length);
  assert.ok(Buffer.from(expanded.subarray(1, 1 + header.length)).equals(header), "the same bytes");
  assert.deepEqual([expanded[0], expanded[header.length + 1]], [0xee, 0xee], "nothing written outside");
  return end - 3;
}

describe("compacted tar headers", () => {
  it("give back every header exactly, a plain one in about a quarter of its bytes", () => {
    const plain = encodeHeader({
      name: Buffer.from("usr/lib/libexample.so.1"),
      type: "file",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 1234,
      mtime: 0,
    });
    assert.ok(roundTrip(plain) < recordSize / 3, `${roundTrip(plain)} bytes`);
    const withPax = encodeHeader({
      name: Buffer.from("ünïcode/".repeat(30)),
      type: "file",
      mode: 0o4755,
      uid: 1 << 22,
      gid: 5,
      size: 2 ** 34,
      mtime: 1_700_000_000,
      pax: [
        ["SCHILY.xattr.user.blob", Buffer.alloc(70_000, 0)],
        ["SCHILY.xattr.user.text", Buffer.alloc(70_000, 0x61)],
      ],
    });
    roundTrip(withPax); // runs of more than 65,535 zeros and literal bytes
    const next = random(5);
    for (let n = 0; n < 200; n++) {
      const noise = new Uint8Array(recordSize * (1 + (n % 3)));
      for (let i = 0; i < noise.length; i++) noise[i] = next() < 0.4 ? 0 : Math.floor(next() * 256);
      roundTrip(noise);
    }
    roundTrip(new Uint8Array(recordSize));
  });

  it("keep their length when a ustar header's size is rewritten, so it is patched in place", () => {
    const header = encodeHeader({ name: Buffer.from("app/data.bin"), type: "file", mode: 0o600, uid: 7, gid: 8, size: 1, mtime: 0 });
    const length = compactLength(header);
    for (const size of [0, 7, 8 ** 5, 8 ** 11 - 1]) {
      assert.ok(rewriteUstarSize(header, 0, size));
      assert.equal(compactLength(header), length, `size ${size}`);
    }
  });
});
