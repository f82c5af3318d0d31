/**
 * TLS session resumption that keeps revocation, against the real nginx and haproxy run by the
 * sandbox: a resumed session (Node's isSessionReused()) of an enrolled device is served and the
 * allowlist names the device from the certificate recorded in the session; after the device is
 * revoked (stack file edit, reload in place) its saved ticket no longer resumes, the full
 * handshake it falls back to is refused and the stub Ollama receives nothing from it; a ticket
 * past gateway.tlsTicketLifetimeSeconds falls back to a full handshake.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { keepDeviceCert, startSandbox, writeStackFile, type CertPair, type Sandbox } from "./harness";

/** Resumption must be tried within this; the expiry test waits past it. */
const SHORT_LIFETIME_SECONDS = 5;

const device = (name: string) => ({ name, owner: `${name}@example.com`, groups: ["ml-eng"] });
const configFor = (kind: "nginx" | "haproxy", devices: string[], gateway: Record<string, unknown> = {}) => ({
    domain: "ollama.test",
    devices: devices.map(device),
    gateway: { kind, ...gateway },
    filter: { enabled: false },
});

interface Attempt {
    /** HTTP status, or 0 when the connection failed before an answer. */
    readonly status: number;
    /** The TLS session was resumed from the ticket offered. */
    readonly reused: boolean;
    /** The last ticket the server sent on this connection (undefined if none). */
    readonly session?: Buffer;
    readonly error?: string;
}

