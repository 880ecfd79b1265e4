#!/usr/bin/env node
// How the chunk size of a blob upload costs on loopback: the same blob pushed to Debian's docker-registry
// as one PATCH and as PATCH chunks of several sizes (distribution-spec end-5, Content-Range), runs
// interleaved so that a loaded machine weighs on each alike. Node's own http, no ocify code: this is the
// registry's and HTTP's cost alone. Usage: node scripts/measure-chunks.mjs [MiB=512] [rounds=4] [chunk MiB…]
import { createCipheriv, createHash } from "node:crypto";
import { request } from "node:http";
import { startRegistry } from "../dist/test-support/registry.js";

const mib = Number(process.argv[2] ?? 512);
const rounds = Number(process.argv[3] ?? 4);
const chunkSizes = process.argv.slice(4).map(Number);
const sizes = chunkSizes.length ? chunkSizes : [0, 64, 128, 256];
const piece = createCipheriv("aes-128-ctr", Buffer.alloc(16, 3), Buffer.alloc(16)).update(Buffer.alloc(16 << 20));
const total = mib << 20;

function send(host, method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = request({ host: host.split(":")[0], port: Number(host.split(":")[1]), method, path, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res));
    });
    req.on("error", reject);
    if (typeof body === "function") body(req);
    else req.end(body);
  });
}

/** Write bytes [from, to) of the blob (the 16 MiB piece repeated) into the request, with backpressure. */
function writeRange(req, from, to) {
  let at = from;
  const more = () => {
    while (at < to) {
      const offset = at % piece.length;
      const n = Math.min(piece.length - offset, to - at);
      at += n;
      if (!req.write(piece.subarray(offset, offset + n))) return req.once("drain", more);
    }
    req.end();
  };
  more();
}

let digest;
function blobDigest() {
  const hash = createHash("sha256");
  for (let at = 0; at < total; at += piece.length) hash.update(piece.subarray(0, Math.min(piece.length, total - at)));
  return `sha256:${hash.digest("hex")}`;
}

async function upload(host, repo, chunkMiB) {
  const started = performance.now();
  let res = await send(host, "POST", `/v2/${repo}/blobs/uploads/`, { "content-length": "0" }, Buffer.alloc(0));
  let location = new URL(res.headers.location, `http://${host}`);
  const chunk = chunkMiB === 0 ? total : chunkMiB << 20;
  for (let from = 0; from < total; from += chunk) {
    const to = Math.min(total, from + chunk);
    const headers = {
      "content-type": "application/octet-stream",
      "content-length": String(to - from),
      "content-range": `${from}-${to - 1}`,
    };
    res = await send(host, "PATCH", location.pathname + location.search, headers, (req) => writeRange(req, from, to));
    if (res.statusCode !== 202) throw new Error(`PATCH ${res.statusCode}`);
    location = new URL(res.headers.location, `http://${host}`);
  }
  location.searchParams.set("digest", digest);
  res = await send(host, "PUT", location.pathname + location.search, { "content-length": "0" }, Buffer.alloc(0));
  if (res.statusCode !== 201) throw new Error(`PUT ${res.statusCode}`);
  return performance.now() - started;
}

digest = blobDigest();
const registry = await startRegistry();
const times = Object.fromEntries(sizes.map((s) => [s, []]));
try {
  for (let round = 0; round < rounds; round++) {
    for (const size of round % 2 ? [...sizes].reverse() : sizes) {
      // Each upload to a fresh repository, its blob deleted after, so that no run finds it there.
      const repo = `measure/r${round}-c${size}`;
      times[size].push(await upload(registry.host, repo, size));
      await send(registry.host, "DELETE", `/v2/${repo}/blobs/${digest}`, {}, undefined);
    }
  }
} finally {
  await registry.stop();
}
const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
const base = median(times[sizes[0]]);
console.log(`blob ${mib} MiB, ${rounds} rounds, median ms (ratio to ${sizes[0] === 0 ? "one PATCH" : `${sizes[0]} MiB`}):`);
for (const size of sizes) {
  const m = median(times[size]);
  console.log(
    `  ${size === 0 ? "one PATCH" : `${size} MiB chunks`}: ${m.toFixed(0)} ms (${(m / base).toFixed(2)}x) [${times[size].map((t) => t.toFixed(0)).join(" ")}]`,
  );
}
