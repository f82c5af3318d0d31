/**
 * Identity through the real nginx: the sandbox runs the program's rendered nginx.conf in front of
 * the stub oauth2-proxy (users and tokens from sandbox.json) and the stub Ollama. Every refusal is
 * checked twice: the status the client sees, and that the stub Ollama received nothing.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import type { Oauth2LogEntry } from "../../scripts/sandbox/stub-oauth2-proxy";
import { startSandbox, type HttpResult, type Sandbox } from "./harness";
import { runApiKeyChecks } from "./api-key-checks";
import { ALICE, MALLORY, ML, OTHER, TENANT } from "./corp-identities";

const CI = "ci@corp.example";
/** In the allowed group but outside the allowed email domain. */
const EVE = "eve@elsewhere.example";

function errorCode(r: HttpResult): string | undefined {
    return r.json<{ error?: { code?: string } }>().error?.code;
}

/** A key of the right shape that belongs to nobody. */
const FORGED_KEY = "Z".repeat(48);

describe("identity (entra) through the real nginx", () => {
    let sb: Sandbox;
    before(async () => {
        sb = await startSandbox({
            config: {
                domain: "ollama.corp.example",
                devices: [
                    { name: "alice-laptop", owner: ALICE, groups: [ML] },
                    { name: "ci-runner", owner: CI, groups: [ML], apiKey: true },
                ],
                identity: { provider: "entra", tenantId: TENANT, allowedGroups: [ML], allowedEmailDomains: ["corp.example"] },
                gateway: { authRateLimitPerMinute: 6, rateLimitPerMinute: 6000, burst: 1000 },
                filter: { enabled: false },
            },
            extraArgs: ["--user", `${MALLORY}:${OTHER}`, "--user", `${EVE}:${ML}`],
        });
    });
    after(async () => {
        await sb?.stop();
    });

    const fresh = () => sb.resetOllamaLog();

    test("a signed-in user (session cookie) reaches Ollama as themselves", async () => {
        fresh();
        const r = await sb.request({ path: "/api/tags", device: "alice-laptop", user: ALICE });
        assert.equal(r.status, 200, r.body);
        const got = sb.ollamaRequests();
        assert.equal(got.length, 1);
        assert.equal(got[0].headers["x-auth-request-user"], ALICE);
        assert.equal(got[0].headers["x-auth-request-groups"], ML);
        assert.equal(got[0].headers.cookie, undefined, "the session cookie never goes upstream");
    });

    test("a CLI with a bearer token reaches Ollama; the token itself is not forwarded", async () => {
        fresh();
        const r = await sb.request({ path: "/api/chat", method: "POST", body: { model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], stream: false }, device: "alice-laptop", user: ALICE, auth: "bearer" });
        assert.equal(r.status, 200, r.body);
        const got = sb.ollamaRequests();
        assert.equal(got.length, 1);
        assert.equal(got[0].headers["x-auth-request-user"], ALICE);
        assert.equal(got[0].headers.authorization, undefined);
    });

    test("no session: API paths get 401 JSON (no redirect), nothing reaches Ollama", async () => {
        fresh();
        for (const path of ["/api/tags", "/v1/models"]) {
            const r = await sb.request({ path, device: "alice-laptop" });
            assert.equal(r.status, 401, `${path}: ${r.body}`);
            assert.equal(r.headers.location, undefined);
            assert.match(String(r.headers["content-type"]), /json/);
            assert.equal(errorCode(r), "unauthenticated");
        }
        // A token nobody issued is no session either.
        const bogus = await sb.request({ path: "/api/tags", device: "alice-laptop", headers: { Authorization: "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0." } });
        assert.equal(bogus.status, 401);
        assert.deepEqual(sb.ollamaRequests(), []);
    });

    test("no session: a browser path is redirected to sign-in, nothing reaches Ollama", async () => {
        fresh();
        const r = await sb.request({ path: "/chat/room-1", device: "alice-laptop", headers: { Accept: "text/html" } });
        assert.equal(r.status, 302, r.body);
        assert.equal(r.headers.location, "/oauth2/start?rd=/chat/room-1");
        assert.deepEqual(sb.ollamaRequests(), []);
    });

    test("identity headers forged by the client never reach Ollama", async () => {
        fresh();
        const forged = { "X-Auth-Request-User": "admin@corp.example", "X-Auth-Request-Email": "admin@corp.example", "X-Auth-Request-Groups": `${ML},admins`, "X-Device-Name": "someone-else" };
        const anon = await sb.request({ path: "/api/tags", device: "alice-laptop", headers: forged });
        assert.equal(anon.status, 401, "forged headers are no session");
        assert.deepEqual(sb.ollamaRequests(), []);
        const signedIn = await sb.request({ path: "/api/tags", device: "alice-laptop", user: ALICE, headers: forged });
        assert.equal(signedIn.status, 200);
        const [got] = sb.ollamaRequests();
        assert.equal(got.headers["x-auth-request-user"], ALICE, "the gateway's value, not the client's");
        assert.equal(got.headers["x-auth-request-email"], ALICE);
        assert.equal(got.headers["x-auth-request-groups"], ML);
        assert.equal(got.headers["x-device-name"], "alice-laptop");
        assert.ok(!JSON.stringify(got.rawHeaders).includes("admin@corp.example"));
    });

    // oauth2-proxy (v7.15.6, checked against the real binary in signin-real.test.ts) answers 401 for
    // a session or token whose user fails the allowlist, so the gateway asks for sign-in again.
    test("users outside the allowed groups or domains are refused at the gateway", async () => {
        fresh();
        for (const user of [MALLORY, EVE]) {
            for (const auth of ["cookie", "bearer"] as const) {
                const r = await sb.request({ path: "/api/tags", device: "alice-laptop", user, auth });
                assert.equal(r.status, 401, `${user} via ${auth}: ${r.body}`);
                assert.equal(errorCode(r), "unauthenticated");
            }
        }
        assert.deepEqual(sb.ollamaRequests(), []);
    });

    test("device API key: accepted with its own device's cert, identity = the device owner, key never forwarded or logged", async () => {
        fresh();
        const key = sb.info.devices["ci-runner"].apiKey;
        assert.ok(key, "sandbox.json lists the key of an apiKey device");
        const r = await sb.request({ path: "/api/tags", device: "ci-runner", headers: { Authorization: `Bearer ${key}` } });
        assert.equal(r.status, 200, r.body);
        const [got] = sb.ollamaRequests();
        assert.equal(got.headers["x-auth-request-user"], CI);
        assert.equal(got.headers["x-auth-request-groups"], ML);
        assert.equal(got.headers["x-device-name"], "ci-runner");
        assert.equal(got.headers.authorization, undefined);
        // The device's own key is decided at the gateway: oauth2-proxy never sees it.
        const oauth2Seen = readJsonLines<Oauth2LogEntry>(sb.info.oauth2Proxy!.log);
        assert.ok(!JSON.stringify(oauth2Seen).includes(key), "the key reached oauth2-proxy");
        for (const file of [sb.info.gateway.accessLog, sb.info.gateway.errorLog, sb.info.gateway.config]) {
            assert.ok(!readFileSync(file, "utf8").includes(key), `key found in ${file}`);
        }
    });

    test("device API key: a wrong key, or the key with another device's cert, is refused", async () => {
        fresh();
        const key = sb.info.devices["ci-runner"].apiKey!;
        const wrong = await sb.request({ path: "/api/tags", device: "ci-runner", headers: { Authorization: `Bearer ${FORGED_KEY}` } });
        assert.equal(wrong.status, 401, wrong.body);
        assert.equal(errorCode(wrong), "api_key_invalid");
        const almost = await sb.request({ path: "/api/tags", device: "ci-runner", headers: { Authorization: `Bearer ${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}` } });
        assert.equal(almost.status, 401);
        const oauth2Before = readJsonLines<Oauth2LogEntry>(sb.info.oauth2Proxy!.log).length;
        const stolen = await sb.request({ path: "/api/tags", device: "alice-laptop", headers: { Authorization: `Bearer ${key}` } });
        assert.equal(stolen.status, 401, "a key only counts with the certificate of its own device");
        assert.equal(errorCode(stolen), "api_key_invalid");
        assert.equal(readJsonLines<Oauth2LogEntry>(sb.info.oauth2Proxy!.log).length, oauth2Before, "refused at the gateway, not passed on to oauth2-proxy");
        assert.deepEqual(sb.ollamaRequests(), []);
        // Without a key the keyed device falls back to sign-in like any other.
        const noKey = await sb.request({ path: "/api/tags", device: "ci-runner" });
        assert.equal(noKey.status, 401);
        assert.equal(errorCode(noKey), "unauthenticated");
        const viaSession = await sb.request({ path: "/api/tags", device: "ci-runner", user: CI });
        assert.equal(viaSession.status, 200);
        assert.equal(sb.ollamaRequests().length, 1);
    });

    test("the sign-in endpoints are rate limited per client address", async () => {
        fresh();
        const statuses: number[] = [];
        for (let i = 0; i < 15; i++) statuses.push((await sb.request({ path: "/oauth2/sign_in", device: "alice-laptop" })).status);
        assert.equal(statuses[0], 200);
        const firstLimited = statuses.indexOf(429);
        assert.ok(firstLimited > 0, `no 429 in ${statuses.join(",")}`);
        assert.ok(statuses.slice(firstLimited).every((s) => s === 429), `limit released too early: ${statuses.join(",")}`);
        assert.deepEqual(sb.ollamaRequests(), []);
    });
});

runApiKeyChecks("nginx");
