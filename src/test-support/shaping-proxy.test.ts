/**
 * The bench's shaping proxy: its link model in numbers, and the proxy itself in front of the real
 * docker-registry and a byte sink. Only lower bounds of time are asserted (shaping adds delay; how much
 * more a loaded machine adds is not the proxy's doing).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { type AddressInfo, connect, createServer, type Server } from "node:net";
import { after, before, describe, it } from "node:test";
import { startRegistry, type TestRegistry } from "./registry.js";
import { ShapedLink, startShapingProxy } from "./shaping-proxy.js";

describe("ShapedLink", () => {
  const shape = { rttMs: 40, bytesPerSecond: 20_000_000 };

  it("delays a chunk by its serialisation and half the round trip", () => {
    const link = new ShapedLink(shape, 0);
    assert.equal(link.schedule(1_000_000, 0), 50 + 20);
  });

  it("queues chunks behind each other: the bandwidth is shared in time, the delay is not added twice", () => {
    const link = new ShapedLink(shape, 0);
    assert.equal(link.schedule(1_000_000, 0), 70);
    assert.equal(link.schedule(1_000_000, 10), 120);
    // An idle link sends at once.
    assert.equal(link.schedule(200_000, 500), 500 + 10 + 20);
  });

  it("sends nothing before the link opens (the handshake's round trip)", () => {
    const link = new ShapedLink(shape, 40);
    assert.equal(link.schedule(20_000, 0), 40 + 1 + 20);
  });

  it("gives every link its own bandwidth", () => {
    const a = new ShapedLink(shape, 0);
    const b = new ShapedLink(shape, 0);
    assert.equal(a.schedule(1_000_000, 0), 70);
    assert.equal(b.schedule(1_000_000, 0), 70);
  });

  it("with no bandwidth limit, only delays", () => {
    const link = new ShapedLink({ rttMs: 100, bytesPerSecond: 0 }, 0);
    assert.equal(link.schedule(1 << 30, 5), 55);
  });
});

function get(url: string, agent?: import("node:http").Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("shaping proxy in front of docker-registry", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(async () => {
    await registry.stop();
  });

  it("costs a new connection two round trips and a kept-alive one one round trip", async () => {
    const heard: string[] = [];
    const proxy = await startShapingProxy(registry.host, {
      rttMs: 150,
      bytesPerSecond: 0,
      onRequest: (connection, method, target) => heard.push(`${connection} ${method} ${target}`),
    });
    const { Agent } = await import("node:http");
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      let begin = performance.now();
      assert.equal(await get(`${proxy.url}/v2/`, agent), 200);
      const first = performance.now() - begin;
      begin = performance.now();
      assert.equal(await get(`${proxy.url}/v2/`, agent), 200);
      const second = performance.now() - begin;
      assert.ok(first >= 2 * 150 - 2, `first request took ${first.toFixed(0)} ms, at least 300 expected`);
      assert.ok(second >= 150 - 2, `second request took ${second.toFixed(0)} ms, at least 150 expected`);
      assert.equal(proxy.stats.connections, 1, "the second request reused the connection");
      assert.deepEqual(heard, ["1 GET /v2/", "1 GET /v2/"]);
      assert.ok(proxy.stats.bytesUp > 0 && proxy.stats.bytesDown > 0);
    } finally {
      agent.destroy();
      await proxy.stop();
    }
  });

  it("refuses a target that is not on loopback", async () => {
    await assert.rejects(startShapingProxy("192.0.2.1:5000", { rttMs: 1, bytesPerSecond: 0 }), /not a loopback/);
  });
});

describe("shaping proxy bandwidth", () => {
  let sink: Server;
  let received: Promise<{ digest: string; bytes: number }>[] = [];
  before(async () => {
    received = [];
    sink = createServer((socket) => {
      const hash = createHash("sha256");
      let bytes = 0;
      received.push(
        new Promise((resolve) => {
          socket.on("data", (d: Buffer) => {
            hash.update(d);
            bytes += d.length;
          });
          socket.on("end", () => {
            resolve({ digest: hash.digest("hex"), bytes });
            socket.end();
          });
        }),
      );
    });
    await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
  });
  after(async () => {
    await new Promise<void>((resolve) => sink.close(() => resolve()));
  });

  it("passes every byte in order, no faster than the connection's bandwidth", async () => {
    const { port } = sink.address() as AddressInfo;
    const rate = 8 << 20;
    const proxy = await startShapingProxy(`127.0.0.1:${port}`, { rttMs: 10, bytesPerSecond: rate });
    try {
      const data = randomBytes(4 << 20);
      const [host, p] = proxy.host.split(":") as [string, string];
      const begin = performance.now();
      const socket = connect(Number(p), host);
      await new Promise<void>((resolve, reject) => {
        socket.on("error", reject);
        socket.on("close", () => resolve());
        socket.end(data);
        socket.resume();
      });
      const elapsed = performance.now() - begin;
      const got = await received.at(-1);
      assert.deepEqual(got, { digest: createHash("sha256").update(data).digest("hex"), bytes: data.length });
      // 4 MiB at 8 MiB/s: 500 ms, plus the handshake and the one-way delay.
      assert.ok(elapsed >= 500 + 10 + 5 - 2, `4 MiB at 8 MiB/s took ${elapsed.toFixed(0)} ms`);
      assert.equal(proxy.stats.bytesUp, data.length);
    } finally {
      await proxy.stop();
    }
  });
});
