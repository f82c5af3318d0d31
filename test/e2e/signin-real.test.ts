/**
 * Real sign-in (seed 000) through the real nginx: the pinned oauth2-proxy binary, started with the
 * OAuth2Proxy component's rendered flags, against a real OpenID provider (oidc-provider), first
 * with a cookie-keeping HTTP client, then in headless Chromium with the device certificate in its
 * NSS store. Every refusal is checked at the client and in the stub Ollama's request log.
 * A missing oauth2-proxy build or Chromium fails the suite (never skipped); npm test's prerequisite check names it first.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { OAUTH2_PROXY_COOKIE_NAME, renderOAuth2ProxySettings } from "../../components/identity/oauth2-proxy-settings";
import { parseStackConfig } from "../../components/config";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import type { IdpLogEntry } from "../../scripts/sandbox/openid-provider";
import { delay } from "../../scripts/sandbox/processes";
import { toolPath } from "../../scripts/lib/tools";
import { browserPrerequisiteMissing, launchBrowser } from "./browser";
import { ALICE, MALLORY, ML, OTHER, TENANT } from "./corp-identities";
import { REPO_ROOT, startSandbox, type Sandbox } from "./harness";
import { idTokenFromProvider, jwtClaims, SignInClient, signInThroughGateway } from "../../scripts/sandbox/sign-in";
import { CAROL, foreignJwt, startPartnerOidcSandbox } from "./signin";

/** Allowed, with ID tokens that live a few seconds. */
const BRIEF = "brief@corp.example";
const BRIEF_TTL_SECONDS = 4;

const CONFIG = {
    domain: "ollama.corp.example",
    devices: [{ name: "alice-laptop", owner: ALICE, groups: [ML] }],
    identity: { provider: "entra", tenantId: TENANT, allowedGroups: [ML], allowedEmailDomains: ["corp.example"] },
    gateway: { authRateLimitPerMinute: 600, rateLimitPerMinute: 6000, burst: 1000 },
    filter: { enabled: false },
};
const ARTIFACTS = join(REPO_ROOT, "test-artifacts", "signin");

const missingBinary = existsSync(toolPath("oauth2Proxy")) ? undefined : `${toolPath("oauth2Proxy")} is not built (npm run tools:build)`;
const missingBrowser = browserPrerequisiteMissing();

