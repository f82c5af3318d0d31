/**
 * Sessions with Entra-sized tokens (issue 21, items 1 and 5) through the real nginx: the pinned
 * oauth2-proxy binary with the rendered flags, a real OpenID provider whose ID tokens carry 200
 * group ids (Entra's most before it switches to the overage claim), and the rendered redis.conf under
 * Debian's redis-server. Sign-in completes, the session survives a forced refresh (cookie-refresh
 * passed, the first ID token expired), every request after it reaches the stub Ollama as the user,
 * and oauth2-proxy's audit lines name the client's address, not the gateway's. A second stack keeps
 * the session in cookies (oidc) to measure what the store saves the browser from.
 * Missing redis-server, oauth2-proxy build: the suite fails, never skips.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { OAUTH2_PROXY_COOKIE_NAME } from "../../components/identity/oauth2-proxy-settings";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import type { IdpLogEntry } from "../../scripts/sandbox/openid-provider";
import { delay } from "../../scripts/sandbox/processes";
import { toolPath } from "../../scripts/lib/tools";
import { ALICE, ML, TENANT } from "./corp-identities";
import { startSandbox, type Sandbox } from "./harness";
import { idTokenFromProvider, signInThroughGateway, type SignInClient } from "../../scripts/sandbox/sign-in";
import { CAROL, startPartnerOidcSandbox } from "./signin";

/** Random group object ids, as Entra puts them in the groups claim (random, so oauth2-proxy's compression gains what it would on real ones). */
const groupIds = (n: number) => Array.from({ length: n }, () => randomUUID());
/** Entra's limit for groups in an ID token; one more and it sends the overage claim instead. */
const ENTRA_MAX_GROUPS = 200;
const LARGE = "large@corp.example";
const LARGE_GROUPS = [ML, ...groupIds(ENTRA_MAX_GROUPS - 1)];
/** The large user's ID tokens expire before the session is refreshed, so only a refreshed session is still valid. */
const LARGE_TTL_SECONDS = 40;
/** The client connects from here; the gateway connects to oauth2-proxy from 127.0.0.1. */
const CLIENT_ADDRESS = "127.0.0.2";

const missingBinary = existsSync(toolPath("oauth2Proxy")) ? undefined : `${toolPath("oauth2Proxy")} is not built (npm run tools:build)`;
const missingRedis = spawnSync("redis-server", ["--version"], { encoding: "utf8" }).status === 0 ? undefined : "redis-server is not installed (sudo apt-get install redis-server)";

/** redis-cli against the sandbox's store; the password travels in the environment, never on the command line. */
function redisCli(sb: Sandbox, args: string[], withPassword = true): string {
    const store = sb.info.sessionStore!;
    const url = new URL(store.url);
    const r = spawnSync("redis-cli", ["-h", url.hostname, "-p", url.port, ...args], { encoding: "utf8", timeout: 15_000, env: { PATH: process.env.PATH, ...(withPassword ? { REDISCLI_AUTH: store.password } : {}) } });
    assert.equal(r.error, undefined, String(r.error));
    return `${r.stdout}${r.stderr}`.trim();
}

/** The session cookies the client holds: one ticket with the store, `_0`, `_1`, ... when oauth2-proxy had to split the session. */
function sessionCookies(client: SignInClient): { names: string[]; bytes: number } {
    const host = new URL(client.gatewayOrigin).host;
    const names = client.jar.names(host).filter((n) => n === OAUTH2_PROXY_COOKIE_NAME || n.startsWith(`${OAUTH2_PROXY_COOKIE_NAME}_`));
    return { names, bytes: names.reduce((sum, n) => sum + n.length + 1 + client.jar.get(host, n)!.value.length, 0) };
}

