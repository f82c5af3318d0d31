import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parseStackConfig, type StackConfig } from "../../components/config";
import { renderNginxConf } from "../../components/gateway/nginx/gateway";
import { NginxRenderError } from "../../components/gateway/nginx/syntax";
import { deriveGatewaySpec, type GatewayDeviceFacts, type GatewayPlacement } from "../../components/gateway/spec";
import { apiKeyDigest } from "../../components/identity/api-keys";

const KEY = "k".repeat(48);

function config(identity: Record<string, unknown>, extra: Record<string, unknown> = {}): StackConfig {
    const r = parseStackConfig({
        domain: "ollama.test",
        devices: [
            { name: "ci", owner: "ci@example.com", groups: ["ci"], apiKey: true },
            { name: "laptop", owner: "dev@example.com" },
        ],
        identity,
        filter: { enabled: false },
        ...extra,
    });
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    return r.config;
}

const placement = (dir: string): GatewayPlacement => ({
    listen: { host: "127.0.0.1", port: 18443 },
    tlsFiles: { cert: join(dir, "server.crt"), key: join(dir, "server.key"), ca: join(dir, "ca.crt") },
    ollama: { host: "127.0.0.1", port: 11434 },
    oauth2Proxy: { host: "127.0.0.1", port: 4180 },
    runtimeDir: join(dir, "run"),
    accessLog: join(dir, "access.log"),
    errorLog: join(dir, "error.log"),
});

const facts = (digest: string | undefined): GatewayDeviceFacts => ({
    ci: { fingerprintSha1: "a".repeat(40), serial: "01", apiKeyDigest: digest },
    laptop: { fingerprintSha1: "b".repeat(40), serial: "02" },
});

const OIDC = { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "c", allowedEmailDomains: ["example.com"] };

describe("API keys in the gateway spec and nginx.conf", () => {
    test("the spec carries only the digest, and only for apiKey devices", () => {
        const spec = deriveGatewaySpec(config({}), { ...facts(apiKeyDigest(KEY)), laptop: { fingerprintSha1: "b".repeat(40), serial: "02", apiKeyDigest: apiKeyDigest("x") } }, placement("/tmp/x"));
        assert.equal(spec.devices.find((d) => d.name === "ci")!.apiKeyDigest, apiKeyDigest(KEY));
        assert.equal(spec.devices.find((d) => d.name === "laptop")!.apiKeyDigest, undefined, "a digest for a device without apiKey: true is ignored");
        assert.ok(!JSON.stringify(spec).includes(KEY));
    });

    test("an apiKey device without a digest is an error, not a silently keyless device", () => {
        assert.throws(() => deriveGatewaySpec(config({}), facts(undefined), placement("/tmp/x")), /device "ci" has apiKey: true but no API key digest/);
    });

    test("the rendered config holds the digest, never the key, and rejects malformed digests", () => {
        const conf = renderNginxConf(deriveGatewaySpec(config(OIDC, { oidcClientSecret: "s" }), facts(apiKeyDigest(KEY)), placement("/tmp/x")));
        assert.ok(conf.includes(`"${apiKeyDigest(KEY)}"`));
        assert.ok(!conf.includes(KEY));
        assert.match(conf, /secure_link \$zto_api_key_digest;/);
        const bad = deriveGatewaySpec(config({}), facts("not a digest!"), placement("/tmp/x"));
        assert.throws(() => renderNginxConf(bad), (e: unknown) => e instanceof NginxRenderError && /device "ci": apiKeyDigest/.test((e as Error).message));
    });

    test("without keyed devices the API key section renders nothing", () => {
        const raw = { domain: "ollama.test", devices: [{ name: "laptop", owner: "dev@example.com" }], filter: { enabled: false } };
        const r = parseStackConfig(raw);
        assert.ok(r.ok);
        const conf = renderNginxConf(deriveGatewaySpec(r.config, { laptop: { fingerprintSha1: "b".repeat(40), serial: "02" } }, placement("/tmp/x")));
        assert.doesNotMatch(conf, /api_key|secure_link/);
    });

    test("nginx -t accepts the rendered config with keys, for identity none and oidc", () => {
        const dir = join(tmpdir(), `zto-apikey-${process.pid}`);
        mkdirSync(join(dir, "run"), { recursive: true });
        // Throwaway self-signed cert: nginx -t loads the certificate files.
        execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=ollama.test", "-days", "1", "-keyout", join(dir, "server.key"), "-out", join(dir, "server.crt")], { stdio: "ignore" });
        writeFileSync(join(dir, "ca.crt"), readFileSync(join(dir, "server.crt")));
        try {
            for (const [name, cfg] of [["none", config({})], ["oidc", config(OIDC, { oidcClientSecret: "s" })]] as const) {
                const file = join(dir, `nginx-${name}.conf`);
                writeFileSync(file, renderNginxConf(deriveGatewaySpec(cfg, facts(apiKeyDigest(KEY)), placement(dir))));
                execFileSync("nginx", ["-t", "-q", "-c", file, "-p", `${dir}/run/`, "-e", join(dir, "error.log")], { stdio: ["ignore", "pipe", "pipe"] });
            }
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
