/**
 * `npm run sandbox` as DESIGN.md §4 specifies it, against the real nginx and openssl binaries:
 * state-dir reuse, revocation by config edit, sandbox.json, clean shutdown (no orphan nginx),
 * child death, invalid input, streaming through the gateway, the stub IdP, and with `--idp real` the
 * users the sandbox signed in (needs the built oauth2-proxy: fails, never skips, without it).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { readStackFile } from "../../components/stack-file";
import { jwtClaims } from "../../scripts/sandbox/sign-in";
import { STUB_OLLAMA_VERSION } from "../../scripts/sandbox/stub-ollama";
import { toolPath } from "../../scripts/lib/tools";
import { makeExpiredDeviceCert, makeForeignCaCert, makeUnenrolledDeviceCert, REPO_ROOT, runSandboxCli, startSandbox, tempDir, writeStackFile, type HttpResult } from "./harness";

const alice = { name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] };
const bob = { name: "bob-workstation", owner: "bob@example.com", groups: ["analysts"] };
/** A mTLS-only stack; the filter is off because the filter's own tests switch it on. */
const baseConfig = (devices: object[] = [alice, bob]) => ({
    domain: "ollama.test",
    devices,
    gateway: { kind: "nginx", rateLimitPerMinute: 6000, burst: 100 },
    identity: { provider: "none" },
    filter: { enabled: false },
    pki: { keyAlgorithm: "ECDSA-P256" },
});

