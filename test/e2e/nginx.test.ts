/**
 * The nginx gateway against the real nginx (1.22 here) running the rendered config:
 * - the attack matrix through the sandbox, in front of the stub Ollama: every refusal is proven
 *   by the stub having seen nothing;
 * - masked upstream failures and the access log, against an upstream this file controls (one
 *   that fails in the ways Ollama can: a 500 naming internals, a dropped connection, silence).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { certIdentity } from "../../components/certs";
import { loadStackConfig } from "../../components/config";
import { deriveGatewaySpec } from "../../components/gateway/spec";
import { prepareGateway, waitForListener } from "../../scripts/sandbox/gateway";
import { createCa, issueCert } from "../../scripts/sandbox/pki";
import { runAttackMatrix } from "./attack-runner";
import { tempDir } from "./harness";

runAttackMatrix("nginx", { includeIdentity: true });

/** Internals a failing upstream puts in its error bodies; none may reach the client. */
const LEAKY_BODY = "panic: open /srv/encrypted/ollama/models/blobs/sha256-x: no such file (ollama/0.12.3 on 10.20.30.40:11434)";
const SECRET_COOKIE = "__Host-oauth2_proxy=super-secret-session";
const SECRET_TOKEN = "Bearer super-secret-token";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
interface Answer {
    readonly status: number;
    readonly headers: Record<string, string | string[] | undefined>;
    readonly body: string;
}

async function listenOn(handler: Handler): Promise<Server> {
    const server = createServer(handler);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return server;
}
const portOf = (s: Server) => (s.address() as AddressInfo).port;

/**
 * The rendered nginx gateway in front of upstreams this file controls (a stand-in Ollama and,
 * with identity, a stand-in oauth2-proxy), for failure modes the sandbox stubs never produce.
 */
async function ownGateway(opts: { ollama: Handler; oauth2?: Handler; upstreamTimeoutSeconds?: number }) {
    const dir = tempDir("zto-nginx-own-");
    const pki = { ca: { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") }, server: { cert: join(dir, "server.crt"), key: join(dir, "server.key") }, device: { cert: join(dir, "device.crt"), key: join(dir, "device.key") } };
    createCa(pki.ca, "own CA", 2);
    const tomorrow = new Date(Date.now() + 86_400_000);
    issueCert(pki.ca, pki.server, { commonName: "gw", usage: "server", dnsNames: ["ollama.test"], ipAddresses: ["127.0.0.1"], notAfter: tomorrow });
    issueCert(pki.ca, pki.device, { commonName: "dev", usage: "client", notAfter: tomorrow });
    const ollama = await listenOn(opts.ollama);
    const oauth2 = opts.oauth2 ? await listenOn(opts.oauth2) : undefined;
    const probe = await listenOn(() => undefined);
    const port = portOf(probe);
    await new Promise((r) => probe.close(r));
    const accessLog = join(dir, "access.log");
    const identity = oauth2 ? { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedEmailDomains: ["example.com"] } : { provider: "none" };
    const cfg = loadStackConfig({ domain: "ollama.test", devices: [{ name: "dev", owner: "dev@example.com", groups: ["g"] }], filter: { enabled: false }, identity, ...(oauth2 ? { oidcClientSecret: "x" } : {}) });
    const id = certIdentity(readFileSync(pki.device.cert, "utf8"));
    const spec = deriveGatewaySpec(cfg, { dev: { fingerprintSha1: id.sha1, serial: id.serial } }, {
        listen: { host: "127.0.0.1", port },
        tlsFiles: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
        ollama: { host: "127.0.0.1", port: portOf(ollama) },
        oauth2Proxy: oauth2 && { host: "127.0.0.1", port: portOf(oauth2) },
        runtimeDir: join(dir, "run"),
        accessLog,
        errorLog: join(dir, "error.log"),
        workerUser: process.getuid?.() === 0 ? "root" : undefined,
    });
    // The spec is plain data: a test may shorten the upstream timeout below the config minimum.
    const prepared = prepareGateway({ ...spec, limits: { ...spec.limits, upstreamTimeoutSeconds: opts.upstreamTimeoutSeconds ?? spec.limits.upstreamTimeoutSeconds } }, dir);
    const gateway: ChildProcess = spawn(prepared.command, [...prepared.args], { stdio: "ignore" });
    await waitForListener("127.0.0.1", port, () => gateway.exitCode === null);
    return {
        accessLog,
        ollamaPort: portOf(ollama),
        request: (path: string, method = "GET", headers: Record<string, string> = { Cookie: SECRET_COOKIE, Authorization: SECRET_TOKEN, "Content-Type": "application/json" }) =>
            new Promise<Answer>((done, fail) => {
                const req = httpsRequest({ host: "127.0.0.1", port, path, method, ca: readFileSync(pki.ca.cert), cert: readFileSync(pki.device.cert), key: readFileSync(pki.device.key), agent: false, headers }, (res) => {
                    let body = "";
                    res.setEncoding("utf8");
                    res.on("data", (d: string) => (body += d));
                    res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers, body }));
                });
                req.on("error", fail);
                req.end(method === "POST" ? '{"model":"m"}' : undefined);
            }),
        stop: async () => {
            gateway.kill("SIGTERM");
            for (const s of [ollama, oauth2]) {
                s?.closeAllConnections();
                await new Promise((r) => (s ? s.close(r) : r(undefined)));
            }
        },
    };
}