describe("Entra-sized sessions in the Redis session store, through the real nginx and the real oauth2-proxy", () => {
    let sb: Sandbox;
    before(async () => {
        assert.equal(missingBinary, undefined, missingBinary);
        assert.equal(missingRedis, undefined, missingRedis);
        sb = await startSandbox({
            config: {
                domain: "ollama.corp.example",
                devices: [{ name: "alice-laptop", owner: ALICE, groups: [ML] }],
                // sessionStore is left at its default (redis); the refresh is due after one minute.
                identity: { provider: "entra", tenantId: TENANT, allowedGroups: [ML], allowedEmailDomains: ["corp.example"], cookieExpireHours: 1, cookieRefreshMinutes: 1 },
                gateway: { authRateLimitPerMinute: 600, rateLimitPerMinute: 6000, burst: 1000 },
                filter: { enabled: false },
            },
            extraArgs: ["--idp", "real", "--user", `${LARGE}:${LARGE_GROUPS.join(",")}:${LARGE_TTL_SECONDS}`],
            readyTimeoutMs: 60_000,
        });
    });
    after(async () => {
        await sb?.stop();
    });

    test("the store runs the rendered redis.conf: no answer without the password, CONFIG refused, oauth2-proxy pointed at it", () => {
        assert.ok(sb.info.sessionStore, "sandbox.json names the session store");
        assert.match(redisCli(sb, ["PING"], false), /NOAUTH/);
        assert.equal(redisCli(sb, ["PING"]), "PONG");
        assert.match(redisCli(sb, ["CONFIG", "GET", "requirepass"]), /unknown command/i);
        assert.match(redisCli(sb, ["KEYS", "*"]), /unknown command/i);
        const args = sb.info.oauth2Proxy!.args!;
        assert.ok(args.includes("--session-store-type=redis") && args.includes(`--redis-connection-url=${sb.info.sessionStore!.url}`), args.join(" "));
        assert.ok(!args.some((a) => a.includes(sb.info.sessionStore!.password)), "the store password is not on oauth2-proxy's command line");
    });

    test("200 group claims: sign-in completes, the cookie is one small ticket, the session lives in Redis; a forced refresh keeps it working and the client's address is in the audit log", async (t) => {
        const password = sb.info.users[LARGE].password!;
        const idToken = await idTokenFromProvider(sb.info, LARGE, password);
        sb.resetOllamaLog();
        // The sandbox signed every user in at start (from 127.0.0.1); this sign-in's audit lines come after those.
        const ownSignInFrom = readFileSync(sb.info.oauth2Proxy!.log, "utf8").length;
        const { client } = await signInThroughGateway(sb.info, "alice-laptop", LARGE, password, "/chat", CLIENT_ADDRESS);
        const signedInAt = Date.now();
        const callback = client.callbackHop();
        assert.equal(callback?.status, 302, JSON.stringify(client.hops));
        const cookies = sessionCookies(client);
        assert.deepEqual(cookies.names, [OAUTH2_PROXY_COOKIE_NAME], "one cookie, never split");
        assert.ok(cookies.bytes < 1024, `the ticket cookie is ${cookies.bytes} bytes`);
        const keys = redisCli(sb, ["--scan"]).split("\n").filter(Boolean);
        assert.ok(keys.length >= 1, "the session is in the store");
        const stored = Math.max(...keys.map((k) => Number(redisCli(sb, ["STRLEN", k]))));
        // The cookie store would put this (base64, plus signature and timestamp) into cookies.
        assert.ok(stored * 4 / 3 > 8192, `the stored session is ${stored} bytes: not Entra-sized`);
        t.diagnostic(`ID token ${idToken.length} bytes with ${LARGE_GROUPS.length} groups; session in Redis ${stored} bytes (as cookies about ${Math.ceil(stored * 4 / 3)} bytes); browser cookie ${cookies.bytes} bytes`);

        const first = await client.send("/api/tags");
        assert.equal(first.status, 200, first.body);
        const [seen] = sb.ollamaRequests();
        assert.equal(seen.headers["x-auth-request-email"], LARGE);
        assert.deepEqual(String(seen.headers["x-auth-request-groups"]).split(","), LARGE_GROUPS, "every group reaches Ollama's caller, past nginx's default 4 KB answer buffer");
        assert.equal(seen.headers.cookie, undefined);

        // The session's age passes cookie-refresh (1 min); the first ID token has expired by then.
        const tokenCalls = () => readJsonLines<IdpLogEntry>(sb.info.idp!.log).filter((e) => e.path === "/token" && e.method === "POST" && e.status === 200).length;
        const before = tokenCalls();
        await delay(Math.max(0, signedInAt + 62_000 - Date.now()));
        sb.resetOllamaLog();
        const refreshed = await client.send("/api/tags");
        assert.equal(refreshed.status, 200, refreshed.body);
        assert.equal(tokenCalls(), before + 1, "oauth2-proxy redeemed the refresh token at the provider");
        const log = readFileSync(sb.info.oauth2Proxy!.log, "utf8");
        assert.match(log, new RegExp(`Refreshing session - User: \\S+; SessionAge`));
        assert.deepEqual(sessionCookies(client).names, [OAUTH2_PROXY_COOKIE_NAME], "still one cookie after the refresh");
        // After the refresh (the original defect: a split session no longer decoded) every request still passes as the user.
        const after = await client.send("/api/tags");
        assert.equal(after.status, 200, after.body);
        const seenAfter = sb.ollamaRequests();
        assert.equal(seenAfter.length, 2);
        for (const r of seenAfter) {
            assert.equal(r.headers["x-auth-request-email"], LARGE);
            assert.equal(String(r.headers["x-auth-request-groups"]).split(",").length, LARGE_GROUPS.length);
        }

        // Item 5: oauth2-proxy's audit line for this sign-in names the client's address, not the gateway's.
        const auth = log.slice(ownSignInFrom).split("\n").filter((l) => l.includes(LARGE) && /\[AuthSuccess\]/.test(l));
        assert.ok(auth.length >= 1, `no AuthSuccess line for ${LARGE} in:\n${log.slice(-2000)}`);
        for (const line of auth) assert.ok(line.startsWith(`${CLIENT_ADDRESS} `), `audit line does not start with the client address ${CLIENT_ADDRESS}: ${line}`);
        t.diagnostic(`refresh after ${Math.round((Date.now() - signedInAt) / 1000)} s; audit: ${auth[0].slice(0, 120)}`);
    });
});

