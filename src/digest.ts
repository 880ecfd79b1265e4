/** Content digests (`algorithm:encoded`), hashing and verifying pass-through streams. */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { DigestMismatchError, InvalidImageError, SizeMismatchError } from "./errors.js";

/** A content digest such as `sha256:4f…`; see image-spec descriptor.md#digests. */
export type Digest = `${string}:${string}`;

const encodedPattern: Record<string, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

/** A digest split into its parts. */
export interface ParsedDigest {
  algorithm: "sha256" | "sha512";
  encoded: string;
}

/** Parse and validate a digest string; throws InvalidImageError with `what` as context. */
export function parseDigest(value: string, what = "digest"): ParsedDigest {
  const colon = value.indexOf(":");
  const algorithm = value.slice(0, colon);
  const encoded = value.slice(colon + 1);
  const pattern = encodedPattern[algorithm];
  if (colon < 0 || !pattern || !pattern.test(encoded)) {
    throw new InvalidImageError(`${what}: "${value}" is not a valid sha256 or sha512 digest`);
  }
  return { algorithm: algorithm as ParsedDigest["algorithm"], encoded };
}

/** Whether the string is a digest we can verify. */
export function isDigest(value: string): value is Digest {
  const colon = value.indexOf(":");
  return encodedPattern[value.slice(0, colon)]?.test(value.slice(colon + 1)) ?? false;
}

/** The sha256 digest of bytes held in memory (manifests, configs). */
export function digestOf(bytes: Uint8Array | string): Digest {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** The first 12 hex characters of a digest, for messages. */
export function shortDigest(digest: string): string {
  const encoded = digest.slice(digest.indexOf(":") + 1);
  return `${digest.slice(0, digest.indexOf(":") + 1)}${encoded.slice(0, 12)}`;
}

/** A pass-through stream that hashes (sha256) and counts what flows through it. */
export class Digester extends Transform {
  #hash: Hash;
  #size = 0;
  #digest: Digest | undefined;

  constructor(algorithm: "sha256" | "sha512" = "sha256") {
    super({ highWaterMark: 1 << 20 });
    this.#hash = createHash(algorithm);
    this.algorithm = algorithm;
  }

  readonly algorithm: string;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    callback(null, chunk);
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.#size;
  }

  /** The digest; valid once the stream has ended. */
  get digest(): Digest {
    this.#digest ??= `${this.algorithm}:${this.#hash.digest("hex")}`;
    return this.#digest;
  }
}

/** Create a sha256 Digester. */
export function createDigester(): Digester {
  return new Digester();
}

/** The size of a descriptor whose size is not known (a Docker schema 1 layer): checked by digest alone. */
export const unknownSize = -1;

/**
 * A pass-through stream that fails, in flush() or as soon as the size is exceeded, when the bytes
 * do not match the expected digest and size (unless the size is unknownSize). `what` names the content in the error.
 */
export function createVerifier(expected: { digest: string; size?: number | undefined }, what: string): Transform {
  const { algorithm } = parseDigest(expected.digest, what);
  const hash = createHash(algorithm);
  const limit = expected.size === unknownSize ? undefined : expected.size;
  let size = 0;
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (limit !== undefined && size > limit) {
        callback(new SizeMismatchError(what, limit, size));
        return;
      }
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      if (limit !== undefined && size !== limit) {
        callback(new SizeMismatchError(what, limit, size));
        return;
      }
      const actual = `${algorithm}:${hash.digest("hex")}`;
      callback(actual === expected.digest ? null : new DigestMismatchError(what, expected.digest, actual));
    },
  });
}

/** Verify bytes held in memory against a digest (and size); throws on mismatch. */
export function verifyBytes(bytes: Uint8Array, expected: { digest: string; size?: number | undefined }, what: string): void {
  const { algorithm } = parseDigest(expected.digest, what);
  if (expected.size !== undefined && bytes.length !== expected.size) {
    throw new SizeMismatchError(what, expected.size, bytes.length);
  }
  const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
  if (actual !== expected.digest) throw new DigestMismatchError(what, expected.digest, actual);
}