describe("nginx: upstream failures are masked, the access log holds no secrets", () => {
    let gw: Awaited<ReturnType<typeof ownGateway>>;
    before(async () => {
        gw = await ownGateway({
            upstreamTimeoutSeconds: 1,
            ollama: (req, res) => {
                if (req.url === "/api/show") {
                    res.writeHead(500, { "Content-Type": "text/plain", Server: "ollama/0.12.3", "X-Powered-By": "go" });
                    res.end(LEAKY_BODY);
                } else if (req.url === "/api/tags") {
                    req.socket.destroy(); // connection dropped mid-request
                } else if (req.url !== "/api/ps") {
                    // (/api/ps never answers: the gateway's upstream timeout fires)
                    res.writeHead(200, { "Content-Type": "application/json", "Access-Control-Allow-Origin": "*", "Set-Cookie": "upstream=1" });
                    res.end('{"version":"0.12.3"}');
                }
            },
        });
    });
    after(() => gw?.stop());
    const get = (path: string, method = "GET") => gw.request(path, method);

    const assertMasked = (r: { status: number; headers: Record<string, unknown>; body: string }, status: number, code: string) => {
        assert.equal(r.status, status);
        const err = (JSON.parse(r.body) as { error: { code: string; requestId: string } }).error;
        assert.equal(err.code, code);
        assert.equal(err.requestId, r.headers["x-request-id"]);
        const everything = r.body + JSON.stringify(r.headers);
        for (const leak of ["10.20.30.40", "/srv/", "ollama/0.12.3", "panic", "go", String(gw.ollamaPort)]) {
            assert.ok(!new RegExp(`\\b${leak.replace(/[./]/g, "\\$&")}\\b`).test(everything), `"${leak}" leaked: ${everything}`);
        }
        assert.equal(r.headers["x-frame-options"], "DENY", "security headers on masked errors too");
    };

    test("an upstream 500 that names files, addresses and versions becomes a bare JSON 500", async () => {
        assertMasked(await get("/api/show", "POST"), 500, "internal_error");
    });
    test("an upstream that drops the connection: 502 JSON", async () => {
        assertMasked(await get("/api/tags"), 502, "upstream_unavailable");
    });
    test("an upstream that never answers: 504 JSON after upstreamTimeoutSeconds", async () => {
        const t0 = Date.now();
        assertMasked(await get("/api/ps"), 504, "upstream_timeout");
        assert.ok(Date.now() - t0 < 4000, "the timeout fired");
    });
    test("a healthy answer keeps the gateway's CORS and cookie policy (upstream's are dropped)", async () => {
        const r = await get("/api/version");
        assert.equal(r.status, 200);
        assert.equal(r.headers["access-control-allow-origin"], undefined);
        assert.equal(r.headers["set-cookie"], undefined);
        assert.equal(r.headers.server, "nginx", "server_tokens off: no version (nginx 1.22 has no way to drop the name)");
    });
    test("every access log line is JSON with who/what/outcome/timings and never a cookie or token", async () => {
        // nginx writes a request's log line after it has sent the answer: wait (bounded) for the four.
        const logged = () => readFileSync(gw.accessLog, "utf8").trim().split("\n").filter(Boolean);
        for (const deadline = Date.now() + 10_000; logged().length < 4 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
        const lines = logged();
        assert.ok(lines.length >= 4);
        const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
        for (const e of entries) {
            for (const k of ["time", "requestId", "device", "user", "groups", "method", "path", "status", "bytesSent", "requestTime", "upstreamResponseTime"]) assert.ok(k in e, `${k} logged`);
            assert.equal(e.device, "dev");
            assert.equal(e.user, "dev@example.com");
        }
        assert.deepEqual(entries.map((e) => `${e.path} ${e.status}`).sort(), ["/api/ps 504", "/api/show 500", "/api/tags 502", "/api/version 200"].sort());
        const text = readFileSync(gw.accessLog, "utf8");
        for (const secret of ["super-secret-session", "super-secret-token", '{"model"']) assert.ok(!text.includes(secret), `${secret} must not be logged`);
    });
});

describe("nginx: auth_request with oauth2-proxy", () => {
    const seenByOllama: Record<string, string | string[] | undefined>[] = [];
    let oauth2Up = true;
    let gw: Awaited<ReturnType<typeof ownGateway>>;
    before(async () => {
        gw = await ownGateway({
            ollama: (req, res) => {
                seenByOllama.push(req.headers);
                res.writeHead(200, { "Content-Type": "application/json" });
                res.end("{}");
            },
            oauth2: (req, res) => {
                if (!oauth2Up) {
                    req.socket.destroy();
                } else if (req.headers.cookie !== SECRET_COOKIE) {
                    res.writeHead(401);
                    res.end();
                } else {
                    // A valid session close to expiry: oauth2-proxy answers 202 and refreshes the cookie.
                    res.writeHead(202, { "X-Auth-Request-User": "carol", "X-Auth-Request-Email": "carol@example.com", "X-Auth-Request-Groups": "ml-eng", "Set-Cookie": "__Host-oauth2_proxy=refreshed; Path=/; Secure; HttpOnly" });
                    res.end();
                }
            },
        });
    });
    after(() => gw?.stop());

    test("the refreshed session cookie reaches the client; Ollama gets the IdP's identity and no cookie", async () => {
        seenByOllama.length = 0;
        const r = await gw.request("/api/version");
        assert.equal(r.status, 200);
        assert.deepEqual(r.headers["set-cookie"], ["__Host-oauth2_proxy=refreshed; Path=/; Secure; HttpOnly"]);
        assert.equal(seenByOllama.length, 1);
        const h = seenByOllama[0];
        assert.equal(h["x-auth-request-user"], "carol");
        assert.equal(h["x-auth-request-email"], "carol@example.com");
        assert.equal(h["x-auth-request-groups"], "ml-eng");
        assert.equal(h["x-device-name"], "dev");
        assert.equal(h.cookie, undefined);
        assert.equal(h.authorization, undefined);
    });
    test("oauth2-proxy unreachable: the gateway fails closed (masked 500), nothing reaches Ollama", async () => {
        seenByOllama.length = 0;
        oauth2Up = false;
        try {
            const r = await gw.request("/api/version");
            assert.equal(r.status, 500);
            assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, "internal_error");
            assert.deepEqual(seenByOllama, []);
        } finally {
            oauth2Up = true;
        }
    });
});
