/**
 * The oauth2-proxy container's healthcheck can pass: the command the program declares is run
 * against the real oauth2-proxy binary at the pinned version (scripts/lib/tools.ts), started with
 * the program's own rendered flags. It passes while oauth2-proxy serves and fails once it is gone.
 *
 * In the container the command runs busybox `wget` of the official -alpine image; here it runs
 * Debian's GNU wget, which takes the same four options (-q, -O, -T and the URL).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { describe, test } from "node:test";
import { loadStackConfig, parseStackConfig } from "../../components/config";
import { OAUTH2_PROXY_SECRET_ENV, oauth2ProxyHealthcheck, renderOAuth2ProxySettings } from "../../components/identity/oauth2-proxy-settings";
import { readStackFile } from "../../components/stack-file";
import { GET_DEVICE_TOKEN } from "../../components/tailnet";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";
import { requireTool } from "../../scripts/lib/tools";

const freePort = () =>
    new Promise<number>((done) => {
        const s = createServer().listen(0, "127.0.0.1", () => {
            const port = (s.address() as { port: number }).port;
            s.close(() => done(port));
        });
    });

/** Run the healthcheck's CMD inside "the container" (here: this machine, same loopback). */
function runHealthcheck(port: number): number | null {
    const [cmd, bin, ...args] = oauth2ProxyHealthcheck(port);
    assert.equal(cmd, "CMD", "exec form: the -alpine image needs no shell for it");
    return spawnSync(bin, args, { timeout: 10_000, stdio: "ignore" }).status;
}

describe("oauth2-proxy healthcheck", () => {
    test("passes against the real oauth2-proxy started with the rendered flags, fails once it stops", async () => {
        const binary = requireTool("oauth2Proxy");
        const cfg = loadStackConfig({
            domain: "ollama.example.internal",
            // The cookie store: the default Redis store names the container `session-store`, which
            // only resolves on the stack's network (a lookup here would leave the machine); /ping needs no store.
            identity: { provider: "oidc", issuerUrl: "https://idp.example.internal", clientId: "zto", allowedEmailDomains: ["example.com"], sessionStore: "cookie" },
            oidcClientSecret: "s",
        });
        const port = await freePort();
        const { args } = renderOAuth2ProxySettings({ identity: cfg.identity, domain: cfg.domain, port: cfg.gateway.port, clientId: "zto" });
        assert.ok(args.includes("--http-address=0.0.0.0:4180"));
        // Only the listen address changes (loopback, a free port), plus endpoints in place of
        // discovery: no IdP is reachable here, and /ping never needs one.
        const local = [
            ...args.map((a) => (a.startsWith("--http-address=") ? `--http-address=127.0.0.1:${port}` : a)),
            "--skip-oidc-discovery=true",
            "--login-url=https://idp.example.internal/authorize",
            "--redeem-url=https://idp.example.internal/token",
            "--oidc-jwks-url=https://idp.example.internal/jwks",
        ];
        const proxy = spawn(binary, local, {
            stdio: ["ignore", "ignore", "pipe"],
            env: { PATH: process.env.PATH, [OAUTH2_PROXY_SECRET_ENV.clientSecret]: "s", [OAUTH2_PROXY_SECRET_ENV.cookieSecret]: randomBytes(16).toString("hex") },
        });
        let stderr = "";
        proxy.stderr.on("data", (b) => (stderr += b));
        const exited = new Promise<void>((done) => proxy.once("exit", () => done()));
        try {
            let status: number | null = -1;
            for (let i = 0; i < 50 && status !== 0 && proxy.exitCode === null; i++) {
                status = runHealthcheck(port);
                if (status !== 0) await new Promise((r) => setTimeout(r, 200));
            }
            assert.equal(status, 0, `healthcheck never passed; oauth2-proxy said:\n${stderr}`);
        } finally {
            proxy.kill("SIGTERM");
            await exited;
        }
        assert.notEqual(runHealthcheck(port), 0, "the healthcheck passed with nothing listening");
    });

    test("the program declares it on the oauth2-proxy container (prod stack under mocks)", async () => {
        const r = await runProgramUnderMocks(readStackFile("Pulumi.prod.yaml"), {
            stack: "prod",
            calls: { [GET_DEVICE_TOKEN]: (i) => ({ id: "x", hostname: i.hostname, name: i.hostname, addresses: ["100.64.0.1"], tags: [] }) },
        });
        assert.ok(r.ok);
        const c = r.resources.find((x) => x.type === "docker:index/container:Container" && x.name === "oauth2-proxy-container");
        assert.ok(c, "no oauth2-proxy container");
        assert.deepEqual(c.inputs.healthcheck.tests, oauth2ProxyHealthcheck());
        assert.match(r.resources.find((x) => x.name === "oauth2-proxy-image")!.inputs.name, /:v[\d.]+-alpine@sha256:/);
    });

    test("an identity.image without wget (the distroless tag) is refused, naming the key", () => {
        const base = { domain: "x.example", identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "c", allowedEmailDomains: ["example.com"] }, oidcClientSecret: "s" };
        const distroless = parseStackConfig({ ...base, identity: { ...base.identity, image: "quay.io/oauth2-proxy/oauth2-proxy:v7.15.6" } });
        assert.ok(!distroless.ok && distroless.problems.some((p) => p.path === "zero-trust-ollama:identity.image" && /-alpine variant.*no HTTP client/.test(p.message)), JSON.stringify(distroless));
        assert.ok(parseStackConfig({ ...base, identity: { ...base.identity, image: "quay.io/oauth2-proxy/oauth2-proxy:v7.15.6-alpine" } }).ok);
        assert.ok(parseStackConfig({ ...base, identity: { ...base.identity, image: `quay.io/oauth2-proxy/oauth2-proxy:v7.15.6-alpine@sha256:${"a".repeat(64)}` } }).ok);
    });
});