/** Processes whose command line mentions the path (the sandbox itself, nginx master/workers). */
function processesMentioning(path: string): string[] {
    try {
        return execFileSync("pgrep", ["-a", "-f", path], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
    } catch {
        return []; // pgrep exits 1 when nothing matches
    }
}

const refusedOrFailed = async (attempt: Promise<HttpResult>): Promise<string> => {
    try {
        const r = await attempt;
        assert.ok(r.status >= 400, `expected a refusal, got ${r.status} ${r.body}`);
        return `HTTP ${r.status}`;
    } catch (e) {
        return `connection failed: ${(e as Error).message}`;
    }
};

describe("sandbox CLI", () => {
    test("sandbox.json has the contract fields, and the gateway serves an enrolled device", async () => {
        const sb = await startSandbox({ config: baseConfig() });
        try {
            const info = sb.info;
            assert.match(info.url, /^https:\/\/127\.0\.0\.1:\d+$/);
            assert.match(info.ollama, /^http:\/\/127\.0\.0\.1:\d+$/);
            assert.notEqual(new URL(info.url).port, "8443", "free port, not the stack's deployment port");
            for (const f of [info.ca, info.caKey, info.ollamaLog!]) assert.ok(existsSync(f), f);
            assert.deepEqual(Object.keys(info.devices).sort(), ["alice-laptop", "bob-workstation"]);
            for (const [name, d] of Object.entries(info.devices)) {
                assert.equal(d.cert, join(sb.stateDir, "devices", `${name}.crt`));
                assert.equal(d.key, join(sb.stateDir, "devices", `${name}.key`));
            }
            assert.deepEqual(info.users, {}, "no stub IdP users with identity.provider none");
            assert.equal(info.oauth2Proxy, undefined);

            const r = await sb.request({ path: "/api/version", device: "alice-laptop" });
            assert.equal(r.status, 200);
            assert.deepEqual(r.json(), { version: STUB_OLLAMA_VERSION });
            const seen = sb.ollamaRequests();
            assert.equal(seen.length, 1);
            assert.equal(seen[0].path, "/api/version");
            assert.equal(seen[0].headers["x-device-name"], "alice-laptop");
        } finally {
            await sb.stop();
        }
    });

    test("the example stacks run as shipped: Pulumi.dev.yaml and Pulumi.prod.yaml serve an enrolled device", async () => {
        const dev = await startSandbox({ stack: join(REPO_ROOT, "Pulumi.dev.yaml") });
        try {
            assert.equal((await dev.request({ path: "/api/tags", device: "alice-laptop" })).status, 200);
            assert.equal(dev.ollamaRequests().length, 1);
        } finally {
            await dev.stop();
        }
        // prod requires an Entra group nobody has by default; --user grants it to alice.
        const prodStack = join(REPO_ROOT, "Pulumi.prod.yaml");
        const prodGroup = loadStackConfig(readStackFile(prodStack).raw).identity.allowedGroups[0];
        const prod = await startSandbox({ stack: prodStack, extraArgs: ["--user", `alice@corp.example.com:${prodGroup}`] });
        try {
            assert.equal((await prod.request({ path: "/api/tags", device: "alice-laptop" })).status, 401);
            assert.equal((await prod.request({ path: "/api/tags", device: "alice-laptop", user: "alice@corp.example.com" })).status, 200);
            assert.equal(prod.ollamaRequests().length, 1);
        } finally {
            await prod.stop();
        }
    });

    test("state dir is reused: same CA and device fingerprints after a restart", async () => {
        const stateDir = tempDir("zto-reuse-");
        const first = await startSandbox({ config: baseConfig(), stateDir });
        const caPem = readFileSync(first.info.ca, "utf8");
        const firstDevices = first.info.devices;
        assert.equal((await first.stop()).code, 0);

        const second = await startSandbox({ config: baseConfig(), stateDir });
        try {
            assert.equal(readFileSync(second.info.ca, "utf8"), caPem);
            assert.deepEqual(second.info.devices, firstDevices);
            assert.equal((await second.request({ path: "/api/tags", device: "bob-workstation" })).status, 200);
        } finally {
            await second.stop();
        }
    });

    test("a device removed from config keeps its files and the CA, but the gateway refuses it", async () => {
        const stateDir = tempDir("zto-revoke-");
        const before = await startSandbox({ config: baseConfig([alice, bob]), stateDir });
        const bobFiles = before.info.devices["bob-workstation"];
        const caPem = readFileSync(before.info.ca, "utf8");
        assert.equal((await before.request({ path: "/api/version", device: "bob-workstation" })).status, 200);
        await before.stop();

        const after = await startSandbox({ config: baseConfig([alice]), stateDir });
        try {
            assert.equal(readFileSync(after.info.ca, "utf8"), caPem);
            assert.deepEqual(Object.keys(after.info.devices), ["alice-laptop"]);
            assert.ok(existsSync(bobFiles.cert) && existsSync(bobFiles.key), "revocation is a config edit, not a file deletion");
            const outcome = await refusedOrFailed(after.request({ path: "/api/version", device: { cert: bobFiles.cert, key: bobFiles.key } }));
            assert.deepEqual(after.ollamaRequests(), [], `bob's request reached Ollama (${outcome})`);
            assert.equal((await after.request({ path: "/api/version", device: "alice-laptop" })).status, 200);
        } finally {
            await after.stop();
        }
    });

    test("SIGTERM stops nginx and every stub, removes sandbox.json and exits 0", async () => {
        const sb = await startSandbox({ config: baseConfig() });
        const running = processesMentioning(sb.stateDir);
        assert.ok(running.some((p) => /nginx: master process/.test(p)), `nginx master should be running:\n${running.join("\n")}`);
        const infoPath = join(sb.stateDir, "sandbox.json");
        assert.ok(existsSync(infoPath));

        const { code } = await sb.stop();
        assert.equal(code, 0, sb.stderr());
        assert.deepEqual(processesMentioning(sb.stateDir), []);
        assert.ok(!existsSync(infoPath), "sandbox.json lists dead ports once stopped");
        await assert.rejects(fetch(`${sb.info.ollama}/api/version`), "the stub Ollama is closed");
    });

    test("--watch-pid: the sandbox stops itself, nginx included, when the watched process is gone", async () => {
        const watched = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"]);
        // The harness passes its own pid first; a later --watch-pid wins.
        const sb = await startSandbox({ config: baseConfig(), extraArgs: ["--watch-pid", String(watched.pid)] });
        watched.kill("SIGKILL");
        const { code } = await sb.exited;
        assert.equal(code, 0);
        assert.match(sb.stderr(), new RegExp(`process ${watched.pid} \\(--watch-pid\\) has exited`));
        assert.deepEqual(processesMentioning(sb.stateDir), []);
    });

    test("a gateway that dies is reported and everything else is stopped, exit non-zero", async () => {
        const sb = await startSandbox({ config: baseConfig() });
        process.kill(sb.info.gateway.pid, "SIGKILL");
        const { code } = await sb.exited;
        assert.notEqual(code, 0);
        assert.match(sb.stderr(), /gateway exited unexpectedly \(signal SIGKILL\)/);
        assert.deepEqual(processesMentioning(sb.stateDir), [], "no orphan nginx worker");
    });

    test("an invalid stack file exits 2 naming the key; nothing is started or created", async () => {
        const stateDir = join(tempDir("zto-invalid-"), "state");
        const stack = writeStackFile({ ...baseConfig(), gateway: { kind: "envoy", burst: -1 } });
        const r = await runSandboxCli(["--stack", stack, "--state", stateDir]);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /zero-trust-ollama:gateway\.kind: /);
        assert.match(r.stderr, /zero-trust-ollama:gateway\.burst: /);
        assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
        assert.equal(r.stdout, "");
        assert.ok(!existsSync(stateDir));
    });

    test("bad arguments and unreadable stack files exit 2 with a message", async () => {
        const missing = await runSandboxCli(["--state", tempDir()]);
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /--stack .* is required/);
        const noFile = await runSandboxCli(["--stack", "/nonexistent/Pulumi.x.yaml", "--state", tempDir()]);
        assert.equal(noFile.code, 2);
        assert.match(noFile.stderr, /cannot read stack file/);
        const badUser = await runSandboxCli(["--stack", writeStackFile(baseConfig()), "--state", tempDir(), "--user", "not-an-email"]);
        assert.equal(badUser.code, 2);
        assert.match(badUser.stderr, /--user must be <email>:<group,group>/);
    });

    test("NDJSON streams through the gateway token by token at the configured interval", async () => {
        const intervalMs = 60;
        const sb = await startSandbox({ config: baseConfig(), extraArgs: ["--token-interval-ms", String(intervalMs), "--tokens", "6"] });
        try {
            const r = await sb.request({ path: "/api/generate", method: "POST", body: { model: "llama3.2:3b", prompt: "hello" } });
            assert.equal(r.status, 200);
            const lines = r.body.trimEnd().split("\n").map((l) => JSON.parse(l));
            assert.equal(lines.length, 7);
            assert.equal(lines.at(-1).done, true);
            // Unbuffered: the pieces arrive separately, spread over the stub's pacing.
            assert.ok(r.chunks.length >= 5, `${r.chunks.length} pieces`);
            assert.ok(r.chunks.at(-1)!.atMs - r.chunks[0].atMs >= 5 * intervalMs * 0.9);
        } finally {
            await sb.stop();
        }
    });

    test("a client that disconnects mid-stream reaches the stub Ollama as a closed connection", async () => {
        const sb = await startSandbox({ config: baseConfig(), extraArgs: ["--token-interval-ms", "50", "--tokens", "20"] });
        try {
            const r = await sb.request({ path: "/v1/chat/completions", method: "POST", body: { model: "llama3.2:3b", stream: true, messages: [] }, abortAfterChunks: 2 });
            assert.equal(r.aborted, true);
            const deadline = Date.now() + 3000;
            while (!sb.ollamaEvents().some((e) => e.kind === "client-abort") && Date.now() < deadline) await new Promise((res) => setTimeout(res, 25));
            const abort = sb.ollamaEvents().find((e) => e.kind === "client-abort");
            assert.ok(abort && abort.kind === "client-abort", "the gateway closed its upstream connection");
            assert.equal(abort.path, "/v1/chat/completions");
            assert.ok(abort.framesSent < 20, `the stub stopped early (${abort.framesSent} frames)`);
        } finally {
            await sb.stop();
        }
    });

    test("with an identity provider the stub oauth2-proxy honours the tokens sandbox.json lists", async () => {
        const sb = await startSandbox({
            config: {
                ...baseConfig(),
                identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedGroups: ["ml-eng", "admins"] },
                oidcClientSecret: { secure: "AAABAKc2" },
            },
            extraArgs: ["--user", "carol@example.com:admins"],
        });
        try {
            const users = sb.info.users;
            assert.deepEqual(Object.keys(users).sort(), ["alice@example.com", "bob@example.com", "carol@example.com"]);
            assert.match(users["alice@example.com"].cookie, /^__Host-oauth2_proxy=[A-Za-z0-9_-]{32}$/);
            assert.deepEqual(users["carol@example.com"].groups, ["admins"]);
            assert.ok(sb.info.oauth2Proxy && existsSync(sb.info.oauth2Proxy.log));

            const viaCookie = await sb.request({ path: "/api/tags", user: "alice@example.com" });
            assert.equal(viaCookie.status, 200);
            const viaBearer = await sb.request({ path: "/api/tags", user: "carol@example.com", auth: "bearer" });
            assert.equal(viaBearer.status, 200);
            const seen = sb.ollamaRequests();
            assert.deepEqual(seen.map((e) => e.headers["x-auth-request-email"]), ["alice@example.com", "carol@example.com"]);

            assert.equal((await sb.request({ path: "/api/tags" })).status, 401, "no session on an API path");
            assert.equal((await sb.request({ path: "/api/tags", user: "bob@example.com" })).status, 401, "bob is in no allowed group (oauth2-proxy: 401, session cleared)");
            assert.equal(sb.ollamaRequests().length, 2);
        } finally {
            await sb.stop();
        }
    });

    // The contract with the real identity plane (what `--idp auto` picks once oauth2-proxy is built):
    // the sandbox signed every user in at start, so the same fields work as the stub's. The gateway's
    // sign-in rate is left at its default (10/min, burst 5): four users need 8 sign-in requests, so
    // the sandbox must wait out a 429 to start at all.
    test("--idp real: sandbox.json has each user's signed-in cookie and bearer (§4); they reach Ollama as the user, a user outside allowedGroups was refused 403, a recorded expiry is when the gateway stops admitting", async () => {
        assert.ok(existsSync(toolPath("oauth2Proxy")), `${toolPath("oauth2Proxy")} is not built (npm run tools:build): this test needs the real oauth2-proxy and fails without it`);
        const shortTtlSeconds = 5;
        const sb = await startSandbox({
            config: {
                ...baseConfig(),
                identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedGroups: ["ml-eng", "admins"] },
                oidcClientSecret: { secure: "AAABAKc2" },
            },
            extraArgs: ["--idp", "real", "--user", "carol@example.com:admins", "--user", `dora@example.com:ml-eng:${shortTtlSeconds}`],
            readyTimeoutMs: 90_000,
        });
        try {
            const onDisk = JSON.parse(readFileSync(join(sb.stateDir, "sandbox.json"), "utf8")) as typeof sb.info;
            assert.deepEqual(onDisk, sb.info);
            assert.equal(onDisk.oauth2Proxy?.kind, "real");
            const users = onDisk.users;
            assert.deepEqual(Object.keys(users).sort(), ["alice@example.com", "bob@example.com", "carol@example.com", "dora@example.com"]);
            const idp = onDisk.idp!;
            for (const [email, u] of Object.entries(users)) {
                assert.equal(typeof u.cookie, "string", email);
                const claims = jwtClaims(u.bearer);
                assert.equal(claims.iss, idp.issuer, `${email}: the bearer is the provider's`);
                assert.equal(claims.aud, idp.clientId, `${email}: issued to the gateway's client`);
                assert.equal(claims.email, email);
                assert.equal(u.signIn?.bearerExpiresAt, new Date(Number(claims.exp) * 1000).toISOString());
            }
            for (const email of ["alice@example.com", "carol@example.com", "dora@example.com"]) {
                const u = users[email];
                assert.equal(u.signIn?.callbackStatus, 302, `${email} signed in`);
                assert.match(u.cookie, /(^|; )__Host-oauth2_proxy=[^;]{16,}/, email);
                // identity.cookieExpireHours defaults to 8.
                const cookieLeft = Date.parse(u.signIn!.cookieExpiresAt!) - Date.now();
                assert.ok(cookieLeft > 7 * 3600_000 && cookieLeft <= 8 * 3600_000, `${email}: cookie expires in ${cookieLeft} ms`);
            }
            assert.equal(users["alice@example.com"].signIn?.device, "alice-laptop", "a user signs in on their own device");
            assert.equal(users["carol@example.com"].signIn?.device, "alice-laptop", "a user without a device signs in on the first one");

            sb.resetOllamaLog();
            for (const [email, auth] of [["alice@example.com", "cookie"], ["alice@example.com", "bearer"], ["carol@example.com", "cookie"], ["carol@example.com", "bearer"]] as const) {
                const r = await sb.request({ path: "/api/tags", user: email, auth });
                assert.equal(r.status, 200, `${email} by ${auth}: ${r.body}`);
                const seen = sb.ollamaRequests().at(-1)!;
                assert.equal(seen.headers["x-auth-request-user"], email, `${email} by ${auth}`);
                assert.equal(seen.headers["x-auth-request-email"], email);
                assert.equal(seen.headers.cookie, undefined);
                assert.equal(seen.headers.authorization, undefined);
            }
            assert.equal(sb.ollamaRequests().length, 4);

            // bob is in no allowed group: the real oauth2-proxy refused him at the callback (403, no session).
            const bob = users["bob@example.com"];
            assert.equal(bob.signIn?.callbackStatus, 403);
            assert.equal(bob.signIn?.cookieExpiresAt, undefined);
            assert.doesNotMatch(bob.cookie, /__Host-oauth2_proxy=/);
            sb.resetOllamaLog();
            assert.equal((await sb.request({ path: "/api/tags", user: "bob@example.com" })).status, 401, "bob's browser has no session");
            assert.equal((await sb.request({ path: "/api/tags", user: "bob@example.com", auth: "bearer" })).status, 401, "bob's own valid JWT fails the allowlist");
            assert.deepEqual(sb.ollamaRequests(), [], "nothing of bob's reached Ollama");

            // dora's ID tokens live a few seconds: past the recorded bearerExpiresAt the gateway refuses the bearer; her cookie lives on.
            const dora = users["dora@example.com"];
            await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(dora.signIn!.bearerExpiresAt) - Date.now()) + 1500));
            assert.equal((await sb.request({ path: "/api/tags", user: "dora@example.com", auth: "bearer" })).status, 401, "the bearer is dead after its recorded expiry");
            assert.equal((await sb.request({ path: "/api/tags", user: "dora@example.com" })).status, 200, "the session cookie is not bound to the ID token's lifetime");
        } finally {
            await sb.stop();
        }
    });

    test("with filter.enabled the gateway's upstream is the filter, started with the rendered rules", async () => {
        const sb = await startSandbox({ config: { ...baseConfig(), filter: { enabled: true, modelsByGroup: { "*": ["llama3.2:3b"] } } } });
        try {
            assert.ok(sb.info.filter, "sandbox.json names the filter");
            assert.match(sb.info.filter.url, /^http:\/\/127\.0\.0\.1:\d+$/);
            assert.ok(existsSync(sb.info.filter.rules));
            const allowed = await sb.request({ path: "/api/generate", method: "POST", body: { model: "llama3.2:3b", prompt: "hi", stream: false } });
            assert.equal(allowed.status, 200);
            assert.equal(sb.ollamaRequests().length, 1);
            // Only the filter knows the model allowlist: a refusal with nothing at Ollama proves the hop.
            const refused = await sb.request({ path: "/api/generate", method: "POST", body: { model: "qwen2.5-coder:7b", prompt: "hi", stream: false } });
            assert.ok(refused.status >= 400, `got ${refused.status}`);
            assert.equal(sb.ollamaRequests().length, 1);
        } finally {
            await sb.stop();
        }
        assert.deepEqual(processesMentioning(sb.stateDir), [], "the filter process is stopped too");
    });

    test("siem.syslogAddress is replaced by a local stand-in; the gateway's records arrive there", async () => {
        const sb = await startSandbox({ config: { ...baseConfig(), siem: { syslogAddress: "udp://siem.invalid:514" } } });
        try {
            const syslog = sb.info.syslog;
            assert.ok(syslog, "sandbox.json names the stand-in");
            assert.match(syslog.address, /^udp:\/\/127\.0\.0\.1:\d+$/);
            assert.doesNotMatch(readFileSync(sb.info.gateway.config, "utf8"), /siem\.invalid/, "nothing is sent to the real SIEM");
            assert.equal((await sb.request({ path: "/api/version" })).status, 200);
            const deadline = Date.now() + 3000;
            const records = () => readFileSync(syslog.log, "utf8");
            while (!records().includes("/api/version") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
            assert.match(records(), /\/api\/version/);
        } finally {
            await sb.stop();
        }
    });

    test("harness certificates: foreign CA, expired and unenrolled are what they claim to be", async () => {
        const sb = await startSandbox({ config: baseConfig([alice]) });
        try {
            const verify = (ca: string, cert: string) => {
                try {
                    return execFileSync("openssl", ["verify", "-CAfile", ca, "-purpose", "sslclient", cert], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
                } catch (e) {
                    return `${(e as { stdout?: string }).stdout ?? ""}${(e as { stderr?: string }).stderr ?? ""}`;
                }
            };
            const foreign = makeForeignCaCert();
            assert.match(verify(foreign.ca, foreign.cert), /: OK/);
            assert.doesNotMatch(verify(sb.info.ca, foreign.cert), /: OK/);
            assert.match(verify(sb.info.ca, makeExpiredDeviceCert(sb.info).cert), /certificate has expired/);
            const unenrolled = makeUnenrolledDeviceCert(sb.info, "mallory-laptop");
            assert.match(verify(sb.info.ca, unenrolled.cert), /: OK/);
            for (const device of [foreign, unenrolled]) {
                await refusedOrFailed(sb.request({ path: "/api/version", device }));
            }
            assert.deepEqual(sb.ollamaRequests(), []);
        } finally {
            await sb.stop();
        }
    });
});
