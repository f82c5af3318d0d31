/**
 * The GatewayPolicy (components/gateway/policy.ts): derived once after one validateGatewaySpec,
 * and rendered by both gateways alike: same checks with the same refusals, same hidden headers,
 * same validation messages.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { renderHaproxyCfg } from "../../components/gateway/haproxy";
import { HaproxyRenderError } from "../../components/gateway/haproxy/syntax";
import { renderNginxConf } from "../../components/gateway/nginx/gateway";
import { NginxRenderError } from "../../components/gateway/nginx/syntax";
import { deriveNodeSpec } from "../../components/gateway/node-spec";
import { checkOf, checksOf, deriveGatewayPolicy, deriveNodePolicy, HIDDEN_UPSTREAM_HEADERS, tlsPolicy } from "../../components/gateway/policy";
import { deriveGatewaySpec, missingBackend, validateGatewaySpec, type GatewaySpec } from "../../components/gateway/spec";

const fingerprint = (i: number) => (i + 1).toString(16).padStart(40, "0");

function specFor(kind: "nginx" | "haproxy", raw: Record<string, unknown> = {}): GatewaySpec {
    const cfg = loadStackConfig({ domain: "ollama.test", devices: [{ name: "alice", owner: "alice@example.com", groups: ["ml-eng"] }, { name: "ci", owner: "ci@example.com", apiKey: true }], ...raw, gateway: { kind, ...(raw.gateway as object) } });
    const facts = Object.fromEntries(cfg.devices.map((d, i) => [d.name, { fingerprintSha1: fingerprint(i), serial: String(i + 1), ...(d.apiKey ? { apiKeyDigest: "abcdefghijklmnopqrstuv" } : {}) }]));
    const pem = "/tmp/zto-policy-test/server.pem";
    return deriveGatewaySpec(cfg, facts, {
        listen: { host: "127.0.0.1", port: 18443 },
        tlsFiles: { cert: pem, key: pem, ca: "/tmp/zto-policy-test/ca.crt" },
        ollama: { host: "127.0.0.1", port: 11434 },
        filter: { host: "127.0.0.1", port: 18080 },
        oauth2Proxy: { host: "127.0.0.1", port: 4180 },
        runtimeDir: "/tmp/zto-policy-test/run",
        accessLog: "stdout",
        errorLog: "stderr",
    });
}

const OIDC = { identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedEmailDomains: ["example.com"] }, oidcClientSecret: "s" };

describe("deriveGatewayPolicy", () => {
    test("the checks in pipeline order, each with its refusal; API key and sign-in only where the spec needs them", () => {
        const ids = (spec: GatewaySpec) => deriveGatewayPolicy(spec, Error).checks.map((c) => c.id);
        assert.deepEqual(ids(specFor("haproxy")), ["protocol", "device", "absoluteForm", "host", "apiKey", "origin", "endpoint", "method", "size", "rate"]);
        assert.deepEqual(ids(specFor("nginx", OIDC)), ["protocol", "device", "absoluteForm", "host", "apiKey", "origin", "signIn", "endpoint", "method", "size", "rate"]);
        assert.deepEqual(ids(specFor("nginx", { devices: [{ name: "alice", owner: "alice@example.com" }] })), ["protocol", "device", "absoluteForm", "host", "origin", "endpoint", "method", "size", "rate"]);
        const policy = deriveGatewayPolicy(specFor("nginx", { gateway: { rateLimitPerMinute: 7, burst: 2, maxBodyKiB: 64, maxConnectionsPerClient: 3 } }), Error);
        assert.deepEqual(
            checksOf(policy, "route").map((c) => [c.id, c.refusal.code]),
            [
                ["endpoint", "route_not_allowed"],
                ["method", "method_not_allowed"],
                ["size", "request_too_large"],
                ["rate", "rate_limited"],
            ],
        );
        const { refusal, ...rate } = checkOf(policy, "rate");
        assert.equal(refusal.status, 429);
        assert.deepEqual(rate, { id: "rate", stage: "route", perMinute: 7, burst: 2, inFlight: 3, retryAfterSeconds: 9 });
        assert.equal(checkOf(policy, "size").maxBodyKiB, 64);
    });

    test("headers: three client headers kept, forwarded and identity headers set by the gateway, Server hidden", () => {
        const p = deriveGatewayPolicy(specFor("nginx"), Error);
        assert.deepEqual(p.requestHeaders.kept, ["Content-Type", "Accept", "User-Agent"]);
        assert.deepEqual(p.requestHeaders.identity.map((h) => h.source), ["user", "email", "groups", "device"]);
        assert.deepEqual(p.requestHeaders.forwarded.map((h) => h.name), ["X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id"]);
        assert.ok(p.responseHeaders.hidden.includes("Server"));
    });

    test("TLS: 1.3 only by default, 1.2 adds AEAD ECDHE suites only", () => {
        assert.deepEqual(tlsPolicy("1.3"), { protocols: ["TLSv1.3"], tls12Ciphers: [] });
        const t12 = tlsPolicy("1.2");
        assert.deepEqual(t12.protocols, ["TLSv1.2", "TLSv1.3"]);
        for (const c of t12.tls12Ciphers) assert.match(c, /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
    });

    test("the node policy: only the gateway's certificate, the allowlist and the size cap; no identity headers", () => {
        const node = deriveNodePolicy(
            deriveNodeSpec("gpu-a", { maxBodyKiB: 512, upstreamTimeoutSeconds: 60 }, "c".repeat(40), {
                listen: { host: "127.0.0.1", port: 21443 },
                tlsFiles: { cert: "/t/s.crt", key: "/t/s.key", ca: "/t/ca.crt" },
                ollama: { host: "127.0.0.1", port: 21434 },
                runtimeDir: "/t/run",
                accessLog: "/t/a.log",
                errorLog: "/t/e.log",
            }),
            Error,
        );
        assert.deepEqual(
            node.checks.map((c) => [c.id, c.refusal.code]),
            [
                ["device", "client_not_gateway"],
                ["endpoint", "route_not_allowed"],
                ["method", "method_not_allowed"],
                ["size", "request_too_large"],
            ],
        );
        assert.deepEqual(node.requestHeaders.identity, []);
        assert.deepEqual(node.tls.protocols, ["TLSv1.3"]);
    });
});

describe("both gateways render the one policy", () => {
    const nginx = renderNginxConf(specFor("nginx", { gateway: { corsOrigins: ["https://chat.example.com"] } }));
    const haproxy = renderHaproxyCfg(specFor("haproxy", { gateway: { corsOrigins: ["https://chat.example.com"] } }));
    const policy = deriveGatewayPolicy(specFor("haproxy"), Error);

    test("every refusal of the policy is answered by both configs", () => {
        for (const c of policy.checks) {
            if (c.refusal === "close") continue;
            for (const [name, conf] of [["nginx", nginx], ["haproxy", haproxy]]) assert.ok(conf.includes(`"code":"${c.refusal.code}"`), `${name} answers ${c.id} with ${c.refusal.code}`);
        }
    });

    test("every hidden upstream header is hidden by both (haproxy by prefix for Access-Control-*)", () => {
        for (const h of HIDDEN_UPSTREAM_HEADERS) {
            assert.ok(nginx.includes(`proxy_hide_header ${h};`), `nginx hides ${h}`);
            assert.ok(haproxy.includes(`http-response del-header ${h}\n`) || (h.startsWith("Access-Control-") && haproxy.includes("http-response del-header ^access-control- -m reg")), `haproxy hides ${h}`);
        }
    });

    test("the checks come in the policy's order in both configs", () => {
        const order = (conf: string, codes: readonly string[]) => codes.map((code) => conf.indexOf(`"code":"${code}"`));
        const codes = ["device_not_enrolled", "absolute_form_not_allowed", "unknown_host", "api_key_invalid", "origin_not_allowed", "route_not_allowed", "method_not_allowed"];
        for (const [name, conf] of [["nginx", nginx.slice(nginx.indexOf("location / {"))], ["haproxy", haproxy.slice(haproxy.indexOf("frontend zto_gateway"))]] as const) {
            const at = order(conf, codes);
            assert.ok(at.every((i) => i >= 0), `${name}: every check present`);
            assert.deepEqual([...at].sort((a, b) => a - b), at, `${name}: ${codes.join(" -> ")}`);
        }
    });
});

describe("validateGatewaySpec: one validation, each renderer's error type", () => {
    const cases: [string, (s: GatewaySpec) => GatewaySpec, RegExp][] = [
        ["bad fingerprint", (s) => ({ ...s, devices: [{ ...s.devices[0], fingerprintSha1: "AB:CD" }] }), /device "alice": fingerprintSha1 must be 40 lowercase hex/],
        ["wildcard origin", (s) => ({ ...s, corsOrigins: ["*"] }), /gateway\.corsOrigins: "\*" is not an exact https origin/],
        ["zero body cap", (s) => ({ ...s, limits: { ...s.limits, maxBodyKiB: 0 } }), /limits\.maxBodyKiB must be at least 1/],
        ["control character in a header value", (s) => ({ ...s, securityHeaders: [["X-Test", "a\nb"]] }), /security header X-Test: control characters/],
    ];
    for (const [name, bad, message] of cases) {
        test(`${name}: the same message from both renderers`, () => {
            assert.throws(() => renderNginxConf(bad(specFor("nginx"))), (e: unknown) => e instanceof NginxRenderError && message.test((e as Error).message));
            assert.throws(() => renderHaproxyCfg(bad(specFor("haproxy"))), (e: unknown) => e instanceof HaproxyRenderError && message.test((e as Error).message));
            assert.throws(() => validateGatewaySpec(bad(specFor("nginx")), TypeError), TypeError);
        });
    }
    test("what only haproxy needs is refused only for haproxy", () => {
        const owner = (s: GatewaySpec): GatewaySpec => ({ ...s, devices: [{ ...s.devices[0], owner: "alice smith" }] });
        assert.doesNotThrow(() => validateGatewaySpec(owner(specFor("nginx")), Error));
        assert.throws(() => validateGatewaySpec(owner(specFor("haproxy")), Error), /owner "alice smith" must be non-empty without whitespace/);
    });
    test("a backend the config needs is named when the component's args or the placement lack it", () => {
        const oidc = loadStackConfig({ domain: "ollama.test", identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedGroups: ["ml-eng"] }, oidcClientSecret: "x" } as never);
        const upstream = { host: "h", port: 1 };
        assert.equal(missingBackend(oidc, { filter: upstream }, "the Gateway"), "identity.provider is oidc but the Gateway has no oauth2-proxy address");
        assert.equal(missingBackend(oidc, { oauth2Proxy: upstream }, "the placement"), "filter.enabled is true but the placement has no filter address");
        assert.equal(missingBackend(oidc, { filter: upstream, oauth2Proxy: upstream }, "the Gateway"), undefined);
        const bare = loadStackConfig({ domain: "ollama.test", filter: { enabled: false } });
        assert.equal(missingBackend(bare, {}, "the Gateway"), undefined);
        const placement = { listen: { host: "127.0.0.1", port: 1 }, tlsFiles: { cert: "/c", key: "/k", ca: "/a" }, ollama: upstream, runtimeDir: "/r", accessLog: "/a.log", errorLog: "/e.log" };
        assert.throws(() => deriveGatewaySpec(oidc, {}, { ...placement, filter: upstream }), /identity\.provider is oidc but the placement has no oauth2-proxy address/);
    });
});
