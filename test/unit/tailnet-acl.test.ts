import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseStackConfig, plaintextCredentialProblems, type ConfigProblem } from "../../components/config";
import { OLLAMA_PORT } from "../../components/ollama";
import { parseStackFile, providerConfigView } from "../../components/stack-file";
import { deniedTestPorts, renderTailnetPolicy, tailnetPolicyJson, type TailnetPolicy, type TailnetPolicyInput } from "../../components/tailnet/acl";

const input = (over: Partial<TailnetPolicyInput> = {}): TailnetPolicyInput => ({
    serverTag: "tag:ai-server",
    clientTag: "tag:ai-client",
    gatewayPort: 8443,
    allowedUsers: [],
    tagOwners: ["autogroup:admin"],
    ...over,
});

/** Every string anywhere in the document (keys included). */
function strings(v: unknown): string[] {
    if (typeof v === "string") return [v];
    if (Array.isArray(v)) return v.flatMap(strings);
    if (v && typeof v === "object") return Object.entries(v).flatMap(([k, x]) => [k, ...strings(x)]);
    return [];
}

/** What a wildcard-free, gateway-port-only policy must satisfy, whatever the input. */
function assertTight(p: TailnetPolicy, i: TailnetPolicyInput) {
    assert.deepEqual(strings(p).filter((s) => s.includes("*")), [], "no wildcard anywhere");
    const toServer = p.grants.filter((g) => g.dst.some((d) => d.startsWith(i.serverTag)));
    assert.equal(toServer.length, 1, "exactly one grant reaches the server tag");
    assert.deepEqual(toServer[0].dst, [i.serverTag]);
    assert.deepEqual(toServer[0].ip, [`tcp:${i.gatewayPort}`], "the gateway port only, TCP only, no range");
    assert.ok(!toServer[0].src.includes(i.serverTag), "the server does not grant itself");
    for (const src of toServer[0].src) {
        const t = p.tests.find((x) => x.src === src);
        assert.ok(t, `a policy test for source ${src}`);
        assert.deepEqual(t.accept, [`${i.serverTag}:${i.gatewayPort}`]);
        assert.ok(t.deny.length > 0);
        for (const d of t.deny) assert.notEqual(d, `${i.serverTag}:${i.gatewayPort}`);
    }
}

describe("renderTailnetPolicy", () => {
    test("default policy: exact tag owners, one grant, allow and deny tests", () => {
        const p = renderTailnetPolicy(input());
        assert.deepEqual(p, {
            tagOwners: { "tag:ai-server": ["autogroup:admin"], "tag:ai-client": ["autogroup:admin"] },
            grants: [{ src: ["tag:ai-client"], dst: ["tag:ai-server"], ip: ["tcp:8443"] }],
            tests: [{ src: "tag:ai-client", accept: ["tag:ai-server:8443"], deny: ["tag:ai-server:22", "tag:ai-server:8444", `tag:ai-server:${OLLAMA_PORT}`] }],
        });
        assertTight(p, input());
    });

    test("the tests deny Ollama's port and SSH on the server", () => {
        const [t] = renderTailnetPolicy(input()).tests;
        assert.ok(t.deny.includes("tag:ai-server:11434"));
        assert.ok(t.deny.includes("tag:ai-server:22"));
    });

    test("allowed users become sources with their own tests; duplicates collapse", () => {
        const i = input({ allowedUsers: ["alice@example.com", "bob@example.com", "alice@example.com"] });
        const p = renderTailnetPolicy(i);
        assert.deepEqual(p.grants[0].src, ["tag:ai-client", "alice@example.com", "bob@example.com"]);
        assert.deepEqual(p.tests.map((t) => t.src), ["tag:ai-client", "alice@example.com", "bob@example.com"]);
        assertTight(p, i);
    });

    test("custom tags and tag owners", () => {
        const i = input({ serverTag: "tag:gpu-box", clientTag: "tag:llm-users", tagOwners: ["group:sec-admins", "ops@example.com"], gatewayPort: 443 });
        const p = renderTailnetPolicy(i);
        assert.deepEqual(p.tagOwners, { "tag:gpu-box": ["group:sec-admins", "ops@example.com"], "tag:llm-users": ["group:sec-admins", "ops@example.com"] });
        assert.deepEqual(p.grants, [{ src: ["tag:llm-users"], dst: ["tag:gpu-box"], ip: ["tcp:443"] }]);
        assert.ok(!strings(p).some((s) => s.includes("ai-server") || s.includes("ai-client")));
        assertTight(p, i);
    });

    test("a gateway published on Ollama's port is not denied by its own test", () => {
        const i = input({ gatewayPort: OLLAMA_PORT });
        const p = renderTailnetPolicy(i);
        assert.deepEqual(p.tests[0].deny, ["tag:ai-server:22", "tag:ai-server:11435"]);
        assertTight(p, i);
    });

    test("denied neighbour port stays in range at the edges", () => {
        assert.deepEqual(deniedTestPorts(65535), [22, OLLAMA_PORT, 65534]);
        assert.deepEqual(deniedTestPorts(22), [23, OLLAMA_PORT]);
        assert.deepEqual(deniedTestPorts(21), [22, OLLAMA_PORT]);
    });

    test("many allowed users: every one tested, still one grant", () => {
        const users = Array.from({ length: 50 }, (_, n) => `user${n}@example.com`);
        const i = input({ allowedUsers: users });
        const p = renderTailnetPolicy(i);
        assert.equal(p.grants.length, 1);
        assert.equal(p.tests.length, 51);
        assertTight(p, i);
    });

    test("JSON text round-trips to the same document", () => {
        const p = renderTailnetPolicy(input({ allowedUsers: ["alice@example.com"] }));
        assert.deepEqual(JSON.parse(tailnetPolicyJson(p)), p);
    });
});

