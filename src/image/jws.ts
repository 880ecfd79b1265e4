/**
 * libtrust's "pretty" JSON Web Signatures, as Docker schema 1 manifests carry them (distribution
 * manifest-v2-1.md, "Signed Manifests"): the signed JSON with a `signatures` member spliced in before its
 * closing brace. Each signature's protected header records the payload's shape, `formatLength` (the bytes
 * kept from the start) and `formatTail` (base64url of what followed them), so the payload, the bytes that
 * were signed and that the manifest digest is over, is cut back out of the served bytes.
 */
import { createPublicKey, type JsonWebKey, type KeyObject, verify, X509Certificate } from "node:crypto";
import { InvalidImageError } from "../errors.js";

/** One signature of a pretty JWS. */
export interface PrettySignature {
  /** The protected header as sent (base64url). */
  protected: string;
  /** The signature (base64url). */
  signature: string;
  alg: string;
  jwk?: JsonWebKey;
  x5c?: string[];
}

/** A pretty JWS taken apart: the payload and the signatures over it. */
export interface PrettyJws {
  payload: Buffer;
  signatures: PrettySignature[];
}

function decodeHeader(encoded: unknown, what: string): { formatLength: number; formatTail: Buffer } {
  let header: { formatLength?: unknown; formatTail?: unknown };
  try {
    header = JSON.parse(Buffer.from(String(encoded), "base64url").toString("utf8")) as typeof header;
  } catch (error) {
    throw new InvalidImageError(`${what}: a signature's protected header is not base64url JSON`, { cause: error });
  }
  const { formatLength, formatTail } = header;
  if (typeof formatLength !== "number" || !Number.isSafeInteger(formatLength) || formatLength < 0 || typeof formatTail !== "string") {
    throw new InvalidImageError(`${what}: a signature's protected header has no formatLength and formatTail`, {
      hint: "the manifest was not signed by libtrust (Docker's signing library)",
    });
  }
  return { formatLength, formatTail: Buffer.from(formatTail, "base64url") };
}

/**
 * Take a pretty JWS apart; undefined when the JSON has no `signatures` member (an unsigned manifest,
 * whose payload is the bytes themselves). Throws InvalidImageError when the signatures disagree on the payload.
 */
export function parsePrettyJws(bytes: Buffer, what: string): PrettyJws | undefined {
  let json: { signatures?: unknown };
  try {
    json = JSON.parse(bytes.toString("utf8")) as typeof json;
  } catch (error) {
    throw new InvalidImageError(`${what} is not valid JSON`, { cause: error });
  }
  if (typeof json !== "object" || json === null || !("signatures" in json)) return undefined;
  const blocks = json.signatures;
  if (!Array.isArray(blocks) || blocks.length === 0) throw new InvalidImageError(`${what}: "signatures" lists no signature`);
  let shape: { formatLength: number; formatTail: Buffer } | undefined;
  const signatures: PrettySignature[] = [];
  for (const block of blocks as { protected?: unknown; signature?: unknown; header?: { alg?: unknown; jwk?: unknown; x5c?: unknown } }[]) {
    const header = decodeHeader(block?.protected, what);
    if (shape && (shape.formatLength !== header.formatLength || !shape.formatTail.equals(header.formatTail))) {
      throw new InvalidImageError(`${what}: its signatures were made over different payloads`);
    }
    shape = header;
    const signature: PrettySignature = {
      protected: String(block.protected),
      signature: String(block.signature ?? ""),
      alg: String(block.header?.alg ?? ""),
    };
    if (typeof block.header?.jwk === "object" && block.header.jwk !== null) signature.jwk = block.header.jwk as JsonWebKey;
    if (Array.isArray(block.header?.x5c)) signature.x5c = block.header.x5c.map(String);
    signatures.push(signature);
  }
  const { formatLength, formatTail } = shape as { formatLength: number; formatTail: Buffer };
  if (formatLength > bytes.length) throw new InvalidImageError(`${what}: a signature's formatLength is past the end of the manifest`);
  return { payload: Buffer.concat([bytes.subarray(0, formatLength), formatTail]), signatures };
}

const algorithms: Record<string, { hash: string; type: "ec" | "rsa" }> = {
  ES256: { hash: "sha256", type: "ec" },
  ES384: { hash: "sha384", type: "ec" },
  ES512: { hash: "sha512", type: "ec" },
  RS256: { hash: "sha256", type: "rsa" },
  RS384: { hash: "sha384", type: "rsa" },
  RS512: { hash: "sha512", type: "rsa" },
};

function signingKey(signature: PrettySignature, what: string): KeyObject {
  try {
    const first = signature.x5c?.[0];
    if (first !== undefined) return new X509Certificate(Buffer.from(first, "base64")).publicKey;
    if (signature.jwk) {
      const { kty, crv, x, y, n, e } = signature.jwk;
      return createPublicKey({ key: { kty, crv, x, y, n, e } as JsonWebKey, format: "jwk" });
    }
  } catch (error) {
    throw new InvalidImageError(`${what}: a signature's public key cannot be read`, { cause: error });
  }
  throw new InvalidImageError(`${what}: a signature names no public key (jwk or x5c)`);
}

/**
 * Check every signature over its protected header and the payload, with the key it carries, as libtrust
 * does. This proves the manifest was not changed after it was signed, not who signed it: registries
 * re-sign schema 1 manifests with keys of their own.
 */
export function verifyPrettyJws(jws: PrettyJws, what: string): void {
  const payload = jws.payload.toString("base64url");
  for (const signature of jws.signatures) {
    const algorithm = algorithms[signature.alg];
    if (!algorithm) throw new InvalidImageError(`${what}: signature algorithm "${signature.alg}" is not one libtrust uses`);
    const key = signingKey(signature, what);
    if (key.asymmetricKeyType !== algorithm.type) {
      throw new InvalidImageError(`${what}: a ${signature.alg} signature with a ${key.asymmetricKeyType} key`);
    }
    const signed = Buffer.from(`${signature.protected}.${payload}`);
    const bytes = Buffer.from(signature.signature, "base64url");
    const valid = verify(algorithm.hash, signed, algorithm.type === "ec" ? { key, dsaEncoding: "ieee-p1363" } : key, bytes);
    if (!valid) {
      throw new InvalidImageError(`${what}: its signature does not match its content`, {
        hint: "the manifest was changed after it was signed; pull it again, and report it to the registry's owner if it persists",
      });
    }
  }
}
