/**
 * Docker schema 1 fixtures for tests: a generated image (layers, history) written as a schema 1 manifest,
 * signed the way libtrust signs (a JWS whose protected header carries formatLength and formatTail, ES256
 * with the public key as a JWK), and pushed to a real registry that has schema 1 enabled.
 */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { gnuTar } from "./base-image.js";

const sha256 = (bytes: Uint8Array | string): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
const base64url = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString("base64url");

/** A layer of a fixture: its gzip blob and the digest of its tar. */
export interface FixtureLayer {
  blob: Buffer;
  digest: string;
  diffID: string;
}

/** A gzip layer of the given files (name → content), made with GNU tar. */
export function fixtureLayer(files: Record<string, string>): FixtureLayer {
  const dir = mkdtempSync(join(tmpdir(), "ocify-s1-layer-"));
  try {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
    const tar = gnuTar(dir);
    const blob = gzipSync(tar);
    return { blob, digest: sha256(blob), diffID: sha256(tar) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The layer Docker pushed for a history entry that changed no file: a gzip of an empty tar (two zero blocks). */
export function emptyLayer(): FixtureLayer {
  const tar = Buffer.alloc(1024);
  const blob = gzipSync(tar);
  return { blob, digest: sha256(blob), diffID: sha256(tar) };
}

/** One history entry of a schema 1 image, newest first as the manifest lists them. */
export interface Schema1Entry {
  layer: FixtureLayer;
  /** The v1Compatibility object (id and parent are filled in). */
  v1: Record<string, unknown>;
}

/**
 * The unsigned schema 1 manifest (the JWS payload): `entries` newest first, ids chained by parent, the
 * JSON indented with three spaces as Docker wrote it.
 */
export function schema1Payload(name: string, tag: string, entries: readonly Schema1Entry[], ids: readonly string[]): Buffer {
  const manifest = {
    schemaVersion: 1,
    name,
    tag,
    architecture: "amd64",
    fsLayers: entries.map((e) => ({ blobSum: e.layer.digest })),
    history: entries.map((e, i) => {
      const parent = ids.slice(i + 1).find((id) => id !== ids[i]);
      return { v1Compatibility: JSON.stringify({ id: ids[i], ...(parent ? { parent } : {}), ...e.v1 }) };
    }),
  };
  return Buffer.from(JSON.stringify(manifest, null, 3));
}

/** The libtrust key ID of a public key: sha256 of its DER, 240 bits in base32, groups of four. */
function keyID(key: KeyObject): string {
  const hash = createHash("sha256")
    .update(key.export({ type: "spki", format: "der" }))
    .digest()
    .subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of hash) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(":");
}

/** A fresh P-256 key pair for signing. */
export function signingKey(): KeyObject {
  return generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
}

/**
 * Sign a payload as libtrust does (ES256 with an EC P-256 key, RS256 with an RSA key): the protected header records where the payload's closing brace starts
 * (formatLength) and what follows it (formatTail), so that the signatures can be spliced in before it.
 */
export function signSchema1(payload: Buffer, key: KeyObject = signingKey()): Buffer {
  const text = payload.toString("utf8");
  const close = text.trimEnd().length - 1;
  const formatLength = Buffer.byteLength(text.slice(0, close).trimEnd());
  const tail = payload.subarray(formatLength);
  const protectedHeader = base64url(JSON.stringify({ formatLength, formatTail: base64url(tail), time: "2017-01-01T00:00:00Z" }));
  const rsa = key.asymmetricKeyType === "rsa";
  const signed = Buffer.from(`${protectedHeader}.${base64url(payload)}`);
  const signature = rsa ? sign("sha256", signed, key) : sign("sha256", signed, { key, dsaEncoding: "ieee-p1363" });
  const publicKey = createPublicKey(key);
  const { kty, crv, x, y, n, e } = publicKey.export({ format: "jwk" });
  const jwk = rsa ? { e, kid: keyID(publicKey), kty, n } : { crv, kid: keyID(publicKey), kty, x, y };
  const signatures = [{ header: { jwk, alg: rsa ? "RS256" : "ES256" }, signature: base64url(signature), protected: protectedHeader }];
  const block = JSON.stringify(signatures, null, 3).replace(/\n/g, "\n   ");
  return Buffer.concat([payload.subarray(0, formatLength), Buffer.from(`,\n   "signatures": ${block}\n}`)]);
}

/** sha256 of a manifest's canonical bytes (the JWS payload of a signed one). */
export const payloadDigest = (payload: Buffer): string => sha256(payload);

/** A generated schema 1 image: its layers, its payload and the payload's digest (the manifest digest). */
export interface Schema1Fixture {
  layers: FixtureLayer[];
  payload: Buffer;
  digest: string;
}

/**
 * A schema 1 image of the shapes old Docker pushed: a base layer; two entries with no file changes that
 * still have (the same, empty) layer, as before Docker 1.10; a layer repeated under the same ID (which
 * readers drop); and a `throwaway` CMD entry on top, whose config holds characters Go escapes.
 */
export function schema1Fixture(name: string, tag: string): Schema1Fixture {
  const base = fixtureLayer({ "base.txt": "the base\n" });
  const run = fixtureLayer({ "run.txt": "made by RUN\n" });
  const empty = emptyLayer();
  const cmd = (text: string) => ({ Cmd: ["/bin/sh", "-c", text] });
  const top = {
    created: "2017-01-02T03:04:05.100Z",
    author: "ocify <test@example.com>",
    container_config: cmd('#(nop) CMD ["/bin/sh"]'),
    config: { Env: ["PATH=/bin"], Cmd: ["/bin/sh"], Labels: { "a<b": "x&y" } },
    architecture: "amd64",
    os: "linux",
    docker_version: "1.13.1",
    throwaway: true,
    Size: 0,
  };
  const entries: Schema1Entry[] = [
    { layer: empty, v1: top },
    { layer: run, v1: { created: "2017-01-02T03:04:04Z", container_config: cmd("echo made > /run.txt") } },
    { layer: run, v1: { created: "2017-01-02T03:04:04Z", container_config: cmd("echo made > /run.txt") } },
    { layer: empty, v1: { created: "2017-01-02T03:04:03+02:00", container_config: cmd("#(nop) ENV X=1") } },
    { layer: empty, v1: { created: "2017-01-02T03:04:02.000000000Z", comment: "old style", container_config: cmd("#(nop) ENV Y=2") } },
    { layer: base, v1: { created: "2017-01-02T03:04:01Z", container_config: cmd("#(nop) ADD file:base in /") } },
  ];
  const ids = ["6", "5", "5", "3", "2", "1"].map((c) => c.repeat(64));
  const payload = schema1Payload(name, tag, entries, ids);
  return { layers: [base, run, empty], payload, digest: payloadDigest(payload) };
}