describe("the same tokens in the cookie session store (oidc): what the Redis store saves the browser from", () => {
    /** Enough groups that the session no longer fits 8 KB of cookies, few enough for nginx's 16 KB request headers. */
    const GROUPS = groupIds(100);
    let sb: Sandbox;
    before(async () => {
        assert.equal(missingBinary, undefined, missingBinary);
        sb = await startPartnerOidcSandbox({ sessionStore: "cookie" }, [`${CAROL}:${GROUPS.join(",")}`]);
    });
    after(async () => {
        await sb?.stop();
    });

    test("a session over 8 KB is split into several cookies; the callback that sets them passes nginx (answer buffers), and so does the next request", async (t) => {
        assert.equal(sb.info.sessionStore, undefined, "no store with sessionStore: cookie");
        const { client } = await signInThroughGateway(sb.info, "carol-laptop", CAROL, sb.info.users[CAROL].password!, "/chat");
        const callback = client.callbackHop();
        assert.equal(callback?.status, 302, `the callback with its large Set-Cookie headers: ${JSON.stringify(client.hops)}`);
        const cookies = sessionCookies(client);
        assert.ok(cookies.bytes > 8192, `cookies ${cookies.bytes} bytes: not large enough to show the split`);
        assert.ok(cookies.names.length >= 3, `split into ${cookies.names.join(", ")}`);
        t.diagnostic(`cookie store: ${GROUPS.length} groups -> ${cookies.names.length} cookies (${cookies.names.join(", ")}), ${cookies.bytes} bytes`);
        sb.resetOllamaLog();
        const r = await client.send("/api/tags");
        assert.equal(r.status, 200, r.body);
        assert.equal(sb.ollamaRequests()[0]?.headers["x-auth-request-email"], CAROL);
    });
});
