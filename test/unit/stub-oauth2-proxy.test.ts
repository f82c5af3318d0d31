import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import type { StubServer } from "../../scripts/sandbox/listen";
import { cookieValue, identityAllows, sandboxUsers, SESSION_COOKIE, startStubOauth2Proxy, type Oauth2LogEntry, type SandboxUser } from "../../scripts/sandbox/stub-oauth2-proxy";

const cfg = loadStackConfig({
    domain: "ollama.test",
    devices: [
        { name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] },
        { name: "alice-desktop", owner: "alice@example.com", groups: ["gpu-users"] },
        { name: "bob-workstation", owner: "bob@partner.org", groups: ["analysts"] },
    ],
    identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedEmails: ["auditor@example.com"] },
    oidcClientSecret: "[secret]",
});

describe("identityAllows mirrors oauth2-proxy", () => {
    const alice = { email: "Alice@Example.com", groups: ["ml-eng"] };
    const none = { allowedEmailDomains: [], allowedEmails: [], allowedGroups: [] };
    test("no lists: every authenticated user", () => assert.equal(identityAllows(alice, none), true));
    test("domain list: that domain only, case-insensitive", () => {
        assert.equal(identityAllows(alice, { ...none, allowedEmailDomains: ["example.com"] }), true);
        assert.equal(identityAllows(alice, { ...none, allowedEmailDomains: ["partner.org"] }), false);
    });
    test("email list only: those emails only", () => {
        assert.equal(identityAllows(alice, { ...none, allowedEmails: ["bob@example.com"] }), false);
        assert.equal(identityAllows(alice, { ...none, allowedEmails: ["alice@example.com"] }), true);
    });
    test("domain OR email, as oauth2-proxy's email-domain plus authenticated-emails file", () => {
        assert.equal(identityAllows(alice, { ...none, allowedEmailDomains: ["partner.org"], allowedEmails: ["alice@example.com"] }), true);
    });
    test("groups are required on top of the email rule", () => {
        assert.equal(identityAllows(alice, { ...none, allowedGroups: ["admins"] }), false);
        assert.equal(identityAllows(alice, { ...none, allowedGroups: ["admins", "ml-eng"] }), true);
        assert.equal(identityAllows(alice, { ...none, allowedEmails: ["alice@example.com"], allowedGroups: ["admins"] }), false);
    });
});

test("sandboxUsers: owners with their devices' groups, allowed emails, --user overrides; fresh random tokens", () => {
    const users = sandboxUsers(cfg, [{ email: "bob@partner.org", groups: ["admins"] }, { email: "carol@example.com", groups: [] }]);
    const byEmail = Object.fromEntries(users.map((u) => [u.email, u]));
    assert.deepEqual(Object.keys(byEmail).sort(), ["alice@example.com", "auditor@example.com", "bob@partner.org", "carol@example.com"]);
    assert.deepEqual([...byEmail["alice@example.com"].groups].sort(), ["gpu-users", "ml-eng"]);
    assert.deepEqual(byEmail["auditor@example.com"].groups, []);
    assert.deepEqual(byEmail["bob@partner.org"].groups, ["admins"]);
    const tokens = users.flatMap((u) => [u.sessionToken, u.bearerToken]);
    assert.equal(new Set(tokens).size, tokens.length);
    assert.ok(tokens.every((t) => /^[A-Za-z0-9_-]{32}$/.test(t)));
    assert.notEqual(sandboxUsers(cfg)[0].sessionToken, sandboxUsers(cfg)[0].sessionToken);
});

test("cookieValue finds one cookie among several, exact name only", () => {
    assert.equal(cookieValue(`a=1; ${SESSION_COOKIE}=tok; b=2`, SESSION_COOKIE), "tok");
    assert.equal(cookieValue("_oauth2_proxy=tok", SESSION_COOKIE), undefined);
    assert.equal(cookieValue(undefined, SESSION_COOKIE), undefined);
});

