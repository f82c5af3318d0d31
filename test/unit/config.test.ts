import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { parseStackConfig, isTailscaleAddress, keyPath, type ConfigProblem } from "../../components/config";
import { parseStackFile, readStackFile, StackFileError } from "../../components/stack-file";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";

const base = () => ({
    domain: "ollama.example.internal",
    devices: [
        { name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] },
        { name: "bob-laptop", owner: "bob@example.com" },
    ],
});

function problemsOf(raw: Record<string, unknown>): ConfigProblem[] {
    const r = parseStackConfig(raw);
    assert.equal(r.ok, false, "expected the config to be rejected");
    return r.ok ? [] : r.problems;
}

/** Each case: a mutation of a valid config, the key path the error must name, and a word of the message. */
const invalid: { name: string; raw: Record<string, unknown>; path: string; says: RegExp }[] = [
    { name: "missing domain", raw: { devices: [] }, path: "zero-trust-ollama:domain", says: /required/ },
    { name: "uppercase device name", raw: { ...base(), devices: [{ name: "Alice", owner: "a@example.com" }] }, path: "zero-trust-ollama:devices[0].name", says: /\^\[a-z0-9\]/ },
    {
        name: "duplicate device names",
        raw: { ...base(), devices: [{ name: "a", owner: "a@example.com" }, { name: "b", owner: "b@example.com" }, { name: "a", owner: "c@example.com" }] },
        path: "zero-trust-ollama:devices[2].name",
        says: /duplicate device name "a" \(also devices\[0\]\)/,
    },
    { name: "owner not an email", raw: { ...base(), devices: [{ name: "a", owner: "alice" }] }, path: "zero-trust-ollama:devices[0].owner", says: /email/ },
    { name: "unknown top-level key", raw: { ...base(), gatway: {} }, path: "zero-trust-ollama:gatway", says: /unknown key/ },
    { name: "unknown nested key", raw: { ...base(), gateway: { prot: 443 } }, path: "zero-trust-ollama:gateway.prot", says: /unknown key/ },
    { name: "unknown device key", raw: { ...base(), devices: [{ name: "a", owner: "a@example.com", grups: [] }] }, path: "zero-trust-ollama:devices[0].grups", says: /unknown key/ },
    { name: "CORS wildcard", raw: { ...base(), gateway: { corsOrigins: ["*"] } }, path: "zero-trust-ollama:gateway.corsOrigins[0]", says: /never allowed/ },
    { name: "CORS http origin", raw: { ...base(), gateway: { corsOrigins: ["http://chat.example.com"] } }, path: "zero-trust-ollama:gateway.corsOrigins[0]", says: /https origin/ },
    { name: "CORS origin with path", raw: { ...base(), gateway: { corsOrigins: ["https://chat.example.com/app"] } }, path: "zero-trust-ollama:gateway.corsOrigins[0]", says: /no path/ },
    { name: "port out of range", raw: { ...base(), gateway: { port: 70000 } }, path: "zero-trust-ollama:gateway.port", says: /1-65535/ },
    { name: "port zero", raw: { ...base(), gateway: { port: 0 } }, path: "zero-trust-ollama:gateway.port", says: /1-65535/ },
    { name: "unknown gateway kind", raw: { ...base(), gateway: { kind: "envoy" } }, path: "zero-trust-ollama:gateway.kind", says: /nginx.*haproxy/ },
    {
        name: "unpinned ollama image when pinning is required",
        raw: { ...base(), requirePinnedImages: true, ollama: { image: "ollama/ollama:latest" }, gateway: { image: "nginx:1.28.0-alpine@sha256:" + "a".repeat(64) } },
        path: "zero-trust-ollama:ollama.image",
        says: /pinned by digest/,
    },
    { name: "entra without tenantId", raw: { ...base(), identity: { provider: "entra" } }, path: "zero-trust-ollama:identity.tenantId", says: /required when identity.provider is "entra"/ },
    { name: "oidc without issuer", raw: { ...base(), identity: { provider: "oidc", clientId: "x" }, oidcClientSecret: "s" }, path: "zero-trust-ollama:identity.issuerUrl", says: /required/ },
    { name: "oidc with http issuer", raw: { ...base(), identity: { provider: "oidc", clientId: "x", issuerUrl: "http://idp.example.com" }, oidcClientSecret: "s" }, path: "zero-trust-ollama:identity.issuerUrl", says: /https/ },
    { name: "oidc without client secret", raw: { ...base(), identity: { provider: "oidc", clientId: "x", issuerUrl: "https://idp.example.com" } }, path: "zero-trust-ollama:oidcClientSecret", says: /--secret/ },
    {
        name: "tailscale on, device without tailscaleDeviceId",
        raw: { ...base(), tailscale: { enabled: true } },
        path: "zero-trust-ollama:devices[0].tailscaleDeviceId",
        says: /required when tailscale.enabled/,
    },
    { name: "listen tailscale without tailscale", raw: { ...base(), gateway: { listen: "tailscale" } }, path: "zero-trust-ollama:gateway.listen", says: /tailscale.enabled/ },
    {
        name: "non-Tailscale server address",
        raw: { ...base(), devices: [], tailscale: { enabled: true, serverAddress: "10.0.0.5" } },
        path: "zero-trust-ollama:tailscale.serverAddress",
        says: /100\.64\.0\.0\/10/,
    },
    { name: "invalid tag", raw: { ...base(), tailscale: { serverTag: "ai-server" } }, path: "zero-trust-ollama:tailscale.serverTag", says: /tag:/ },
    { name: "bad gpus", raw: { ...base(), ollama: { gpus: "some" } }, path: "zero-trust-ollama:ollama.gpus", says: /"all", "none" or a GPU count/ },
    { name: "relative models path", raw: { ...base(), ollama: { modelsPath: "models" } }, path: "zero-trust-ollama:ollama.modelsPath", says: /absolute/ },
    { name: "bad pii action", raw: { ...base(), filter: { pii: "warn" } }, path: "zero-trust-ollama:filter.pii", says: /block.*redact.*off/ },
    { name: "bad model name", raw: { ...base(), filter: { modelsByGroup: { "*": ["llama 3"] } } }, path: 'zero-trust-ollama:filter.modelsByGroup.*[0]', says: /model name/ },
    { name: "haproxy with entra", raw: { ...base(), gateway: { kind: "haproxy" }, identity: { provider: "entra", tenantId: "00000000-1111-2222-3333-444444444444" } }, path: "zero-trust-ollama:identity.provider", says: /needs the nginx gateway/ },
    { name: "bad syslog address", raw: { ...base(), siem: { syslogAddress: "siem.internal:514" } }, path: "zero-trust-ollama:siem.syslogAddress", says: /udp:\/\/host:port/ },
    { name: "server cert validity over 397 days", raw: { ...base(), pki: { serverCertValidityDays: 825 } }, path: "zero-trust-ollama:pki.serverCertValidityDays", says: /397/ },
    { name: "bad docker host", raw: { ...base(), docker: { host: "tcp://0.0.0.0:2375" } }, path: "zero-trust-ollama:docker.host", says: /ssh:\/\// },
];

describe("stack config validation", () => {
    test("a minimal config gets the documented defaults", () => {
        const r = parseStackConfig({ domain: "ollama.example.internal" });
        assert.ok(r.ok);
        assert.equal(r.config.gateway.kind, "nginx");
        assert.equal(r.config.gateway.listen, "loopback");
        assert.equal(r.config.gateway.port, 8443);
        assert.equal(r.config.identity.provider, "none");
        assert.equal(r.config.ollama.gpus, "all");
        assert.equal(r.config.pki.clientCertValidityDays, 90);
        assert.deepEqual(r.config.devices, []);
        assert.equal(r.config.hasOidcClientSecret, false);
    });

    for (const c of invalid) {
        test(`rejects ${c.name}, naming ${c.path}`, () => {
            const problems = problemsOf(c.raw);
            const hit = problems.find((p) => p.path === c.path);
            assert.ok(hit, `no problem for ${c.path}; got ${JSON.stringify(problems)}`);
            assert.match(hit.message, c.says);
        });
    }

    test("every problem is reported at once", () => {
        const problems = problemsOf({ domain: "UPPER", gateway: { port: -1, corsOrigins: ["*"] }, devices: [{ name: "x y", owner: "nobody" }], bogus: true });
        const paths = problems.map((p) => p.path).sort();
        assert.deepEqual(paths, [
            "zero-trust-ollama:bogus",
            "zero-trust-ollama:devices[0].name",
            "zero-trust-ollama:devices[0].owner",
            "zero-trust-ollama:domain",
            "zero-trust-ollama:gateway.corsOrigins[0]",
            "zero-trust-ollama:gateway.port",
        ]);
    });

    test("the program registers nothing for invalid config and fails with a RunError naming the keys", async () => {
        const file = parseStackFile("config:\n  zero-trust-ollama:domain: ollama.example.internal\n  zero-trust-ollama:gateway:\n    corsOrigins: ['*']\n", "bad.yaml");
        const viaHarness = await runProgramUnderMocks(file);
        assert.equal(viaHarness.ok, false);
        assert.equal(viaHarness.resources.length, 0);
        // index.ts itself: importing the program must throw a RunError (clean exit, no stack trace).
        await assert.rejects(
            runProgramUnderMocks(file, { viaIndex: true }),
            (e: unknown) => e instanceof pulumi.RunError && /zero-trust-ollama:gateway\.corsOrigins\[0\]/.test((e as Error).message),
        );
    });

    test("key paths and Tailscale address ranges", () => {
        assert.equal(keyPath(["devices", 2, "name"]), "zero-trust-ollama:devices[2].name");
        assert.ok(isTailscaleAddress("100.64.0.1"));
        assert.ok(isTailscaleAddress("100.127.255.254"));
        assert.ok(!isTailscaleAddress("100.128.0.1"));
        assert.ok(!isTailscaleAddress("10.0.0.1"));
        assert.ok(isTailscaleAddress("fd7a:115c:a1e0::1"));
        assert.ok(!isTailscaleAddress("::"));
    });
});

describe("stack files", () => {
    test("secure values become present secrets with a placeholder; other namespaces are kept apart", () => {
        const f = parseStackFile(
            "config:\n  zero-trust-ollama:domain: x.example\n  zero-trust-ollama:oidcClientSecret:\n    secure: AAABAxyz\n  tailscale:tailnet: example.com\n",
            "s.yaml",
        );
        assert.deepEqual(f.secretKeys, ["oidcClientSecret"]);
        assert.equal(f.raw.oidcClientSecret, "[secret]");
        assert.deepEqual(f.otherConfig, { "tailscale:tailnet": "example.com" });
    });
    test("unreadable or malformed files fail with the file name", () => {
        assert.throws(() => readStackFile("/nonexistent/Pulumi.x.yaml"), (e: unknown) => e instanceof StackFileError && /Pulumi\.x\.yaml: cannot read/.test((e as Error).message));
        assert.throws(() => parseStackFile("config: [1, 2", "broken.yaml"), (e: unknown) => e instanceof StackFileError && /broken\.yaml: not valid YAML/.test((e as Error).message));
        assert.throws(() => parseStackFile("config: [1, 2]", "list.yaml"), /list\.yaml: "config" must be a mapping/);
    });
    test("both example stacks are valid", () => {
        for (const f of ["Pulumi.dev.yaml", "Pulumi.prod.yaml"]) {
            const r = parseStackConfig(readStackFile(f).raw);
            assert.ok(r.ok, `${f}: ${JSON.stringify(!r.ok && r.problems)}`);
        }
    });
});
