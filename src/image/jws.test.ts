/** libtrust's pretty JWS: the payload cut back out of the signed bytes, and signatures checked with EC and RSA keys. */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { InvalidImageError } from "../errors.js";
import { signingKey, signSchema1 } from "../test-support/schema1.js";
import { parsePrettyJws, verifyPrettyJws } from "./jws.js";

const payload = Buffer.from(JSON.stringify({ schemaVersion: 1, name: "a/b", tag: "1", fsLayers: [], history: [] }, null, 3));

describe("pretty JWS (Docker schema 1 signatures)", () => {
  it("cuts out the payload and verifies ES256 and RS256 signatures", () => {
    for (const key of [signingKey(), generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey]) {
      const signed = signSchema1(payload, key);
      const jws = parsePrettyJws(signed, "manifest");
      assert.ok(jws);
      assert.ok(jws.payload.equals(payload));
      verifyPrettyJws(jws, "manifest");
      const changed = Buffer.from(signed.toString().replace('"a/b"', '"a/c"'));
      const tampered = parsePrettyJws(changed, "manifest");
      assert.throws(() => verifyPrettyJws(tampered as NonNullable<typeof tampered>, "manifest"), /signature does not match its content/);
    }
  });

  it("treats a manifest without signatures as unsigned, and refuses malformed ones", () => {
    assert.equal(parsePrettyJws(payload, "manifest"), undefined);
    const signed = JSON.parse(signSchema1(payload).toString()) as { signatures: { protected: string; header: { alg: string } }[] };
    const withSignatures = (signatures: unknown) => Buffer.from(JSON.stringify({ ...signed, signatures }));
    assert.throws(() => parsePrettyJws(withSignatures([]), "m"), InvalidImageError);
    const first = signed.signatures[0] as { protected: string; header: { alg: string } };
    const other = { ...first, protected: Buffer.from(JSON.stringify({ formatLength: 3, formatTail: "fQ" })).toString("base64url") };
    assert.throws(() => parsePrettyJws(withSignatures([first, other]), "m"), /different payloads/);
    const noShape = { ...first, protected: Buffer.from("{}").toString("base64url") };
    assert.throws(() => parsePrettyJws(withSignatures([noShape]), "m"), /no formatLength and formatTail/);
    const none = { ...first, header: { ...first.header, alg: "none" } };
    const parsed = parsePrettyJws(withSignatures([none]), "m");
    assert.throws(() => verifyPrettyJws(parsed as NonNullable<typeof parsed>, "m"), /algorithm "none"/);
  });
});