describe("stub oauth2-proxy server", () => {
    let dir: string;
    let logFile: string;
    let stub: StubServer;
    let users: Record<string, SandboxUser>;

    const call = (path: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((done, fail) => {
            const req = request({ host: stub.host, port: stub.port, path, headers, agent: false }, (res) => {
                let body = "";
                res.setEncoding("utf8");
                res.on("data", (d) => (body += d));
                res.on("end", () => done({ status: res.statusCode!, headers: res.headers, body }));
            });
            req.on("error", fail);
            req.end();
        });

    before(async () => {
        dir = mkdtempSync(join(tmpdir(), "zto-oauth2-"));
        logFile = join(dir, "oauth2.jsonl");
        const list = sandboxUsers(cfg, [{ email: "eve@evil.test", groups: ["ml-eng"] }]);
        users = Object.fromEntries(list.map((u) => [u.email, u]));
        stub = await startStubOauth2Proxy({ users: list, identity: { ...cfg.identity, allowedEmailDomains: ["example.com", "partner.org"] }, logFile });
    });
    after(async () => {
        await stub.close();
        rmSync(dir, { recursive: true, force: true });
    });

    test("/oauth2/auth: 202 with the identity headers for a session cookie or a bearer token", async () => {
        const alice = users["alice@example.com"];
        for (const headers of <Record<string, string>[]>[{ Cookie: `other=1; ${SESSION_COOKIE}=${alice.sessionToken}` }, { Authorization: `Bearer ${alice.bearerToken}` }]) {
            const r = await call("/oauth2/auth", headers);
            assert.equal(r.status, 202);
            assert.equal(r.headers["x-auth-request-user"], "alice@example.com");
            assert.equal(r.headers["x-auth-request-email"], "alice@example.com");
            assert.deepEqual(String(r.headers["x-auth-request-groups"]).split(",").sort(), ["gpu-users", "ml-eng"]);
        }
    });

    test("/oauth2/auth: 401 without a valid session, including the default cookie name and swapped tokens", async () => {
        const alice = users["alice@example.com"];
        for (const headers of <Record<string, string>[]>[{}, { Cookie: `${SESSION_COOKIE}=forged` }, { Cookie: `_oauth2_proxy=${alice.sessionToken}` }, { Authorization: `Bearer ${alice.sessionToken}` }, { Authorization: `Basic ${alice.bearerToken}` }]) {
            const r = await call("/oauth2/auth", headers);
            assert.equal(r.status, 401, JSON.stringify(headers));
            assert.equal(r.headers["x-auth-request-user"], undefined);
        }
    });

    test("/oauth2/auth: 401 (session cleared) for a user outside the allowed domains/emails, 403 outside ?allowed_groups (as the real v7.15.6)", async () => {
        const outside = await call("/oauth2/auth", { Authorization: `Bearer ${users["eve@evil.test"].bearerToken}` });
        assert.equal(outside.status, 401);
        assert.match(String(outside.headers["set-cookie"]), /Max-Age=0/);
        const bob = { Authorization: `Bearer ${users["bob@partner.org"].bearerToken}` };
        assert.equal((await call("/oauth2/auth?allowed_groups=ml-eng", bob)).status, 403);
        assert.equal((await call("/oauth2/auth?allowed_groups=ml-eng,analysts", bob)).status, 202);
    });

    test("sign-in flow: start redirects off-site with a same-site state, callback sets a __Host- cookie", async () => {
        const start = await call("/oauth2/start?rd=//evil.example/x");
        assert.equal(start.status, 302);
        const location = new URL(String(start.headers.location));
        assert.equal(location.hostname, "idp.sandbox.invalid");
        assert.equal(location.searchParams.get("state"), "/");
        assert.equal((await call("/oauth2/sign_in")).status, 200);
        const alice = users["alice@example.com"];
        const cb = await call(`/oauth2/callback?code=${alice.sessionToken}&state=%2Fapi%2Ftags`);
        assert.equal(cb.status, 302);
        assert.equal(cb.headers.location, "/api/tags");
        assert.match(String(cb.headers["set-cookie"]), new RegExp(`^${SESSION_COOKIE}=${alice.sessionToken}; Path=/; .*Secure; HttpOnly`));
        assert.equal((await call("/oauth2/callback?code=guess")).status, 403);
    });

    test("every request is logged with the status it got", async () => {
        const before = readJsonLines<Oauth2LogEntry>(logFile).length;
        await call("/oauth2/auth", { "X-Forwarded-User": "mallory" });
        const entries = readJsonLines<Oauth2LogEntry>(logFile);
        assert.equal(entries.length, before + 1);
        assert.equal(entries.at(-1)!.status, 401);
        assert.equal(entries.at(-1)!.headers["x-forwarded-user"], "mallory");
    });
});
