import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, test } from "node:test";
import { parseStackConfig, type ConfigProblem, type IdentityConfig } from "../../components/config";
import { apiKeyDigest, API_KEY_PATTERN } from "../../components/identity/api-keys";
import { rotationWindow } from "../../components/identity/entra";
import { SESSION_COOKIE } from "../../scripts/sandbox/stub-oauth2-proxy";
import {
    AUTHENTICATED_EMAILS_FILE,
    OAUTH2_PROXY_COOKIE_NAME,
    callbackUrl,
    cookieSecretFromBase64,
    entraIssuerUrl,
    publicOrigin,
    renderOAuth2ProxySettings,
    scopesOf,
    ENTRA_GROUP_CLAIM_LIMIT,
} from "../../components/identity/oauth2-proxy-settings";

const TENANT = "00000000-1111-2222-3333-444444444444";
const GROUP = "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
const CLIENT_ID = "11111111-2222-3333-4444-555555555555";

function identity(raw: Record<string, unknown>, extra: Record<string, unknown> = {}): IdentityConfig {
    const r = parseStackConfig({ domain: "ollama.corp.example.com", identity: raw, ...extra });
    assert.ok(r.ok, `config rejected: ${JSON.stringify(!r.ok && r.problems)}`);
    return r.config.identity;
}

function problemsOf(raw: Record<string, unknown>): ConfigProblem[] {
    const r = parseStackConfig({ domain: "ollama.corp.example.com", ...raw });
    assert.equal(r.ok, false, "expected the config to be rejected");
    return r.ok ? [] : r.problems;
}

/** Flags every rendering has, after provider/issuer/client/redirect; changing one must be deliberate. */
const COMMON_FLAGS = [
    "--http-address=0.0.0.0:4180",
    "--reverse-proxy=true",
    "--real-client-ip-header=X-Real-IP",
    "--set-xauthrequest=true",
    "--upstream=static://202",
    "--skip-provider-button=true",
    "--code-challenge-method=S256",
    "--insecure-oidc-skip-nonce=false",
    "--scope=openid email profile offline_access",
    "--cookie-name=__Host-oauth2_proxy",
    "--cookie-secure=true",
    "--cookie-httponly=true",
    "--cookie-samesite=lax",
    "--cookie-path=/",
];
const LOGGING_FLAGS = ["--auth-logging=true", "--standard-logging=true", "--request-logging=false", "--silence-ping-logging=true"];

