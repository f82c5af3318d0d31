import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { certIdentity } from "../../components/certs";
import { NODE_TLS_NAME } from "../../components/gateway/node-spec";
import { parseStackFile, readStackFile } from "../../components/stack-file";
import type { StackOutputs } from "../../components/stack";
import { graphSnapshot } from "../../scripts/lib/graph-snapshot";
import { fakeCertPem } from "../../scripts/lib/mock-outputs";
import { outputOf, runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";

const FIXTURE = path.join(__dirname, "../fixtures/one-node-graphs.json");

describe("one-node stacks (no ollama.nodes)", () => {
    // The fixture was recorded (scripts/snapshot-graph.ts, in a checkout of the commit before the node
    // pool was wired into the stack): same URNs, parents and inputs mean `pulumi up` plans no change
    // for an existing one-node stack. A change that MEANS to alter these graphs records it again:
    //   npm run -s graph:snapshot -- Pulumi.dev.yaml Pulumi.prod.yaml > test/fixtures/one-node-graphs.json
    const before = JSON.parse(readFileSync(FIXTURE, "utf8")) as Record<string, ReturnType<typeof graphSnapshot>>;
    for (const file of ["Pulumi.dev.yaml", "Pulumi.prod.yaml"]) {
        test(`${file}: the graph equals the one recorded before the node pool`, async () => {
            const r = await runProgramUnderMocks(readStackFile(file));
            assert.ok(r.ok, "config accepted");
            const now = graphSnapshot(r.resources);
            const hint = "a one-node stack's graph changed; if that is intended, record it again (see the comment above)";
            assert.deepEqual(now.map((x) => x.urn), before[file].map((x) => x.urn), `same URNs: ${hint}`);
            assert.deepEqual(now, before[file], `same parents and inputs: ${hint}`);
        });
    }
});

const CONTAINER = "docker:index/container:Container";
const NODES_FILE = "test/fixtures/Pulumi.nodes.yaml";
type Graph = { resources: RecordedResource[]; outputs: StackOutputs };

async function nodesGraph(edit?: (doc: any) => void): Promise<Graph> {
    const doc = parse(readFileSync(NODES_FILE, "utf8"));
    edit?.(doc);
    const r = await runProgramUnderMocks(parseStackFile(stringify(doc), NODES_FILE), { stack: "nodes" });
    assert.ok(r.ok, `config rejected: ${JSON.stringify(!r.ok && r.problems)}`);
    return r;
}
const named = (g: Graph, type: string, name: string) => {
    const r = g.resources.find((x) => x.type === type && x.name === name);
    assert.ok(r, `no ${type} named ${name}`);
    return r;
};
const roleOf = (r: RecordedResource) => (r.inputs.labels as { label: string; value: string }[]).find((l) => l.label === "zero-trust-ollama.role")?.value;
const NODES = [
    { name: "gpu-a", host: "ssh://deploy@gpu-a.corp.example.com", address: "100.101.1.1", gpus: "all", modelsPath: "/srv/encrypted/ollama" },
    { name: "gpu-b", host: "ssh://deploy@gpu-b.corp.example.com", address: "100.101.1.2", gpus: "2", modelsPath: "/srv/encrypted/ollama" },
    { name: "gpu-c", host: "ssh://deploy@gpu-c.corp.example.com", address: "100.101.1.3", gpus: "all", modelsPath: "/srv/encrypted/big-models" },
];

describe("three-node stack (ollama.nodes)", () => {
    let g: Graph;
    before(async () => {
        g = await nodesGraph();
    });

    test("each node has its own Docker provider for its host, and its resources use it", () => {
        for (const n of NODES) {
            const provider = named(g, "pulumi:providers:docker", `node-${n.name}-docker`);
            assert.equal(provider.inputs.host, n.host);
            const owned = g.resources.filter((r) => r.custom && r.name.startsWith(`node-${n.name}-`) && r.type !== "pulumi:providers:docker");
            assert.ok(owned.length >= 6, `node ${n.name} owns its networks, images, volume and containers`);
            for (const r of owned) assert.ok(r.provider?.startsWith(provider.urn + "::"), `${r.name} runs on ${r.provider}, not on node ${n.name}'s host`);
        }
    });

    test("each node's Ollama keeps the single-node invariants: no port, its own internal network only, GPU, encrypted store", () => {
        const ollamas = g.resources.filter((r) => r.type === CONTAINER && roleOf(r) === "ollama");
        assert.deepEqual(ollamas.map((r) => r.name).sort(), NODES.map((n) => `node-${n.name}-ollama-container`));
        for (const n of NODES) {
            const c = named(g, CONTAINER, `node-${n.name}-ollama-container`);
            const internal = named(g, "docker:index/network:Network", `node-${n.name}-network-to-ollama`);
            assert.equal(c.inputs.ports, undefined);
            assert.equal(internal.inputs.internal, true);
            assert.deepEqual((c.inputs.networksAdvanced as { name: string }[]).map((x) => x.name), [internal.inputs.name]);
            assert.equal(c.inputs.gpus, n.gpus);
            assert.ok((c.inputs.envs as string[]).includes("OLLAMA_NO_CLOUD=1"));
            assert.deepEqual((c.inputs.mounts as { source: string }[]).map((m) => m.source), [n.modelsPath]);
        }
        assert.equal(g.resources.find((r) => r.name === "ollama"), undefined, "no Ollama next to the gateway");
    });

    test("each node's enclave proxy publishes one port, on the node's Tailscale address, with its own certificate", () => {
        for (const n of NODES) {
            const c = named(g, CONTAINER, `node-${n.name}-enclave`);
            assert.equal(roleOf(c), "enclave");
            assert.deepEqual(c.inputs.ports, [{ internal: 8443, external: 11443, ip: n.address, protocol: "tcp" }]);
            const uploads = c.inputs.uploads as { file: string; content: string }[];
            const conf = uploads.find((u) => u.file.endsWith("nginx.conf"))!.content;
            assert.match(conf, /ssl_verify_client on;/);
            assert.match(conf, new RegExp(`server zto-nodes-${n.name}-ollama:11434 max_fails=0;`));
            const gatewayFp = certIdentity(fakeCertPem("pki-gateway-client-cert")).sha1;
            assert.match(conf, new RegExp(`${gatewayFp} "gateway";`));
            assert.equal(uploads.find((u) => u.file.endsWith("enclave.crt"))!.content, fakeCertPem(`pki-node-${n.name}-cert`));
            assert.ok(c.secretInputs.includes("uploads"), "the enclave key is uploaded as a secret");
            const csr = named(g, "tls:index/certRequest:CertRequest", `pki-node-${n.name}-csr`);
            assert.deepEqual(csr.inputs.ipAddresses, [n.address]);
            assert.deepEqual(csr.inputs.dnsNames, [n.name, NODE_TLS_NAME]);
        }
    });

    test("the gateway gets a dedicated client certificate and routes to the pool over mTLS", () => {
        const cert = named(g, "tls:index/locallySignedCert:LocallySignedCert", "pki-gateway-client-cert");
        assert.ok((cert.inputs.allowedUses as string[]).includes("client_auth"));
        assert.ok(!(cert.inputs.allowedUses as string[]).includes("server_auth"), "the gateway's client certificate cannot serve TLS");
        const uploads = named(g, CONTAINER, "gateway-config-writer").inputs.uploads as { file: string; content: string }[];
        assert.equal(uploads.find((u) => u.file.endsWith("node-client.crt"))!.content, fakeCertPem("pki-gateway-client-cert"));
        assert.ok(uploads.some((u) => u.file.endsWith("node-client.key")));
        const conf = uploads.find((u) => u.file.endsWith("nginx.conf"))!.content;
        for (const n of NODES) assert.match(conf, new RegExp(`server ${n.address.replace(/\./g, "\\.")}:11443 max_fails=1 fail_timeout=30s; # ${n.name}`));
        assert.match(conf, /proxy_ssl_certificate "\/etc\/nginx\/zto\/current\/tls\/node-client\.crt";/);
        const filter = named(g, CONTAINER, "filter-container");
        assert.ok((filter.inputs.command as string[]).includes("http://zto-nodes-gateway:8480"), "the filter sends allowed requests to the gateway's pool router");
    });

    test("the tailnet policy lets only the gateway host reach the nodes' enclave port, with tests for allow and deny", async () => {
        const policy = JSON.parse((await outputOf(g.outputs.tailnetPolicy!)).value);
        const toNodes = policy.grants.filter((gr: { dst: string[] }) => gr.dst.includes("tag:ai-node"));
        assert.deepEqual(toNodes, [{ src: ["tag:ai-server"], dst: ["tag:ai-node"], ip: ["tcp:11443"] }]);
        assert.deepEqual(policy.tagOwners["tag:ai-node"], ["autogroup:admin"]);
        const fromServer = policy.tests.find((t: { src: string }) => t.src === "tag:ai-server");
        assert.deepEqual(fromServer, { src: "tag:ai-server", accept: ["tag:ai-node:11443"], deny: ["tag:ai-node:22", "tag:ai-node:11434", "tag:ai-node:11444"] });
        const fromClient = policy.tests.find((t: { src: string }) => t.src === "tag:ai-client");
        assert.ok(fromClient.deny.includes("tag:ai-node:11443"), "a client device cannot reach an enclave directly");
        for (const n of NODES) named(g, "tailscale:index/tailnetKey:TailnetKey", `tailnet-node-${n.name}-key`);
        const keys = await outputOf(g.outputs.nodeAuthKeys!);
        assert.equal(keys.secret, true);
        assert.deepEqual(Object.keys(keys.value).sort(), NODES.map((n) => n.name));
    });

    test("removing a node removes exactly its resources and nothing else", async () => {
        const without = await nodesGraph((doc) => {
            const ollama = doc.config["zero-trust-ollama:ollama"];
            ollama.nodes = ollama.nodes.filter((n: { name: string }) => n.name !== "gpu-b");
        });
        const before = new Set(g.resources.map((r) => r.urn));
        const after = new Set(without.resources.map((r) => r.urn));
        const removed = [...before].filter((u) => !after.has(u));
        const added = [...after].filter((u) => !before.has(u));
        assert.deepEqual(added, []);
        assert.ok(removed.length >= 15, `gpu-b had its own resources (${removed.length})`);
        for (const u of removed) assert.match(u.split("::").pop()!, /(^|-)gpu-b(-|$)/, `${u} is not one of gpu-b's resources`);
        // The other nodes' resources are untouched, inputs included.
        const inputsOf = (gr: Graph) => new Map(gr.resources.filter((r) => /node-gpu-(a|c)-|pki-node-gpu-(a|c)-/.test(r.name)).map((r) => [r.urn, r.maskedInputs]));
        assert.deepEqual(inputsOf(without), inputsOf(g));
        // The gateway's pool no longer names gpu-b.
        const conf = (named(without, CONTAINER, "gateway-config-writer").inputs.uploads as { file: string; content: string }[]).find((u) => u.file.endsWith("nginx.conf"))!.content;
        assert.doesNotMatch(conf, /100\.101\.1\.2|gpu-b/);
    });
});