const tsBase = (tailscale: Record<string, unknown>, devices: unknown[] = [{ name: "a", owner: "a@example.com", tailscaleDeviceId: "nAAAAAAACNTRL" }]) => ({
    domain: "ollama.example.internal",
    devices,
    tailscale: { enabled: true, ...tailscale },
});

function problemsOf(raw: Record<string, unknown>): ConfigProblem[] {
    const r = parseStackConfig(raw);
    assert.equal(r.ok, false, "expected the config to be rejected");
    return r.ok ? [] : r.problems;
}

describe("tailscale config validation", () => {
    const invalid: { name: string; raw: Record<string, unknown>; path: string; says: RegExp }[] = [
        { name: "tag without tag: prefix", raw: tsBase({ serverTag: "ai-server" }), path: "zero-trust-ollama:tailscale.serverTag", says: /Tailscale tag like tag:ai-server/ },
        { name: "uppercase tag", raw: tsBase({ clientTag: "tag:AI-Client" }), path: "zero-trust-ollama:tailscale.clientTag", says: /Tailscale tag/ },
        { name: "tag starting with a digit", raw: tsBase({ clientTag: "tag:1client" }), path: "zero-trust-ollama:tailscale.clientTag", says: /lowercase letter/ },
        { name: "wildcard tag", raw: tsBase({ serverTag: "tag:*" }), path: "zero-trust-ollama:tailscale.serverTag", says: /Tailscale tag/ },
        { name: "tag with a space", raw: tsBase({ serverTag: "tag:ai server" }), path: "zero-trust-ollama:tailscale.serverTag", says: /Tailscale tag/ },
        { name: "same tag twice", raw: tsBase({ serverTag: "tag:ai", clientTag: "tag:ai" }), path: "zero-trust-ollama:tailscale.clientTag", says: /must differ/ },
        { name: "wildcard tag owner", raw: tsBase({ tagOwners: ["*"] }), path: "zero-trust-ollama:tailscale.tagOwners[0]", says: /autogroup:admin/ },
        { name: "every member as tag owner", raw: tsBase({ tagOwners: ["autogroup:member"] }), path: "zero-trust-ollama:tailscale.tagOwners[0]", says: /autogroup:admin/ },
        { name: "no tag owners", raw: tsBase({ tagOwners: [] }), path: "zero-trust-ollama:tailscale.tagOwners", says: /at least one owner/ },
        { name: "allowed user not an email", raw: tsBase({ allowedUsers: ["alice"] }), path: "zero-trust-ollama:tailscale.allowedUsers[0]", says: /email/ },
        { name: "allowed user wildcard", raw: tsBase({ allowedUsers: ["*"] }), path: "zero-trust-ollama:tailscale.allowedUsers[0]", says: /email/ },
        {
            name: "device without node id",
            raw: tsBase({}, [{ name: "a", owner: "a@example.com" }]),
            path: "zero-trust-ollama:devices[0].tailscaleDeviceId",
            says: /required when tailscale.enabled/,
        },
        {
            name: "two devices, one node",
            raw: tsBase({}, [
                { name: "a", owner: "a@example.com", tailscaleDeviceId: "nAAAAAAACNTRL" },
                { name: "b", owner: "b@example.com", tailscaleDeviceId: "nAAAAAAACNTRL" },
            ]),
            path: "zero-trust-ollama:devices[1].tailscaleDeviceId",
            says: /duplicate Tailscale node id .*devices\[0\]/,
        },
        { name: "non-Tailscale server address", raw: tsBase({ serverAddress: "192.168.1.10" }), path: "zero-trust-ollama:tailscale.serverAddress", says: /100\.64\.0\.0\/10/ },
        { name: "overwrite without manageAcl", raw: tsBase({ overwriteExistingAcl: true }), path: "zero-trust-ollama:tailscale.overwriteExistingAcl", says: /manageAcl: true/ },
        { name: "logstream without token", raw: tsBase({ logstream: "splunk", logstreamUrl: "https://siem.example.com/hec" }), path: "zero-trust-ollama:tailscaleLogstreamToken", says: /pulumi config set --secret tailscaleLogstreamToken/ },
        { name: "key expiry over 90 days", raw: tsBase({ authKeyExpiryHours: 2161 }), path: "zero-trust-ollama:tailscale.authKeyExpiryHours", says: /2160/ },
    ];
    for (const c of invalid) {
        test(`rejects ${c.name}, naming ${c.path}`, () => {
            const problems = problemsOf(c.raw);
            const hit = problems.find((p) => p.path === c.path);
            assert.ok(hit, `no problem at ${c.path}; got ${JSON.stringify(problems)}`);
            assert.match(hit.message, c.says);
        });
    }

    test("accepts custom tags, owners, users and a logstream with its token", () => {
        const r = parseStackConfig({
            ...tsBase({ serverTag: "tag:gpu", clientTag: "tag:llm-users", tagOwners: ["group:sec", "autogroup:owner"], allowedUsers: ["a@example.com"], logstream: "splunk", logstreamUrl: "https://siem.example.com/hec" }),
            tailscaleLogstreamToken: "[secret]",
        });
        assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
        assert.equal(r.config.hasTailscaleLogstreamToken, true);
        assert.deepEqual(r.config.tailscale.tagOwners, ["group:sec", "autogroup:owner"]);
    });
});