describe("oauth2-proxy settings", () => {
    test("entra: exact flags, v2.0 tenant issuer, redirect without :443, groups AND domain", () => {
        const s = renderOAuth2ProxySettings({ identity: identity({ provider: "entra", tenantId: TENANT, allowedGroups: [GROUP], allowedEmailDomains: ["corp.example.com"] }), domain: "ollama.corp.example.com", port: 443, clientId: CLIENT_ID });
        assert.deepEqual(s.args, [
            "--provider=entra-id",
            `--oidc-issuer-url=https://login.microsoftonline.com/${TENANT}/v2.0`,
            `--client-id=${CLIENT_ID}`,
            "--redirect-url=https://ollama.corp.example.com/oauth2/callback",
            ...COMMON_FLAGS,
            "--cookie-expire=8h",
            "--cookie-refresh=60m",
            "--session-store-type=redis",
            "--redis-connection-url=redis://session-store:6379",
            "--api-route=^/api/",
            "--api-route=^/v1/",
            "--skip-jwt-bearer-tokens=true",
            `--allowed-group=${GROUP}`,
            "--email-domain=corp.example.com",
            ...LOGGING_FLAGS,
        ]);
        assert.equal(s.authenticatedEmails, undefined);
    });

    test("oidc: any https issuer, port kept in the redirect URI, emails file, extra audience, cookie timing from config", () => {
        const id = identity(
            { provider: "oidc", issuerUrl: "https://keycloak.example.com/realms/main", clientId: "ollama-gateway", allowedEmails: ["Alice@Example.com", "bob@partner.example"], extraAudiences: ["api://default"], cookieExpireHours: 12, cookieRefreshMinutes: 15 },
            { oidcClientSecret: "x" },
        );
        const s = renderOAuth2ProxySettings({ identity: id, domain: "ollama.example.com", port: 8443, clientId: "ollama-gateway" });
        assert.deepEqual(s.args, [
            "--provider=oidc",
            "--oidc-issuer-url=https://keycloak.example.com/realms/main",
            "--client-id=ollama-gateway",
            "--redirect-url=https://ollama.example.com:8443/oauth2/callback",
            ...COMMON_FLAGS,
            "--cookie-expire=12h",
            "--cookie-refresh=15m",
            "--session-store-type=redis",
            "--redis-connection-url=redis://session-store:6379",
            "--api-route=^/api/",
            "--api-route=^/v1/",
            "--skip-jwt-bearer-tokens=true",
            "--oidc-extra-audience=api://default",
            `--authenticated-emails-file=${AUTHENTICATED_EMAILS_FILE}`,
            ...LOGGING_FLAGS,
        ]);
        // Emails only: no --email-domain at all, so nobody outside the file passes the email check.
        assert.ok(!s.args.some((a) => a.startsWith("--email-domain")));
        assert.equal(s.authenticatedEmails, "alice@example.com\nbob@partner.example\n");
    });

    test("the email check is opened with * only when groups restrict instead", () => {
        const groupsOnly = renderOAuth2ProxySettings({ identity: identity({ provider: "entra", tenantId: TENANT, allowedGroups: [GROUP] }), domain: "d.example", port: 443, clientId: CLIENT_ID });
        assert.deepEqual(groupsOnly.args.filter((a) => /^--(email-domain|allowed-group|authenticated-emails-file)=/.test(a)), [`--allowed-group=${GROUP}`, "--email-domain=*"]);
        const domainOnly = renderOAuth2ProxySettings({ identity: identity({ provider: "oidc", issuerUrl: "https://idp.example", clientId: "c", allowedEmailDomains: ["example.com"] }, { oidcClientSecret: "x" }), domain: "d.example", port: 443, clientId: "c" });
        assert.ok(!domainOnly.args.includes("--email-domain=*"));
        assert.ok(!domainOnly.args.some((a) => a.startsWith("--allowed-group")));
        // A hand-built config that skipped validation still cannot render an open proxy.
        const open = { ...identity({ provider: "entra", tenantId: TENANT, allowedGroups: [GROUP] }), allowedGroups: [] };
        assert.throws(() => renderOAuth2ProxySettings({ identity: open, domain: "d.example", port: 443, clientId: CLIENT_ID }), /allowlist is empty/);
    });

    test("no secret ever appears in the rendered arguments", () => {
        const s = renderOAuth2ProxySettings({ identity: identity({ provider: "entra", tenantId: TENANT, allowedGroups: [GROUP] }), domain: "d.example", port: 443, clientId: CLIENT_ID });
        assert.ok(!s.args.some((a) => /secret/i.test(a)), "client and cookie secrets travel only as environment variables");
    });

    test("secrets come back only as environment; a placement changes the listen address, emails file, issuer and session store address and nothing else", () => {
        const id = identity({ provider: "oidc", issuerUrl: "https://idp.example", clientId: "c", allowedEmails: ["a@example.com"] }, { oidcClientSecret: "x" });
        const container = renderOAuth2ProxySettings({ identity: id, domain: "d.example", port: 443, clientId: "c", secrets: { clientSecret: "s3cret", cookieSecretBase64: Buffer.alloc(32, 0xfb).toString("base64"), sessionStorePassword: "st0re" } });
        assert.deepEqual(container.env, ["OAUTH2_PROXY_CLIENT_SECRET=s3cret", `OAUTH2_PROXY_COOKIE_SECRET=${Buffer.alloc(32, 0xfb).toString("base64url")}`, "OAUTH2_PROXY_REDIS_PASSWORD=st0re"]);
        assert.ok(!container.args.some((a) => a.includes("st0re")));
        assert.ok(!container.args.some((a) => a.includes("s3cret")));
        assert.equal(renderOAuth2ProxySettings({ identity: id, domain: "d.example", port: 443, clientId: "c" }).env, undefined, "no secrets given, no env");
        const sandbox = renderOAuth2ProxySettings({ identity: id, domain: "d.example", port: 443, clientId: "c", placement: { httpAddress: "127.0.0.1:5000", authenticatedEmailsFile: "/state/emails.txt", issuerUrl: "https://127.0.0.1:6000", sessionStoreUrl: "redis://127.0.0.1:7000" } });
        const differing = container.args.map((a, i) => [a, sandbox.args[i]]).filter(([a, b]) => a !== b);
        assert.equal(sandbox.args.length, container.args.length);
        assert.deepEqual(differing, [
            ["--oidc-issuer-url=https://idp.example", "--oidc-issuer-url=https://127.0.0.1:6000"],
            ["--http-address=0.0.0.0:4180", "--http-address=127.0.0.1:5000"],
            ["--redis-connection-url=redis://session-store:6379", "--redis-connection-url=redis://127.0.0.1:7000"],
            [`--authenticated-emails-file=${AUTHENTICATED_EMAILS_FILE}`, "--authenticated-emails-file=/state/emails.txt"],
        ]);
    });

    test("scopes: User.Read only when an Entra groups claim can overflow (more allowedGroups than the claim holds); never for oidc", () => {
        const guid = (i: number) => `${i.toString(16).padStart(8, "0")}-4b5a-4978-8a9b-0c1d2e3f4a5b`;
        const withGroups = (n: number) => identity({ provider: "entra", tenantId: TENANT, allowedGroups: Array.from({ length: n }, (_, i) => guid(i)) });
        assert.deepEqual(scopesOf(withGroups(1)), ["openid", "email", "profile", "offline_access"]);
        assert.deepEqual(scopesOf(withGroups(ENTRA_GROUP_CLAIM_LIMIT)), ["openid", "email", "profile", "offline_access"]);
        assert.deepEqual(scopesOf(withGroups(ENTRA_GROUP_CLAIM_LIMIT + 1)), ["openid", "email", "profile", "offline_access", "User.Read"]);
        const s = renderOAuth2ProxySettings({ identity: withGroups(ENTRA_GROUP_CLAIM_LIMIT + 1), domain: "d.example", port: 443, clientId: CLIENT_ID });
        assert.ok(s.args.includes("--scope=openid email profile offline_access User.Read"));
        const many = Array.from({ length: ENTRA_GROUP_CLAIM_LIMIT + 1 }, (_, i) => `g${i}`);
        assert.ok(!scopesOf(identity({ provider: "oidc", issuerUrl: "https://idp.example", clientId: "c", allowedGroups: many }, { oidcClientSecret: "x" })).includes("User.Read"));
    });

    test("session store: cookie for an oidc stack that asks for it; redis needs its address and password, never takes credentials in the URL", () => {
        const cookie = identity({ provider: "oidc", issuerUrl: "https://idp.example", clientId: "c", allowedEmailDomains: ["example.com"], sessionStore: "cookie" }, { oidcClientSecret: "x" });
        const s = renderOAuth2ProxySettings({ identity: cookie, domain: "d.example", port: 443, clientId: "c", secrets: { clientSecret: "s", cookieSecretBase64: Buffer.alloc(32).toString("base64") } });
        assert.ok(s.args.includes("--session-store-type=cookie"));
        assert.ok(!s.args.some((a) => a.startsWith("--redis")));
        assert.ok(!s.env!.some((e) => e.startsWith("OAUTH2_PROXY_REDIS_PASSWORD=")));
        const redis = identity({ provider: "entra", tenantId: TENANT, allowedGroups: [GROUP] });
        const base = { identity: redis, domain: "d.example", port: 443, clientId: CLIENT_ID };
        assert.throws(() => renderOAuth2ProxySettings({ ...base, secrets: { clientSecret: "s", cookieSecretBase64: Buffer.alloc(32).toString("base64") } }), /no session store password/);
        for (const url of ["redis://user:pw@store:6379", "rediss://store:6379", "redis://store", "redis://store:6379/0"]) {
            assert.throws(() => renderOAuth2ProxySettings({ ...base, placement: { httpAddress: "127.0.0.1:1", authenticatedEmailsFile: "/x", sessionStoreUrl: url } }), /redis:\/\/host:port without credentials/, url);
        }
        assert.throws(() => renderOAuth2ProxySettings({ ...base, placement: { httpAddress: "127.0.0.1:1", authenticatedEmailsFile: "/x" } }), /session store URL/);
    });

    test("renderer refuses provider none and non-https issuers even without config validation", () => {
        const none = identity({});
        assert.throws(() => renderOAuth2ProxySettings({ identity: none, domain: "d.example", port: 443, clientId: "c" }), /entra or oidc/);
        const httpIssuer = { ...identity({ provider: "oidc", issuerUrl: "https://idp.example", clientId: "c", allowedEmailDomains: ["example.com"] }, { oidcClientSecret: "x" }), issuerUrl: "http://idp.example" };
        assert.throws(() => renderOAuth2ProxySettings({ identity: httpIssuer, domain: "d.example", port: 443, clientId: "c" }), /https/);
    });

    test("the sandbox's stub oauth2-proxy uses the cookie name the real one is configured with", () => {
        assert.equal(SESSION_COOKIE, OAUTH2_PROXY_COOKIE_NAME);
        assert.match(OAUTH2_PROXY_COOKIE_NAME, /^__Host-/);
    });

    test("public origin, callback and issuer helpers", () => {
        assert.equal(publicOrigin("a.example", 443), "https://a.example");
        assert.equal(publicOrigin("a.example", 8443), "https://a.example:8443");
        assert.equal(callbackUrl("a.example", 443), "https://a.example/oauth2/callback");
        assert.equal(entraIssuerUrl(TENANT), `https://login.microsoftonline.com/${TENANT}/v2.0`);
    });

    test("cookie secret: 32 random bytes become unpadded URL-safe base64 that decodes back to 32 bytes", () => {
        // 0xfb 0xff... encodes with '+' and '/' in standard base64, which oauth2-proxy would not decode.
        const raw = Buffer.alloc(32, 0xff);
        raw[0] = 0xfb;
        const std = raw.toString("base64");
        assert.match(std, /[+/=]/);
        const out = cookieSecretFromBase64(std);
        assert.doesNotMatch(out, /[+/=]/);
        assert.deepEqual(Buffer.from(out, "base64url"), raw);
        assert.throws(() => cookieSecretFromBase64(Buffer.alloc(16).toString("base64")), /32 bytes, got 16/);
    });
});

