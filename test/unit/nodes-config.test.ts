import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NODE_POOL_DEFAULTS, nodePoolSettings, parseStackConfig, type ConfigProblem } from "../../components/config";
import { readStackFile } from "../../components/stack-file";

const node = (name: string, address: string, models = ["llama3.2:3b"]) => ({ name, dockerHost: `ssh://deploy@${name}.example.com`, tailscaleAddress: address, models });
const pool = (ollama: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    domain: "ollama.example.internal",
    tailscale: { enabled: true },
    ollama,
    ...extra,
});

function problemsOf(raw: Record<string, unknown>): ConfigProblem[] {
    const r = parseStackConfig(raw);
    assert.equal(r.ok, false, "expected the config to be rejected");
    return r.ok ? [] : r.problems;
}

describe("ollama.nodes config", () => {
    test("the three-node fixture parses; defaults resolve per node", () => {
        const r = parseStackConfig(readStackFile("test/fixtures/Pulumi.nodes.yaml").raw);
        assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
        const p = nodePoolSettings(r.config)!;
        assert.deepEqual(p.nodes.map((n) => n.name), ["gpu-a", "gpu-b", "gpu-c"]);
        assert.deepEqual(p.nodes.map((n) => n.gpus), ["all", 2, "all"]);
        assert.deepEqual(p.nodes.map((n) => n.modelsPath), ["/srv/encrypted/ollama", "/srv/encrypted/ollama", "/srv/encrypted/big-models"]);
        assert.equal(p.nodeTag, NODE_POOL_DEFAULTS.nodeTag);
        assert.equal(p.enclavePort, NODE_POOL_DEFAULTS.enclavePort);
        assert.equal(p.defaultModel, "llama3.2:3b");
        assert.equal(p.failTimeoutSeconds, NODE_POOL_DEFAULTS.nodeFailTimeoutSeconds);
    });

    test("without ollama.nodes there is no pool and the parsed config has no pool keys", () => {
        const r = parseStackConfig({ domain: "ollama.example.internal" });
        assert.ok(r.ok);
        assert.equal(nodePoolSettings(r.config), undefined);
        assert.deepEqual(Object.keys(r.config.ollama).sort(), ["gpus", "image", "keepAlive", "memoryLimitMiB", "modelsPath"]);
        assert.equal("nodeTag" in r.config.tailscale, false);
    });

    test("with ollama.nodes the schema itself resolves every pool default into the parsed config", () => {
        const r = parseStackConfig(pool({ nodes: [node("gpu-a", "100.64.0.1", ["qwen2.5:7b", "llama3.2:3b"])] }));
        assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
        assert.equal(r.config.ollama.enclavePort, NODE_POOL_DEFAULTS.enclavePort);
        assert.equal(r.config.ollama.nodeFailTimeoutSeconds, NODE_POOL_DEFAULTS.nodeFailTimeoutSeconds);
        assert.equal(r.config.ollama.defaultModel, "qwen2.5:7b", "the first node's first model");
        assert.equal(r.config.tailscale.nodeTag, NODE_POOL_DEFAULTS.nodeTag);
        assert.equal(r.config.ollama.nodes![0].modelsPath, r.config.ollama.modelsPath);
        const set = parseStackConfig(pool({ nodes: [node("gpu-a", "100.64.0.1")], enclavePort: 12443, nodeFailTimeoutSeconds: 5 }, { tailscale: { enabled: true, nodeTag: "tag:gpu" } }));
        assert.ok(set.ok);
        assert.deepEqual([set.config.ollama.enclavePort, set.config.ollama.nodeFailTimeoutSeconds, set.config.tailscale.nodeTag], [12443, 5, "tag:gpu"], "a value the stack sets wins");
    });

    test("nodePoolSettings refuses a pool config that did not come through the schema", () => {
        const r = parseStackConfig(pool({ nodes: [node("gpu-a", "100.64.0.1")] }));
        assert.ok(r.ok);
        const { enclavePort: _dropped, ...ollama } = r.config.ollama;
        assert.throws(() => nodePoolSettings({ ...r.config, ollama }), /ollama\.enclavePort has no value/);
    });

    const invalid: { name: string; raw: Record<string, unknown>; path: string; says: RegExp }[] = [
        { name: "duplicate node names", raw: pool({ nodes: [node("gpu-a", "100.64.0.1"), node("gpu-a", "100.64.0.2")] }), path: "zero-trust-ollama:ollama.nodes[1].name", says: /duplicate node name "gpu-a" \(also ollama.nodes\[0\]\)/ },
        { name: "node name not a device-style name", raw: pool({ nodes: [node("GPU_A", "100.64.0.1")] }), path: "zero-trust-ollama:ollama.nodes[0].name", says: /\^\[a-z0-9\]/ },
        { name: "docker host over tcp", raw: pool({ nodes: [{ ...node("gpu-a", "100.64.0.1"), dockerHost: "tcp://10.0.0.5:2375" }] }), path: "zero-trust-ollama:ollama.nodes[0].dockerHost", says: /ssh:\/\/user@host/ },
        { name: "address outside the tailnet", raw: pool({ nodes: [node("gpu-a", "10.0.0.5")] }), path: "zero-trust-ollama:ollama.nodes[0].tailscaleAddress", says: /Tailscale address/ },
        { name: "the same address twice", raw: pool({ nodes: [node("gpu-a", "100.64.0.1"), node("gpu-b", "100.64.0.1")] }), path: "zero-trust-ollama:ollama.nodes[1].tailscaleAddress", says: /duplicate address/ },
        { name: "no models", raw: pool({ nodes: [node("gpu-a", "100.64.0.1", [])] }), path: "zero-trust-ollama:ollama.nodes[0].models", says: /at least one model/ },
        { name: "empty node list", raw: pool({ nodes: [] }), path: "zero-trust-ollama:ollama.nodes", says: /at least one node/ },
        { name: "pool without tailscale", raw: pool({ nodes: [node("gpu-a", "100.64.0.1")] }, { tailscale: { enabled: false } }), path: "zero-trust-ollama:ollama.nodes", says: /tailscale.enabled/ },
        { name: "pool with haproxy", raw: pool({ nodes: [node("gpu-a", "100.64.0.1")] }, { gateway: { kind: "haproxy" } }), path: "zero-trust-ollama:ollama.nodes", says: /gateway.kind: nginx/ },
        { name: "default model nobody serves", raw: pool({ nodes: [node("gpu-a", "100.64.0.1")], defaultModel: "llama3.1:70b" }), path: "zero-trust-ollama:ollama.defaultModel", says: /no node serves/ },
        { name: "node tag equals server tag", raw: pool({ nodes: [node("gpu-a", "100.64.0.1")] }, { tailscale: { enabled: true, nodeTag: "tag:ai-server" } }), path: "zero-trust-ollama:tailscale.nodeTag", says: /must differ/ },
        { name: "enclave port is Ollama's", raw: pool({ nodes: [node("gpu-a", "100.64.0.1")], enclavePort: 11434 }), path: "zero-trust-ollama:ollama.enclavePort", says: /must not be 11434/ },
        { name: "pool key without a pool", raw: { domain: "ollama.example.internal", ollama: { enclavePort: 11443 } }, path: "zero-trust-ollama:ollama.enclavePort", says: /only applies with ollama.nodes/ },
        { name: "unknown node key", raw: pool({ nodes: [{ ...node("gpu-a", "100.64.0.1"), gpu: 1 }] }), path: "zero-trust-ollama:ollama.nodes[0].gpu", says: /unknown key/ },
    ];
    for (const c of invalid) {
        test(`rejects ${c.name}, naming ${c.path}`, () => {
            const problems = problemsOf(c.raw);
            const hit = problems.find((p) => p.path === c.path);
            assert.ok(hit, `no problem at ${c.path}; got ${JSON.stringify(problems)}`);
            assert.match(hit.message, c.says);
        });
    }
});
