/**
 * Enrol and revoke without an outage, against the real nginx and haproxy: while device A streams
 * a generation, device B is revoked by editing the running sandbox's stack file. The gateway is
 * reloaded in place (same supervisor, same master, same port): A's stream completes with every
 * token, B's idle keep-alive connection is closed at the reload, B's own in-flight stream is cut
 * within gateway.reloadDrainSeconds, B's next request gets 403, and the stub Ollama receives
 * nothing from B after the reload. A generation that fails the binary's check is never loaded.
 * Figures (reload latency, how long B's connections stayed open) are printed as diagnostics.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { configWriterScript, generationFile, RELOAD_POLL_SECONDS } from "../../components/gateway/reload";
import { gatewayConfigRoot } from "../../scripts/sandbox/gateway";
import { keepDeviceCert, startSandbox, writeStackFile, type CertPair, type Sandbox } from "./harness";

const TOKEN_INTERVAL_MS = 100;
/** The drain bound under test; the stack default is 120 s (too long for a test). */
const DRAIN_SECONDS = 6;
/** A's stream: 4 s, started about 1 s before the revoke, so it ends well inside the drain. */
const A_TOKENS = 40;
/** B's stream: 30 s, far longer than the drain, so the drain must cut it. */
const B_TOKENS = 300;
/** Longest the supervisor takes to see a new generation (its poll) plus a second for the check and reload. */
const RELOAD_EFFECT_BOUND_MS = RELOAD_POLL_SECONDS * 1000 + 1000;
/** Scheduling slack on a loaded machine for "closed at once" and "closed at the drain bound". */
const SLACK_MS = 2500;

const device = (name: string) => ({ name, owner: `${name}@example.com`, groups: ["ml-eng"] });
const configFor = (kind: "nginx" | "haproxy", devices: string[]) => ({
    domain: "ollama.test",
    devices: devices.map(device),
    gateway: { kind, reloadDrainSeconds: DRAIN_SECONDS },
    filter: { enabled: false },
});

interface StreamResult {
    readonly status: number;
    /** NDJSON frames with done:false. */
    readonly tokens: number;
    /** The final frame (done:true) arrived. */
    readonly completed: boolean;
    /** performance.now() when the response ended or the connection was closed under it. */
    readonly endedAt: number;
}

/** A streaming /api/generate as device `cert`, read to its end or to the connection's close. */
function stream(sb: Sandbox, cert: CertPair, numPredict: number): { started: Promise<void>; result: Promise<StreamResult> } {
    const u = new URL(sb.info.url);
    let started!: () => void;
    const startedP = new Promise<void>((r) => (started = r));
    const result = new Promise<StreamResult>((done, fail) => {
        const req = httpsRequest(
            { host: u.hostname, port: Number(u.port), path: "/api/generate", method: "POST", ca: readFileSync(sb.info.ca), cert: readFileSync(cert.cert), key: readFileSync(cert.key), agent: false, headers: { "Content-Type": "application/json" }, timeout: 60_000 },
            (res) => {
                let text = "";
                let finished = false;
                const finish = () => {
                    if (finished) return;
                    finished = true;
                    const frames = text.split("\n").filter((l) => l.trim()).flatMap((l) => {
                        try {
                            return [JSON.parse(l) as { done?: boolean }];
                        } catch {
                            return []; // a frame cut in half by the close
                        }
                    });
                    done({ status: res.statusCode ?? 0, tokens: frames.filter((f) => f.done === false).length, completed: frames.some((f) => f.done === true), endedAt: performance.now() });
                };
                res.setEncoding("utf8");
                res.on("data", (d: string) => {
                    if (!text) started();
                    text += d;
                });
                res.on("end", finish);
                res.on("error", finish);
                res.on("close", finish);
            },
        );
        req.on("timeout", () => req.destroy(new Error("stream still open after 60 s")));
        req.on("error", fail);
        req.end(JSON.stringify({ model: "llama3.2:3b", prompt: "tell me a long story", options: { num_predict: numPredict } }));
    });
    return { started: startedP, result };
}