describe("identity config errors name the key", () => {
    const cases: { name: string; raw: Record<string, unknown>; path: string; says: RegExp }[] = [
        { name: "entra without tenantId", raw: { identity: { provider: "entra", allowedGroups: [GROUP] } }, path: "zero-trust-ollama:identity.tenantId", says: /required when identity.provider is "entra"/ },
        { name: "oidc without issuerUrl", raw: { identity: { provider: "oidc", clientId: "c", allowedEmailDomains: ["example.com"] }, oidcClientSecret: "s" }, path: "zero-trust-ollama:identity.issuerUrl", says: /required when identity.provider is "oidc"/ },
        { name: "non-https issuer", raw: { identity: { provider: "oidc", clientId: "c", issuerUrl: "http://idp.example.com", allowedEmailDomains: ["example.com"] }, oidcClientSecret: "s" }, path: "zero-trust-ollama:identity.issuerUrl", says: /https URL/ },
        { name: "oidc without clientId", raw: { identity: { provider: "oidc", issuerUrl: "https://idp.example.com", allowedEmailDomains: ["example.com"] }, oidcClientSecret: "s" }, path: "zero-trust-ollama:identity.clientId", says: /required/ },
        { name: "oidc without client secret", raw: { identity: { provider: "oidc", clientId: "c", issuerUrl: "https://idp.example.com", allowedEmailDomains: ["example.com"] } }, path: "zero-trust-ollama:oidcClientSecret", says: /--secret/ },
        { name: "empty allowlist with an IdP", raw: { identity: { provider: "entra", tenantId: TENANT } }, path: "zero-trust-ollama:identity.allowedGroups", says: /at least one of identity.allowedGroups, identity.allowedEmailDomains or identity.allowedEmails/ },
        { name: "entra group given by display name", raw: { identity: { provider: "entra", tenantId: TENANT, allowedGroups: [GROUP, "ml-eng"] } }, path: "zero-trust-ollama:identity.allowedGroups[1]", says: /object id \(a GUID/ },
        { name: "entra with a clientId", raw: { identity: { provider: "entra", tenantId: TENANT, clientId: "x", allowedGroups: [GROUP] } }, path: "zero-trust-ollama:identity.clientId", says: /creates the app registration/ },
        { name: "entra with an issuerUrl", raw: { identity: { provider: "entra", tenantId: TENANT, issuerUrl: "https://idp.example.com", allowedGroups: [GROUP] } }, path: "zero-trust-ollama:identity.issuerUrl", says: /derived from identity.tenantId/ },
        { name: "entra with an oidcClientSecret", raw: { identity: { provider: "entra", tenantId: TENANT, allowedGroups: [GROUP] }, oidcClientSecret: "s" }, path: "zero-trust-ollama:oidcClientSecret", says: /creates and rotates/ },
        { name: "refresh not shorter than expiry", raw: { identity: { provider: "entra", tenantId: TENANT, allowedGroups: [GROUP], cookieExpireHours: 1, cookieRefreshMinutes: 60 } }, path: "zero-trust-ollama:identity.cookieRefreshMinutes", says: /less than identity.cookieExpireHours/ },
        { name: "audience with a comma", raw: { identity: { provider: "entra", tenantId: TENANT, allowedGroups: [GROUP], extraAudiences: ["a,b"] } }, path: "zero-trust-ollama:identity.extraAudiences[0]", says: /without spaces, commas/ },
        { name: "group with a comma (would split oauth2-proxy's list flag)", raw: { identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "c", allowedGroups: ["a,b"] }, oidcClientSecret: "s" }, path: "zero-trust-ollama:identity.allowedGroups[0]", says: /commas/ },
    ];
    for (const c of cases) {
        test(`rejects ${c.name}, naming ${c.path}`, () => {
            const hit = problemsOf(c.raw).find((p) => p.path === c.path);
            assert.ok(hit, `no problem for ${c.path}`);
            assert.match(hit.message, c.says);
        });
    }

    test("provider none needs no allowlist", () => {
        assert.ok(parseStackConfig({ domain: "d.example", identity: { provider: "none" } }).ok);
    });
});

