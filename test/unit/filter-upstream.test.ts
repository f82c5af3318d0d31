/**
 * The filter's upstream exchange (filter/src/upstream.ts) against a real HTTP server on loopback:
 * chunks that come before the reader is attached are kept, a reader that says "stop" pauses the
 * socket until resumed and still gets every byte, a body over its limit is refused (and the
 * connection closed), an abort while the head is awaited closes the connection, and a response
 * cut mid-body rejects.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { Pool } from "undici";
import { UpstreamExchange } from "../../filter/src/upstream";

let server: http.Server;
let pool: Pool;
/** Paths the server received, in order. */
const seen: string[] = [];
let closedSockets = 0;

before(async () => {
    server = http.createServer((req, res) => {
        seen.push(req.url!);
        if (req.url === "/chunks") {
            res.writeHead(200, { "content-type": "application/x-ndjson" });
            let i = 0;
            const tick = () => {
                if (i === 20) return void res.end();
                res.write(`${JSON.stringify({ i: i++, pad: "x".repeat(2000) })}\n`);
                setImmediate(tick);
            };
            tick();
        } else if (req.url === "/big") {
            res.writeHead(200, { "content-length": String(64 << 10) });
            res.end(Buffer.alloc(64 << 10, 0x61));
        } else if (req.url === "/cut") {
            res.writeHead(200, { "content-length": "100" });
            res.write("partial");
            setTimeout(() => res.socket!.destroy(), 20);
        } else if (req.url === "/hang") {
            // Never answers: only an abort ends it.
        } else {
            res.writeHead(200, { "content-type": "application/json", "content-length": "2" });
            res.end("{}");
        }
    });
    server.on("connection", (s) => s.on("close", () => closedSockets++));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 4 });
});
after(async () => {
    await pool.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
});

test("a small answer read whole after its head, with its status and headers", async () => {
    const x = new UpstreamExchange(pool, { path: "/small", method: "GET", headers: {} });
    const head = await x.head;
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-type"], "application/json");
    assert.equal((await x.whole())!.toString(), "{}");
});

test("a reader that asks to stop pauses the socket, is resumed, and still gets every chunk in order", async () => {
    const x = new UpstreamExchange(pool, { path: "/chunks", method: "GET", headers: {} });
    await x.head;
    // Attached late: whatever came meanwhile is kept for the reader.
    await new Promise((r) => setTimeout(r, 30));
    const lines: string[] = [];
    let pauses = 0;
    await x.relay((c) => {
        lines.push(c.toString());
        if (lines.length % 3 !== 0) return true;
        pauses++;
        setTimeout(() => x.resume(), 5);
        return false;
    });
    const ids = lines.join("").trim().split("\n").map((l) => (JSON.parse(l) as { i: number }).i);
    assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => i));
    assert.ok(pauses > 0);
});

test("a body over its limit is undefined and its connection is closed, not read to the end", async () => {
    const before = closedSockets;
    const x = new UpstreamExchange(pool, { path: "/big", method: "GET", headers: {} });
    await x.head;
    assert.equal(await x.whole(1024), undefined);
    for (let i = 0; i < 100 && closedSockets === before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(closedSockets > before, "the connection was closed");
});

test("an abort while the head is awaited rejects it and closes the connection (Ollama stops)", async () => {
    const before = closedSockets;
    const x = new UpstreamExchange(pool, { path: "/hang", method: "GET", headers: {} });
    for (let i = 0; i < 200 && !seen.includes("/hang"); i++) await new Promise((r) => setTimeout(r, 10));
    x.abort();
    await assert.rejects(x.head);
    for (let i = 0; i < 100 && closedSockets === before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(closedSockets > before, "the connection was closed");
});

test("a response cut mid-body rejects its reader", async () => {
    const x = new UpstreamExchange(pool, { path: "/cut", method: "GET", headers: {} });
    assert.equal((await x.head).status, 200);
    await assert.rejects(x.whole());
});