/** A TLS connection as `cert` that made one keep-alive request and now idles; `closedAt` resolves when the server closes it. */
async function idleKeepAlive(sb: Sandbox, cert: CertPair): Promise<{ firstStatus: number; closedAt: Promise<number>; close(): void }> {
    const u = new URL(sb.info.url);
    const socket = tlsConnect({ host: u.hostname, port: Number(u.port), ca: readFileSync(sb.info.ca), cert: readFileSync(cert.cert), key: readFileSync(cert.key), servername: undefined });
    let received = "";
    const closedAt = new Promise<number>((done) => socket.on("close", () => done(performance.now())));
    socket.on("error", () => {});
    const firstStatus = await new Promise<number>((done, fail) => {
        socket.once("secureConnect", () => socket.write("GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"));
        socket.on("data", (b: Buffer) => {
            received += b.toString("latin1");
            const m = /^HTTP\/1\.1 (\d{3})[\s\S]*?\r\n\r\n[\s\S]*"version"[^}]*\}/.exec(received);
            if (m) done(Number(m[1]));
        });
        setTimeout(() => fail(new Error(`no keep-alive answer within 10 s: ${received}`)), 10_000);
    });
    assert.doesNotMatch(received, /connection: close/i, "the first answer keeps the connection alive");
    return { firstStatus, closedAt, close: () => socket.destroy() };
}

/** Request /api/version as `cert` on a new connection until the status is `want`; the time it first was. */
async function untilStatus(sb: Sandbox, cert: CertPair, want: number, timeoutMs = 10_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
        const r = await sb.request({ path: "/api/version", device: cert });
        if (r.status === want) return performance.now();
        await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`no ${want} within ${timeoutMs} ms`);
}

const alive = (pid: number) => {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
};
const fromDevice = (sb: Sandbox, name: string) => sb.ollamaRequests().filter((e) => e.headers["x-device-name"] === name);
const gatewayOut = (sb: Sandbox) => readFileSync(join(sb.stateDir, "logs", "gateway.out"), "utf8");