describe("client secret rotation window", () => {
    const day = 86_400_000;
    test("stable inside a period, so repeated previews are no-ops", () => {
        const start = new Date(115 * 180 * day);
        const a = rotationWindow(start, 180);
        const b = rotationWindow(new Date(start.getTime() + 179 * day + 23 * 3_600_000), 180);
        assert.deepEqual(a, b);
        assert.equal(a.epoch, 115);
        // Expires at the end of the NEXT period: a late `pulumi up` still finds a valid secret.
        assert.equal(a.endDate, new Date(117 * 180 * day).toISOString().replace(".000Z", "Z"));
        assert.match(a.endDate, /^\d{4}-\d{2}-\d{2}T00:00:00Z$/);
    });
    test("a new period means a new epoch (and so a new secret)", () => {
        const boundary = 42 * 30 * day;
        assert.equal(rotationWindow(new Date(boundary - 1), 30).epoch, 41);
        assert.equal(rotationWindow(new Date(boundary), 30).epoch, 42);
    });
    test("the period must be whole days", () => {
        assert.throws(() => rotationWindow(new Date(), 0), /secretRotationDays/);
        assert.throws(() => rotationWindow(new Date(), 1.5), /secretRotationDays/);
    });
});

describe("API key digest", () => {
    test("equals openssl's MD5 of the key in unpadded base64url, the form nginx's secure_link compares", () => {
        for (const key of ["A".repeat(48), "q8Zr0Tn3VbK1xLw9MpYc4HdGe7JsUa2Fo6RiNt5XkQ0Bv3Wz"]) {
            assert.match(key, API_KEY_PATTERN);
            const md5 = execFileSync("openssl", ["md5", "-binary"], { input: key });
            assert.equal(apiKeyDigest(key), md5.toString("base64url"));
            assert.equal(apiKeyDigest(key).length, 22);
        }
    });
});