describe("real sign-in: oauth2-proxy (pinned binary) + OpenID provider through the real nginx", () => {
    let sb: Sandbox;
    const password = (email: string) => sb.info.users[email].password!;
    before(async () => {
        // The real programs are a requirement: a missing one fails here, it is never skipped.
        assert.equal(missingBinary, undefined, missingBinary);
        sb = await startSandbox({ config: CONFIG, extraArgs: ["--idp", "real", "--user", `${MALLORY}:${OTHER}`, "--user", `${BRIEF}:${ML}:${BRIEF_TTL_SECONDS}`], readyTimeoutMs: 60_000 });
        mkdirSync(ARTIFACTS, { recursive: true });
    });
    after(async () => {
        await sb?.stop();
    });

    test("oauth2-proxy runs exactly the component's rendered flags (only the placement differs)", () => {
        const parsed = parseStackConfig(CONFIG);
        assert.ok(parsed.ok);
        const o = sb.info.oauth2Proxy!;
        assert.equal(o.kind, "real");
        const listen = new URL(o.url);
        const expected = renderOAuth2ProxySettings({
            identity: parsed.config.identity,
            domain: CONFIG.domain,
            port: Number(new URL(sb.info.url).port),
            clientId: sb.info.idp!.clientId,
            placement: { httpAddress: listen.host, authenticatedEmailsFile: join(sb.stateDir, "authenticated-emails.txt"), issuerUrl: sb.info.idp!.issuer, sessionStoreUrl: sb.info.sessionStore?.url },
        });
        assert.deepEqual(o.args, expected.args);
        assert.ok(o.args!.includes("--provider=entra-id") && o.args!.includes("--skip-jwt-bearer-tokens=true"));
        assert.ok(!o.args!.some((a) => a.includes(sb.info.idp!.clientSecret)), "no secret on the command line");
    });

    test("the binary refuses a flag it does not know, so a clean start vouches for every rendered flag", () => {
        const r = spawnSync(toolPath("oauth2Proxy"), [...sb.info.oauth2Proxy!.args!, "--cookie-secure-typo=true"], { encoding: "utf8", timeout: 15_000, env: { PATH: process.env.PATH } });
        assert.notEqual(r.status, 0);
        assert.match(`${r.stdout}${r.stderr}`, /unknown flag: --cookie-secure-typo/);
    });

    test("seed 000 with an HTTP client: 401 for the API, 302 to sign-in, provider login with PKCE, __Host- cookie, retry reaches Ollama as the user", async (t) => {
        sb.resetOllamaLog();
        const probe = new SignInClient(sb.info, "alice-laptop");
        const api = await probe.send("/api/tags");
        assert.equal(api.status, 401, "API clients get 401, not a redirect");
        assert.match(String(api.headers["content-type"]), /json/);

        const { client, final, signInMs } = await signInThroughGateway(sb.info, "alice-laptop", ALICE, password(ALICE), "/chat");
        const h = client.hops;
        const issuer = sb.info.idp!.issuer;
        assert.equal(h[0].status, 302, "the gateway sends a page without a session to sign-in");
        assert.equal(h[0].location, "/oauth2/start?rd=/chat");
        assert.equal(h[1].status, 302);
        const authorize = new URL(h[1].location!);
        assert.equal(authorize.origin, issuer, "oauth2-proxy sends the browser to the provider");
        assert.equal(authorize.searchParams.get("code_challenge_method"), "S256");
        assert.ok(authorize.searchParams.get("code_challenge"), "PKCE challenge present");
        assert.equal(authorize.searchParams.get("redirect_uri"), `${client.gatewayOrigin}/oauth2/callback`);
        const callback = client.callbackHop();
        assert.ok(callback, `no callback hop in ${JSON.stringify(h)}`);
        assert.equal(callback.status, 302);
        assert.equal(callback.location, "/chat", "back to where the user started");

        const cookie = client.jar.get(new URL(client.gatewayOrigin).host, OAUTH2_PROXY_COOKIE_NAME);
        assert.ok(cookie, `no ${OAUTH2_PROXY_COOKIE_NAME} cookie; cookies: ${client.jar.names(new URL(client.gatewayOrigin).host)}`);
        assert.ok(cookie.secure && cookie.httpOnly && cookie.path === "/", cookie.setCookie);
        assert.doesNotMatch(cookie.setCookie, /domain=/i, "__Host- cookies carry no Domain");
        assert.match(cookie.setCookie, /samesite=lax/i);
        assert.notEqual(final.status, 200, "/chat is no Ollama route: refused even when signed in");
        assert.deepEqual(sb.ollamaRequests(), [], "nothing reached Ollama during sign-in");

        const retry = await client.send("/api/tags");
        assert.equal(retry.status, 200, retry.body);
        const seen = sb.ollamaRequests();
        assert.equal(seen.length, 1);
        assert.equal(seen[0].headers["x-auth-request-email"], ALICE);
        assert.equal(seen[0].headers["x-auth-request-user"], ALICE);
        assert.equal(seen[0].headers["x-auth-request-groups"], ML);
        assert.equal(seen[0].headers.cookie, undefined, "the session cookie never goes upstream");
        const idpLog = readJsonLines<IdpLogEntry>(sb.info.idp!.log);
        assert.ok(idpLog.some((e) => e.path === "/token" && e.method === "POST" && e.status === 200), "oauth2-proxy redeemed the code at the provider");
        t.diagnostic(`HTTP client sign-in (gateway 302 -> callback): ${signInMs} ms over ${h.length} hops`);
    });

    test("bearer: the provider's JWT passes; a foreign-signed or expired one gets 401 JSON; nothing reaches Ollama for those", async () => {
        sb.resetOllamaLog();
        const client = new SignInClient(sb.info, "alice-laptop");
        const jwt = await idTokenFromProvider(sb.info, ALICE, password(ALICE));
        const ok = await client.send("/api/tags", { headers: { Authorization: `Bearer ${jwt}` } });
        assert.equal(ok.status, 200, ok.body);
        const [seen] = sb.ollamaRequests();
        assert.equal(seen.headers["x-auth-request-email"], ALICE);
        assert.equal(seen.headers.authorization, undefined, "the token is not forwarded");

        sb.resetOllamaLog();
        const claims = jwtClaims(jwt);
        const forged = foreignJwt({ ...claims, exp: Math.floor(Date.now() / 1000) + 3600 });
        const foreign = await client.send("/api/tags", { headers: { Authorization: `Bearer ${forged}` } });
        assert.equal(foreign.status, 401, foreign.body);
        assert.match(String(foreign.headers["content-type"]), /json/);

        const brief = await idTokenFromProvider(sb.info, BRIEF, password(BRIEF));
        const exp = Number(jwtClaims(brief).exp) * 1000;
        await delay(Math.max(0, exp - Date.now()) + 1500);
        const expired = await client.send("/api/tags", { headers: { Authorization: `Bearer ${brief}` } });
        assert.equal(expired.status, 401, expired.body);
        assert.match(String(expired.headers["content-type"]), /json/);
        assert.deepEqual(sb.ollamaRequests(), []);
    });

    // oauth2-proxy v7.15.6 answers /oauth2/auth with 401 (and clears the session) when the user fails
    // --allowed-group or --email-domain; 403 there only comes from per-request ?allowed_groups.
    test("a user outside allowedGroups: the callback answers 403 and sets no session; their bearer JWT gets 401 JSON; Ollama saw nothing", async () => {
        sb.resetOllamaLog();
        const { client } = await signInThroughGateway(sb.info, "alice-laptop", MALLORY, password(MALLORY), "/chat");
        const callback = client.callbackHop();
        assert.equal(callback?.status, 403, JSON.stringify(client.hops));
        assert.equal(client.jar.get(new URL(client.gatewayOrigin).host, OAUTH2_PROXY_COOKIE_NAME), undefined);
        const jwt = await idTokenFromProvider(sb.info, MALLORY, password(MALLORY));
        const r = await client.send("/api/tags", { headers: { Authorization: `Bearer ${jwt}` } });
        assert.equal(r.status, 401, r.body);
        assert.match(String(r.headers["content-type"]), /json/);
        assert.deepEqual(sb.ollamaRequests(), []);
    });

    test("headless Chromium: device certificate from its NSS store (picked by policy), provider login, then the API as the user", async (t) => {
        assert.equal(missingBrowser, undefined, missingBrowser);
        sb.resetOllamaLog();
        const gatewayOrigin = `https://${sb.info.domain}:${new URL(sb.info.url).port}`;
        const device = sb.info.devices["alice-laptop"];
        const browser = await launchBrowser({ gatewayOrigin, domain: sb.info.domain, ca: sb.info.ca, device });
        try {
            const page = await browser.context.newPage();
            const t0 = performance.now();
            await page.goto(`${gatewayOrigin}/chat`);
            await page.waitForSelector("#email", { timeout: 30_000 });
            assert.equal(new URL(page.url()).origin, sb.info.idp!.issuer, "the gateway sent the browser to the provider");
            await page.screenshot({ path: join(ARTIFACTS, "chromium-login.png") });
            await page.fill("#email", ALICE);
            await page.fill("#password", password(ALICE));
            await Promise.all([page.waitForURL((u) => u.origin === gatewayOrigin && u.pathname === "/chat", { timeout: 30_000 }), page.click("#sign-in")]);
            const signInMs = Math.round(performance.now() - t0);
            const cookies = await browser.context.cookies(gatewayOrigin);
            const session = cookies.find((c) => c.name === OAUTH2_PROXY_COOKIE_NAME);
            assert.ok(session?.secure && session.httpOnly && session.path === "/", JSON.stringify(cookies));
            assert.deepEqual(sb.ollamaRequests(), []);
            // The gateway's CSP forbids scripts from fetching, so the retry is a navigation, as a user would do.
            const answer = await page.goto(`${gatewayOrigin}/api/tags`);
            assert.equal(answer?.status(), 200, await answer?.text());
            await page.screenshot({ path: join(ARTIFACTS, "chromium-signed-in.png") });
            const seen = sb.ollamaRequests();
            assert.equal(seen.length, 1);
            assert.equal(seen[0].headers["x-auth-request-email"], ALICE);
            assert.equal(seen[0].headers["x-auth-request-user"], ALICE);
            assert.equal(seen[0].headers["x-auth-request-groups"], ML);
            t.diagnostic(`Chromium sign-in (first navigation -> back at /chat signed in): ${signInMs} ms; screenshots in ${ARTIFACTS}`);
        } finally {
            await browser.close();
        }
    });

    // Last: it stops oauth2-proxy for good.
    test("oauth2-proxy down: the gateway fails closed for a signed-in session and Ollama sees nothing", async () => {
        const { client } = await signInThroughGateway(sb.info, "alice-laptop", ALICE, password(ALICE), "/chat");
        sb.resetOllamaLog();
        const pid = sb.info.oauth2Proxy!.pid!;
        process.kill(pid, "SIGTERM");
        for (let i = 0; i < 100; i++) {
            try {
                process.kill(pid, 0);
            } catch {
                break;
            }
            await delay(50);
        }
        assert.throws(() => process.kill(pid, 0), "oauth2-proxy is gone");
        const r = await client.send("/api/tags");
        assert.ok(r.status >= 500 && r.status <= 504, `expected a 5xx refusal, got ${r.status}: ${r.body}`);
        assert.match(String(r.headers["content-type"]), /json/);
        assert.deepEqual(sb.ollamaRequests(), []);
    });
});

