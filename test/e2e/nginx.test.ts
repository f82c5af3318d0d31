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
import { createServer, type Server } from "node:http";
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

describe("nginx: upstream failures are masked, the access log holds no secrets", () => {
    const dir = tempDir("zto-nginx-mask-");
    let upstream: Server;
    let gateway: ChildProcess;
    let port = 0;
    let accessLog = "";
    const pki = { ca: { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") }, server: { cert: join(dir, "server.crt"), key: join(dir, "server.key") }, device: { cert: join(dir, "device.crt"), key: join(dir, "device.key") } };

    before(async () => {
        createCa(pki.ca, "mask CA", 2);
        const tomorrow = new Date(Date.now() + 86_400_000);
        issueCert(pki.ca, pki.server, { commonName: "gw", usage: "server", dnsNames: ["ollama.test"], ipAddresses: ["127.0.0.1"], notAfter: tomorrow });
        issueCert(pki.ca, pki.device, { commonName: "dev", usage: "client", notAfter: tomorrow });
        upstream = createServer((req, res) => {
            if (req.url === "/api/show") {
                res.writeHead(500, { "Content-Type": "text/plain", Server: "ollama/0.12.3", "X-Powered-By": "go" });
                res.end(LEAKY_BODY);
            } else if (req.url === "/api/tags") {
                req.socket.destroy(); // connection dropped mid-request
            } else if (req.url === "/api/ps") {
                // never answers: the gateway's upstream timeout fires
            } else {
                res.writeHead(200, { "Content-Type": "application/json", "Access-Control-Allow-Origin": "*", "Set-Cookie": "upstream=1" });
                res.end('{"version":"0.12.3"}');
            }
        });
        await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
        const upstreamPort = (upstream.address() as AddressInfo).port;
        const listen = await new Promise<number>((r) => {
            const probe = createServer().listen(0, "127.0.0.1", () => {
                const p = (probe.address() as AddressInfo).port;
                probe.close(() => r(p));
            });
        });
        port = listen;
        accessLog = join(dir, "access.log");
        const cfg = loadStackConfig({ domain: "ollama.test", devices: [{ name: "dev", owner: "dev@example.com", groups: ["g"] }], filter: { enabled: false } });
        const id = certIdentity(readFileSync(pki.device.cert, "utf8"));
        const spec = deriveGatewaySpec(cfg, { dev: { fingerprintSha1: id.sha1, serial: id.serial } }, {
            listen: { host: "127.0.0.1", port },
            tlsFiles: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
            ollama: { host: "127.0.0.1", port: upstreamPort },
            runtimeDir: join(dir, "run"),
            accessLog,
            errorLog: join(dir, "error.log"),
            workerUser: process.getuid?.() === 0 ? "root" : undefined,
        });
        // One second instead of the config minimum (5 s): the spec is plain data.
        const prepared = prepareGateway({ ...spec, limits: { ...spec.limits, upstreamTimeoutSeconds: 1 } }, dir);
        gateway = spawn(prepared.command, [...prepared.args], { stdio: "ignore" });
        await waitForListener("127.0.0.1", port, () => gateway.exitCode === null);
    });

    after(async () => {
        gateway?.kill("SIGTERM");
        upstream?.closeAllConnections();
        await new Promise((r) => upstream?.close(r));
    });

    const get = (path: string, method = "GET") =>
        new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((done, fail) => {
            const req = httpsRequest(
                { host: "127.0.0.1", port, path, method, ca: readFileSync(pki.ca.cert), cert: readFileSync(pki.device.cert), key: readFileSync(pki.device.key), agent: false, headers: { Cookie: SECRET_COOKIE, Authorization: SECRET_TOKEN, "Content-Type": "application/json" } },
                (res) => {
                    let body = "";
                    res.setEncoding("utf8");
                    res.on("data", (d: string) => (body += d));
                    res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers, body }));
                },
            );
            req.on("error", fail);
            req.end(method === "POST" ? '{"model":"m"}' : undefined);
        });

    const assertMasked = (r: { status: number; headers: Record<string, unknown>; body: string }, status: number, code: string) => {
        assert.equal(r.status, status);
        const err = (JSON.parse(r.body) as { error: { code: string; requestId: string } }).error;
        assert.equal(err.code, code);
        assert.equal(err.requestId, r.headers["x-request-id"]);
        const everything = r.body + JSON.stringify(r.headers);
        for (const leak of ["10.20.30.40", "/srv/", "ollama/0.12.3", "panic", "go", String((upstream.address() as AddressInfo).port)]) {
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
        const lines = readFileSync(accessLog, "utf8").trim().split("\n");
        assert.ok(lines.length >= 4);
        const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
        for (const e of entries) {
            for (const k of ["time", "requestId", "device", "user", "groups", "method", "path", "status", "bytesSent", "requestTime", "upstreamResponseTime"]) assert.ok(k in e, `${k} logged`);
            assert.equal(e.device, "dev");
            assert.equal(e.user, "dev@example.com");
        }
        assert.deepEqual(entries.map((e) => `${e.path} ${e.status}`).sort(), ["/api/ps 504", "/api/show 500", "/api/tags 502", "/api/version 200"].sort());
        const text = readFileSync(accessLog, "utf8");
        for (const secret of ["super-secret-session", "super-secret-token", '{"model"']) assert.ok(!text.includes(secret), `${secret} must not be logged`);
    });
});