for (const kind of ["nginx", "haproxy"] as const) {
    describe(`${kind}: revoking a device while others stream`, () => {
        test("A's stream completes, B's connections close within the stated bounds, B gets 403, Ollama sees nothing more from B", async (t: TestContext) => {
            const sb = await startSandbox({ config: configFor(kind, ["alice-laptop", "bob-laptop"]), extraArgs: ["--token-interval-ms", String(TOKEN_INTERVAL_MS)] });
            try {
                const bob = keepDeviceCert(sb.info, "bob-laptop");
                const alice = sb.info.devices["alice-laptop"];
                const { masterPid, pid: supervisorPid, generation: firstGeneration } = sb.info.gateway;

                const bobStream = stream(sb, bob, B_TOKENS);
                await bobStream.started;
                const bobIdle = await idleKeepAlive(sb, bob);
                assert.equal(bobIdle.firstStatus, 200, "B is enrolled before the revoke");
                const aliceStream = stream(sb, alice, A_TOKENS);
                await aliceStream.started;
                await new Promise((r) => setTimeout(r, 1000));

                // Revoke B: the stack file loses its entry, as `npm run device:revoke` leaves it.
                const fromLine = sb.stdoutLines().length;
                const writtenAt = performance.now();
                writeStackFile(configFor(kind, ["alice-laptop"]), join(sb.stackFile, ".."));
                const [, generation] = (await sb.waitForLine(/^reloaded ([0-9a-f]{16})$/, fromLine)) as RegExpMatchArray;
                const reloadWrittenAt = performance.now();
                assert.notEqual(generation, firstGeneration);
                const refusedAt = await untilStatus(sb, bob, 403);
                // Polls answered before the reload took effect reached Ollama; nothing from B may after.
                const bobAtRefusal = fromDevice(sb, "bob-laptop").length;

                const bobIdleClosedAt = await bobIdle.closedAt;
                const aliceResult = await aliceStream.result;
                const bobResult = await bobStream.result;

                assert.equal(aliceResult.status, 200);
                assert.equal(aliceResult.tokens, A_TOKENS, "A's stream got every token");
                assert.ok(aliceResult.completed, "A's stream ended with Ollama's final frame");
                assert.ok(bobIdleClosedAt - reloadWrittenAt < RELOAD_EFFECT_BOUND_MS + SLACK_MS, `B's idle keep-alive connection was closed at the reload (${Math.round(bobIdleClosedAt - reloadWrittenAt)} ms after the config was written)`);
                assert.ok(!bobResult.completed && bobResult.tokens < B_TOKENS, `B's in-flight stream was cut (${bobResult.tokens} of ${B_TOKENS} tokens)`);
                const bobStreamOpenMs = bobResult.endedAt - reloadWrittenAt;
                assert.ok(bobStreamOpenMs <= DRAIN_SECONDS * 1000 + RELOAD_EFFECT_BOUND_MS + SLACK_MS, `B's stream closed ${Math.round(bobStreamOpenMs)} ms after the reload; the bound is reloadDrainSeconds (${DRAIN_SECONDS} s)`);
                assert.ok(bobStreamOpenMs >= DRAIN_SECONDS * 1000 - SLACK_MS, `B's stream was drained, not killed at the reload (${Math.round(bobStreamOpenMs)} ms)`);

                const afterReload = sb.ollamaRequests().length;
                assert.equal((await sb.request({ path: "/api/generate", method: "POST", device: bob, body: { model: "llama3.2:3b", prompt: "x" } })).status, 403);
                assert.equal((await sb.request({ path: "/api/version", device: alice })).status, 200, "A is still served");
                assert.equal(fromDevice(sb, "bob-laptop").length, bobAtRefusal, "Ollama received nothing from B once the reload was in effect");
                assert.equal(sb.ollamaRequests().length, afterReload + 1, "only A's request reached Ollama after the reload");

                const info = JSON.parse(readFileSync(join(sb.stateDir, "sandbox.json"), "utf8"));
                assert.deepEqual(Object.keys(info.devices), ["alice-laptop"]);
                assert.equal(info.gateway.generation, generation);
                assert.equal(info.url, sb.info.url, "same port");
                assert.ok(alive(masterPid) && alive(supervisorPid), "same master and supervisor: reloaded, not restarted");
                assert.match(gatewayOut(sb), new RegExp(`reloading ${kind} master ${masterPid}: generations/${firstGeneration} -> generations/${generation}`));

                t.diagnostic(`${kind}: stack file edit -> sandbox wrote generation: ${Math.round(reloadWrittenAt - writtenAt)} ms`);
                t.diagnostic(`${kind}: config written -> B refused (reload in effect): ${Math.round(refusedAt - reloadWrittenAt)} ms`);
                t.diagnostic(`${kind}: B's idle keep-alive connection stayed open ${Math.round(bobIdleClosedAt - reloadWrittenAt)} ms after the config was written`);
                t.diagnostic(`${kind}: B's in-flight stream stayed open ${Math.round(bobStreamOpenMs)} ms after the config was written (reloadDrainSeconds ${DRAIN_SECONDS}); ${bobResult.tokens} of ${B_TOKENS} tokens`);
            } finally {
                await sb.stop();
            }
        });

        test("enrolling a device reloads in place: it is served at once, without a restart", async () => {
            const sb = await startSandbox({ config: configFor(kind, ["alice-laptop"]) });
            try {
                const fromLine = sb.stdoutLines().length;
                writeStackFile(configFor(kind, ["alice-laptop", "dave-laptop"]), join(sb.stackFile, ".."));
                await sb.waitForLine(/^reloaded [0-9a-f]{16}$/, fromLine);
                const dave = JSON.parse(readFileSync(join(sb.stateDir, "sandbox.json"), "utf8")).devices["dave-laptop"] as CertPair;
                await untilStatus(sb, dave, 200);
                assert.equal(fromDevice(sb, "dave-laptop").length, 1);
                assert.ok(alive(sb.info.gateway.masterPid), "the same master serves the new device");
            } finally {
                await sb.stop();
            }
        });

        test("a generation the binary rejects is never loaded: the old config keeps serving, the refusal is logged", async () => {
            const sb = await startSandbox({ config: configFor(kind, ["alice-laptop", "bob-laptop"]) });
            try {
                const root = gatewayConfigRoot(sb.stateDir);
                const broken = "0123456789abcdef";
                const configName = kind === "nginx" ? "nginx.conf" : "haproxy.cfg";
                mkdirSync(generationFile(root, broken, ""), { recursive: true });
                writeFileSync(generationFile(root, broken, configName), "this is not a gateway config;\n");
                execFileSync("sh", ["-c", configWriterScript(root), "zto-config-writer", broken]);
                const deadline = Date.now() + 10_000;
                while (!gatewayOut(sb).includes(`REFUSED generations/${broken}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
                assert.match(gatewayOut(sb), new RegExp(`REFUSED generations/${broken}: ${kind} rejected it, still serving generations/${sb.info.gateway.generation}`));
                assert.equal((await sb.request({ path: "/api/version", device: "bob-laptop" })).status, 200, "the old allowlist still serves");
                assert.equal((await sb.request({ path: "/api/pull", method: "POST", device: "bob-laptop", body: { model: "x" } })).status, 403, "and still refuses");
                assert.ok(alive(sb.info.gateway.masterPid));
                assert.doesNotMatch(gatewayOut(sb), new RegExp(`reloading ${kind}`), "no reload was signalled");

                // The next valid edit is loaded as usual.
                const fromLine = sb.stdoutLines().length;
                writeStackFile(configFor(kind, ["alice-laptop"]), join(sb.stackFile, ".."));
                await sb.waitForLine(/^reloaded [0-9a-f]{16}$/, fromLine);
                await untilStatus(sb, sb.info.devices["bob-laptop"], 403);
            } finally {
                await sb.stop();
            }
        });
    });
}