/** One connection as `cert`, offering `session` if given: GET /api/version, read to the close. */
function attempt(sb: Sandbox, cert: CertPair, session?: Buffer): Promise<Attempt> {
    const u = new URL(sb.info.url);
    return new Promise((done) => {
        const socket = tlsConnect({ host: u.hostname, port: Number(u.port), ca: readFileSync(sb.info.ca), cert: readFileSync(cert.cert), key: readFileSync(cert.key), session });
        let received = "";
        let latest: Buffer | undefined;
        let reused = false;
        let error: string | undefined;
        socket.setTimeout(15_000, () => socket.destroy(new Error("no answer within 15 s")));
        socket.on("session", (s: Buffer) => (latest = s));
        socket.once("secureConnect", () => {
            reused = socket.isSessionReused();
            socket.write("GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        });
        socket.on("data", (b: Buffer) => (received += b.toString("latin1")));
        socket.on("error", (e) => (error = e.message));
        socket.on("close", () => {
            const m = /^HTTP\/1\.1 (\d{3})/.exec(received);
            done({ status: m ? Number(m[1]) : 0, reused, session: latest, error });
        });
    });
}

const fromDevice = (sb: Sandbox, name: string) => sb.ollamaRequests().filter((e) => e.headers["x-device-name"] === name);
const lastDeviceName = (sb: Sandbox) => sb.ollamaRequests().at(-1)?.headers["x-device-name"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const kind of ["nginx", "haproxy"] as const) {
    describe(`${kind}: TLS session resumption keeps revocation`, () => {
        test("an enrolled device's resumed session is served, and the allowlist names it from the session's certificate", async () => {
            const sb = await startSandbox({ config: configFor(kind, ["alice-laptop", "bob-laptop"]) });
            try {
                for (const name of ["alice-laptop", "bob-laptop"]) {
                    const cert = sb.info.devices[name];
                    const full = await attempt(sb, cert);
                    assert.equal(full.status, 200, `${name}: full handshake served`);
                    assert.equal(full.reused, false);
                    assert.ok(full.session, `${name}: the gateway issued a session ticket`);
                    const resumed = await attempt(sb, cert, full.session);
                    assert.equal(resumed.reused, true, `${name}: the second connection resumed the session`);
                    assert.equal(resumed.status, 200, `${name}: the resumed session is served`);
                    assert.equal(lastDeviceName(sb), name, `${name}: the device name Ollama saw comes from the certificate recorded in the session`);
                }
            } finally {
                await sb.stop();
            }
        });

        test("after a revoke and reload the device's ticket does not resume, its full handshake is refused, Ollama sees nothing from it", async () => {
            const sb = await startSandbox({ config: configFor(kind, ["alice-laptop", "bob-laptop"]) });
            try {
                const bob = keepDeviceCert(sb.info, "bob-laptop");
                const alice = sb.info.devices["alice-laptop"];

                const bobFull = await attempt(sb, bob);
                const bobResumed = await attempt(sb, bob, bobFull.session);
                assert.equal(bobResumed.reused, true, "before the revoke B's ticket resumes (the check below can fail)");
                assert.equal(bobResumed.status, 200);
                const bobTicket = bobResumed.session ?? bobFull.session;
                const aliceTicket = (await attempt(sb, alice)).session;

                const fromLine = sb.stdoutLines().length;
                writeStackFile(configFor(kind, ["alice-laptop"]), join(sb.stackFile, ".."));
                await sb.waitForLine(/^reloaded [0-9a-f]{16}$/, fromLine, 30_000);
                // The supervisor loads the new generation within its poll; until then B is still served.
                const deadline = Date.now() + 30_000;
                while ((await attempt(sb, bob)).status !== 403) {
                    assert.ok(Date.now() < deadline, "the revoke took effect within 30 s");
                    await sleep(100);
                }
                const bobAtRefusal = fromDevice(sb, "bob-laptop").length;

                const revoked = await attempt(sb, bob, bobTicket);
                assert.equal(revoked.reused, false, "the reload rotated the ticket keys: B's ticket no longer resumes");
                assert.ok(revoked.status === 403 || revoked.status === 0, `B's attempt is refused (status ${revoked.status}${revoked.error ? `, ${revoked.error}` : ""})`);
                assert.equal(fromDevice(sb, "bob-laptop").length, bobAtRefusal, "Ollama received nothing from B once the reload was in effect");

                const aliceAfter = await attempt(sb, alice, aliceTicket);
                assert.equal(aliceAfter.reused, false, "no ticket of the old generation resumes, A's neither");
                assert.equal(aliceAfter.status, 200, "A is served after a full handshake");
                const aliceResumed = await attempt(sb, alice, aliceAfter.session);
                assert.equal(aliceResumed.reused, true, "A's ticket of the new generation resumes");
                assert.equal(aliceResumed.status, 200);
                assert.equal(fromDevice(sb, "bob-laptop").length, bobAtRefusal, "still nothing from B");
            } finally {
                await sb.stop();
            }
        });

        test("a ticket past gateway.tlsTicketLifetimeSeconds falls back to a full handshake", async () => {
            const sb = await startSandbox({ config: configFor(kind, ["alice-laptop"], { tlsTicketLifetimeSeconds: SHORT_LIFETIME_SECONDS }) });
            try {
                const alice = sb.info.devices["alice-laptop"];
                // The control: a young ticket resumes, so the check below can fail. A loaded machine may
                // take longer than the lifetime between the two handshakes: try again with a new ticket
                // (bounded), and fail when no ticket was ever offered young.
                let issuedAt = 0;
                let full: Attempt | undefined;
                for (let tries = 0; tries < 5 && !full; tries++) {
                    issuedAt = Date.now();
                    const first = await attempt(sb, alice);
                    assert.equal(first.status, 200);
                    const fresh = await attempt(sb, alice, first.session);
                    if (Date.now() - issuedAt >= (SHORT_LIFETIME_SECONDS - 1) * 1000) continue;
                    assert.equal(fresh.reused, true, "a young ticket resumes (the check below can fail)");
                    full = first;
                }
                assert.ok(full, `no ticket could be offered within ${SHORT_LIFETIME_SECONDS - 1} s of its issue in 5 tries`);
                await sleep(Math.max(0, issuedAt + (SHORT_LIFETIME_SECONDS + 2) * 1000 - Date.now()));
                const expired = await attempt(sb, alice, full.session);
                assert.equal(expired.reused, false, "the expired ticket was not resumed");
                assert.equal(expired.status, 200, "the full handshake it fell back to is served");
            } finally {
                await sb.stop();
            }
        });
    });
}
