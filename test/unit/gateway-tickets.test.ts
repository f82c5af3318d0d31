/** Session ticket key files: the formats nginx and haproxy read, from exactly the random bytes given. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { SESSION_TICKET_RANDOM_BYTES, sessionTicketKeyFile } from "../../components/gateway/tickets";
import { loadStackConfig } from "../../components/config";

describe("sessionTicketKeyFile", () => {
    test("nginx: the 80 random bytes themselves (one AES-256 key)", () => {
        const bytes = randomBytes(SESSION_TICKET_RANDOM_BYTES.nginx);
        assert.deepEqual(sessionTicketKeyFile("nginx", bytes), bytes);
    });
    test("haproxy: three base64 keys of 80 bytes, one per line, all from the given bytes", () => {
        const bytes = randomBytes(SESSION_TICKET_RANDOM_BYTES.haproxy);
        const lines = sessionTicketKeyFile("haproxy", bytes).toString("utf8").split("\n");
        assert.equal(lines.pop(), "", "ends with a newline");
        assert.deepEqual(Buffer.concat(lines.map((l) => Buffer.from(l, "base64"))), bytes);
        assert.deepEqual(lines.map((l) => Buffer.from(l, "base64").length), [80, 80, 80]);
    });
    test("the wrong number of random bytes is refused, never padded or cut", () => {
        assert.throws(() => sessionTicketKeyFile("nginx", randomBytes(48)), /nginx session ticket key file needs 80 random bytes \(got 48\)/);
        assert.throws(() => sessionTicketKeyFile("haproxy", randomBytes(80)), /haproxy session ticket key file needs 240 random bytes \(got 80\)/);
    });
});

describe("gateway.tlsTicketLifetimeSeconds", () => {
    const cfg = (v: unknown) => () => loadStackConfig({ domain: "ollama.test", gateway: { tlsTicketLifetimeSeconds: v } });
    test("defaults to 5 minutes; 0 (off) to 3600 accepted", () => {
        assert.equal(loadStackConfig({ domain: "ollama.test" }).gateway.tlsTicketLifetimeSeconds, 300);
        assert.equal(cfg(0)().gateway.tlsTicketLifetimeSeconds, 0);
        assert.equal(cfg(3600)().gateway.tlsTicketLifetimeSeconds, 3600);
    });
    test("out of range, fractional or not a number: refused, naming the key", () => {
        for (const bad of [-1, 3601, 1.5, "300"]) assert.throws(cfg(bad), /tlsTicketLifetimeSeconds/, JSON.stringify(bad));
    });
});
