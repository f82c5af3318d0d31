/**
 * The shared attack matrix against the real haproxy (2.6 here) running the rendered config in
 * the sandbox, in front of the stub Ollama: every refusal is proven by the stub having seen
 * nothing. Same cases as nginx (attack-matrix.ts); where haproxy answers differently the case
 * says so itself (`statusByKind`).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { ATTACK_MATRIX } from "./attack-matrix";
import { runApiKeyChecks } from "./api-key-checks";
import { runAttackMatrix } from "./attack-runner";
import { startSandbox, type Sandbox } from "./harness";

const NO_AUTH_REQUEST =
    "needs OIDC sign-in through auth_request to oauth2-proxy; haproxy has no auth_request, so identity.provider entra/oidc with gateway.kind haproxy is a config error (the device certificate is the identity)";

/** Matrix cases that cannot apply to the haproxy gateway, with the reason. */
const NOT_APPLICABLE: Readonly<Record<string, string>> = {
    "identity-forged-with-session": NO_AUTH_REQUEST,
    "identity-no-session-api": NO_AUTH_REQUEST,
    "identity-forged-headers-no-session": NO_AUTH_REQUEST,
    "identity-bad-bearer": NO_AUTH_REQUEST,
    "identity-browser-redirect": NO_AUTH_REQUEST,
    "identity-session-denied-route": NO_AUTH_REQUEST,
    "identity-oauth2-internal-path": NO_AUTH_REQUEST,
    "identity-bearer-ok": NO_AUTH_REQUEST,
    "chunked-body-normalised":
        "a positive case for nginx re-framing a valid chunked body with Content-Length; haproxy refuses every chunked request body (411, proven by body-oversized-chunked and smuggle-cl-te), so there is nothing to re-frame",
    "smuggle-obs-fold":
        "haproxy replaces an obs-fold with spaces (RFC 7230 section 3.2.4 allows that or a 400), so the hidden Transfer-Encoding becomes text inside X-Pad, which the header allowlist drops: upstream gets a plain Content-Length request, nothing is smuggled",
};

test("haproxy skips exactly the matrix cases listed here as not applicable", () => {
    const skipped = ATTACK_MATRIX.filter((c) => !c.appliesTo.includes("haproxy")).map((c) => c.id);
    assert.deepEqual(skipped.sort(), Object.keys(NOT_APPLICABLE).sort());
});

runAttackMatrix("haproxy", { includeIdentity: false });

runApiKeyChecks("haproxy");

/**
 * haproxy-specific timing: the client timeout (slowloris guard) must not cut a generation whose
 * tokens come slower than it, and the per-device concurrency cap (stick-table conn_cur) counts
 * requests in flight.
 */
describe("long generations and requests in flight through the real haproxy", () => {
    const TOKEN_INTERVAL_MS = 1500;
    let sb: Sandbox;
    before(async () => {
        sb = await startSandbox({
            config: {
                domain: "ollama.test",
                devices: [{ name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] }],
                gateway: { kind: "haproxy", clientTimeoutSeconds: 1, maxConnectionsPerClient: 2 },
                filter: { enabled: false },
            },
            extraArgs: ["--token-interval-ms", String(TOKEN_INTERVAL_MS), "--tokens", "3"],
        });
    });
    after(async () => {
        await sb?.stop();
    });

    const generate = () => sb.request({ path: "/api/generate", method: "POST", body: { model: "llama3.2:3b", prompt: "hi" }, timeoutMs: 20_000 });

    test("tokens 1.5 s apart outlive clientTimeoutSeconds: 1 and all arrive", async () => {
        const r = await generate();
        assert.equal(r.status, 200, r.body);
        const lines = r.body.trim().split("\n").map((l) => JSON.parse(l) as { done: boolean });
        assert.equal(lines.at(-1)?.done, true, "the answer ran to its final frame");
        assert.ok(r.chunks.at(-1)!.atMs - r.chunks[0].atMs >= 2 * TOKEN_INTERVAL_MS * 0.9, "the generation really was slower than the client timeout");
    });

    test("a third request in flight from the same device gets 429; Ollama sees only two", async () => {
        sb.resetOllamaLog();
        const first = [generate(), generate()];
        await new Promise((r) => setTimeout(r, 500));
        const third = await generate();
        assert.equal(third.status, 429, third.body);
        assert.equal(third.json<{ error: { code: string } }>().error.code, "rate_limited");
        assert.match(String(third.headers["retry-after"]), /^[1-9][0-9]*$/);
        assert.deepEqual((await Promise.all(first)).map((r) => r.status), [200, 200]);
        assert.equal(sb.ollamaRequests().length, 2);
        assert.equal((await generate()).status, 200, "finished requests no longer count");
    });
});

/** The JSON access log, on stdout (the sandbox's access log file) and to syslog over TCP. */
describe("JSON access log and syslog from the real haproxy", () => {
    let sb: Sandbox;
    before(async () => {
        sb = await startSandbox({
            config: {
                domain: "ollama.test",
                devices: [{ name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] }],
                gateway: { kind: "haproxy" },
                filter: { enabled: false },
                siem: { syslogAddress: "tcp://siem.example.com:6514" },
            },
        });
    });
    after(async () => {
        await sb?.stop();
    });

    test("one JSON line per request, on both sinks, with who/what/outcome and no secrets", async () => {
        const r = await sb.request({ path: "/api/show", method: "POST", headers: { Authorization: "Bearer do-not-log-me", Cookie: "session=do-not-log-me" }, body: { model: "llama3.2:3b", prompt: "do-not-log-me" } });
        assert.equal(r.status, 200, r.body);
        const refused = await sb.request({ path: "/api/show?token=do-not-log-me", method: "POST", body: { model: "llama3.2:3b" } });
        assert.equal(refused.status, 403, "a query string is not the allowlisted target");
        const id = String(r.headers["x-request-id"]);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const accessText = readFileSync(sb.info.gateway.accessLog, "utf8");
        const line = accessText.split("\n").filter((l) => l.includes(id));
        assert.equal(line.length, 1, "exactly one access log line for the request");
        const entry = JSON.parse(line[0]) as Record<string, unknown>;
        assert.deepEqual(
            { device: entry.device, user: entry.user, groups: entry.groups, method: entry.method, path: entry.path, status: entry.status },
            { device: "alice-laptop", user: "alice@example.com", groups: "ml-eng", method: "POST", path: "/api/show", status: r.status },
        );
        assert.match(String(entry.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        assert.ok(!accessText.includes("do-not-log-me"), "no body, query, cookie or token in the access log");
        const syslogText = readFileSync(sb.info.syslog!.log, "utf8");
        assert.ok(syslogText.includes(id), "the same line reached syslog");
        assert.ok(!syslogText.includes("do-not-log-me"));
    });
});