describe("real sign-in with identity.provider oidc: the emails file, extra audience and cookie timing flags under the real binary", () => {
    let sb: Sandbox;
    before(async () => {
        assert.equal(missingBinary, undefined, missingBinary);
        sb = await startPartnerOidcSandbox({ extraAudiences: ["api://zto-cli"], cookieExpireHours: 12, cookieRefreshMinutes: 15 }, ["dave@partner.example:"]);
    });
    after(async () => {
        await sb?.stop();
    });

    test("an allowed email signs in and reaches Ollama; an unlisted one is refused at the callback", async () => {
        const args = sb.info.oauth2Proxy!.args!;
        assert.ok(args.includes("--provider=oidc") && args.includes("--oidc-extra-audience=api://zto-cli") && args.some((a) => a.startsWith("--authenticated-emails-file=")));
        assert.equal(sb.info.idp!.clientId, "ollama-gateway", "the stack's own client id");
        sb.resetOllamaLog();
        const { client } = await signInThroughGateway(sb.info, "carol-laptop", CAROL, sb.info.users[CAROL].password!, "/chat");
        const r = await client.send("/api/tags");
        assert.equal(r.status, 200, r.body);
        assert.equal(sb.ollamaRequests()[0]?.headers["x-auth-request-email"], CAROL);

        sb.resetOllamaLog();
        const dave = await signInThroughGateway(sb.info, "carol-laptop", "dave@partner.example", sb.info.users["dave@partner.example"].password!, "/chat");
        const callback = dave.client.callbackHop();
        assert.equal(callback?.status, 403, JSON.stringify(dave.client.hops));
        assert.equal((await dave.client.send("/api/tags")).status, 401);
        assert.deepEqual(sb.ollamaRequests(), []);
    });
});