describe("provider credentials in the stack file", () => {
    const file = (apiKey: string, secret: string) =>
        parseStackFile(`config:\n  zero-trust-ollama:domain: ollama.example.internal\n  tailscale:tailnet: example.com\n  tailscale:apiKey: ${apiKey}\n  tailscale:oauthClientSecret: ${secret}\n`, "creds.yaml");

    test("plain-text apiKey and oauthClientSecret are errors naming each key, reported with the other problems", () => {
        const f = file("tskey-api-abc", "tskey-client-xyz");
        const r = parseStackConfig({ ...f.raw, gateway: { port: 0 } }, providerConfigView(f));
        assert.equal(r.ok, false);
        const paths = r.ok ? [] : r.problems.map((p) => p.path);
        assert.deepEqual(paths.sort(), ["tailscale:apiKey", "tailscale:oauthClientSecret", "zero-trust-ollama:gateway.port"]);
        const msg = r.ok ? "" : r.problems.find((p) => p.path === "tailscale:apiKey")!.message;
        assert.match(msg, /pulumi config set --secret tailscale:apiKey/);
        assert.doesNotMatch(msg, /tskey-api-abc/, "the error never repeats the credential");
    });

    test("secure: values are accepted and recorded as secret", () => {
        const f = file("{ secure: v1:AAAA }", "{ secure: v1:BBBB }");
        assert.deepEqual([...f.secureOtherKeys].sort(), ["tailscale:apiKey", "tailscale:oauthClientSecret"]);
        assert.ok(parseStackConfig(f.raw, providerConfigView(f)).ok);
    });

    test("other provider keys (tailnet, oauthClientId) may be plain text", () => {
        assert.deepEqual(plaintextCredentialProblems({ keys: ["tailscale:tailnet", "tailscale:oauthClientId"], isSecret: () => false }), []);
    });
});
