/**
 * The pack against the real program: the mocked graphs of the example stacks pass every
 * mandatory policy, and breaking one invariant at a time in that graph makes the named policy
 * fire, at the broken resource.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { parseStackFile, readStackFile, type StackFile } from "../../components/stack-file";
import { POLICIES } from "../../policies/all";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";
import { graphFromMockRun, type GraphResource, type Violation } from "../../scripts/lib/policy-eval";
import { violations } from "./harness";

async function graphOf(file: StackFile, stack: string): Promise<GraphResource[]> {
    const run = await runProgramUnderMocks(file, { stack });
    assert.ok(run.ok, `stack config invalid: ${JSON.stringify(!run.ok && run.problems)}`);
    return graphFromMockRun(run.resources);
}

/** The production example with the tailnet policy applied by Pulumi (a tailscale.Acl resource). */
function prodWithManagedAcl(): StackFile {
    const doc = parse(readFileSync("Pulumi.prod.yaml", "utf8"));
    doc.config["zero-trust-ollama:tailscale"].manageAcl = true;
    return parseStackFile(stringify(doc), "Pulumi.prod.yaml (manageAcl: true)");
}

const evaluate = (graph: GraphResource[], config: Record<string, unknown> = {}): Promise<Violation[]> => violations(POLICIES, graph, config);
const mandatory = (vs: Violation[]) => vs.filter((v) => v.enforcementLevel === "mandatory");

interface Pick {
    readonly type: string;
    readonly name: string | RegExp;
}

/**
 * A deep copy of the graph with `change` applied to the props (inputs and outputs alike) of the
 * resources `pick` selects; returns the copy and the URNs changed.
 */
function mutate(graph: GraphResource[], pick: Pick, change: (props: Record<string, any>) => void): { graph: GraphResource[]; urns: string[] } {
    const copy = structuredClone(graph);
    const urns: string[] = [];
    for (const r of copy) {
        if (r.type !== pick.type || !(typeof pick.name === "string" ? r.name === pick.name : pick.name.test(r.name))) continue;
        change(r.inputs);
        if (r.outputs !== r.inputs) change(r.outputs);
        urns.push(r.urn);
    }
    assert.ok(urns.length > 0, `no ${pick.type} named ${pick.name} in the graph`);
    return { graph: copy, urns };
}

const CONTAINER = "docker:index/container:Container";
const labelsWithout = (labels: { label: string }[], label: string) => labels.filter((l) => l.label !== label);

describe("policy pack on the mocked program", () => {
    let dev: GraphResource[];
    let prod: GraphResource[];
    let prodAcl: GraphResource[];
    let nodes: GraphResource[];
    before(async () => {
        nodes = await graphOf(readStackFile("test/fixtures/Pulumi.nodes.yaml"), "nodes");
        dev = await graphOf(readStackFile("Pulumi.dev.yaml"), "dev");
        prod = await graphOf(readStackFile("Pulumi.prod.yaml"), "prod");
        prodAcl = await graphOf(prodWithManagedAcl(), "prod");
    });

    test("the graphs contain what the policies are about", () => {
        const types = new Set(prodAcl.map((r) => r.type));
        for (const t of [CONTAINER, "docker:index/network:Network", "tls:index/privateKey:PrivateKey", "tls:index/locallySignedCert:LocallySignedCert", "azuread:index/application:Application", "azuread:index/servicePrincipal:ServicePrincipal", "tailscale:index/acl:Acl", "random:index/randomBytes:RandomBytes"]) {
            assert.ok(types.has(t), `prod graph has no ${t}`);
        }
        const roles = prodAcl.filter((r) => r.type === CONTAINER).map((r) => r.inputs.labels.find((l: { label: string }) => l.label === "zero-trust-ollama.role")?.value);
        assert.deepEqual([...new Set(roles)].sort(), ["filter", "gateway", "gateway-config", "model-store-check", "oauth2-proxy", "ollama", "session-store"]);
    });

    test("the three-node stack passes every mandatory policy; the Ollama invariants are checked on each node", async () => {
        assert.deepEqual(mandatory(await evaluate(nodes)), []);
        const roles = nodes.filter((r) => r.type === CONTAINER).map((r) => r.inputs.labels.find((l: { label: string }) => l.label === "zero-trust-ollama.role")?.value);
        assert.deepEqual(roles.filter((r) => r === "ollama").length, 3);
        assert.deepEqual(roles.filter((r) => r === "enclave").length, 3);
        // Breaking one node's Ollama is caught on that node.
        const { graph, urns } = mutate(nodes, { type: CONTAINER, name: "node-gpu-c-ollama-container" }, (p) => (p.ports = [{ internal: 11434, external: 11434, ip: "100.101.1.3" }]));
        const fired = mandatory(await evaluate(graph)).filter((v) => v.policy === "ollama-disallow-host-ports");
        assert.deepEqual(fired.map((v) => v.urn), urns);
    });

    test("dev passes every mandatory policy; only the expected advisories remain", async () => {
        const vs = await evaluate(dev);
        assert.deepEqual(mandatory(vs), []);
        assert.deepEqual([...new Set(vs.map((v) => v.policy))].sort(), ["image-require-digest-pin", "ollama-require-gpu-reservation"]);
    });

    test("prod (with and without a managed ACL) passes every policy, even with digest pinning mandatory; only the Security Defaults preflight (requireMfa) is reported", async () => {
        for (const g of [prod, prodAcl]) {
            const vs = await evaluate(g, { "image-require-digest-pin": "mandatory" });
            assert.deepEqual(vs.map((v) => [v.policy, v.enforcementLevel]), [["entra-require-security-defaults-off", "advisory"]]);
        }
    });

    /** One broken invariant: which graph, what to change, which policy must fire. */
    interface Mutation {
        readonly what: string;
        readonly graph: () => GraphResource[];
        readonly pick: Pick;
        readonly change: (props: Record<string, any>) => void;
        readonly policy: string;
        readonly config?: Record<string, unknown>;
        /** Stack-wide policies may blame another resource than the mutated one. */
        readonly blamesOther?: boolean;
    }

    const ollama = { type: CONTAINER, name: "ollama-container" };
    const gateway = { type: CONTAINER, name: "gateway-container" };
    const enclave = { type: CONTAINER, name: "node-gpu-b-enclave" };
    const enclaveConf = (p: Record<string, any>) => p.uploads.find((u: { file: string }) => u.file.endsWith("nginx.conf"));
    const mutations: Mutation[] = [
        { what: "publish a node's enclave on 0.0.0.0", graph: () => nodes, pick: enclave, change: (p) => (p.ports[0].ip = "0.0.0.0"), policy: "ollama-require-node-enclave-mtls" },
        { what: "publish a node's enclave on loopback", graph: () => nodes, pick: enclave, change: (p) => (p.ports[0].ip = "127.0.0.1"), policy: "ollama-require-node-enclave-mtls" },
        { what: "enclave without ssl_verify_client on", graph: () => nodes, pick: enclave, change: (p) => (enclaveConf(p).content = enclaveConf(p).content.replace("ssl_verify_client on;", "ssl_verify_client optional;")), policy: "ollama-require-node-enclave-mtls" },
        { what: "enclave admitting any CA certificate (no gateway pin)", graph: () => nodes, pick: enclave, change: (p) => (enclaveConf(p).content = enclaveConf(p).content.replace(/if \(\$zto_gateway = ""\) \{[^\n]*\n/, "")), policy: "ollama-require-node-enclave-mtls" },
        { what: "publish Ollama's port", graph: () => prod, pick: ollama, change: (p) => (p.ports = [{ internal: 11434, external: 11434, ip: "127.0.0.1" }]), policy: "ollama-disallow-host-ports" },
        { what: "run Ollama on the host network", graph: () => dev, pick: ollama, change: (p) => (p.networkMode = "host"), policy: "container-disallow-host-namespaces" },
        { what: "join Ollama to the edge (non-internal) network", graph: () => prod, pick: ollama, change: (p) => p.networksAdvanced.push({ name: "zto-prod-edge" }), policy: "ollama-require-internal-network" },
        { what: "make Ollama's network routable", graph: () => dev, pick: { type: "docker:index/network:Network", name: "network-to-ollama" }, change: (p) => (p.internal = false), policy: "ollama-require-internal-network", blamesOther: true },
        { what: "share Ollama's network with the internet-facing oauth2-proxy", graph: () => prod, pick: { type: CONTAINER, name: "oauth2-proxy-container" }, change: (p) => p.networksAdvanced.push({ name: "zto-prod-to-ollama" }), policy: "ollama-restrict-network-peers", blamesOther: true },
        { what: "put the gateway on Ollama's network beside the filter", graph: () => dev, pick: gateway, change: (p) => p.networksAdvanced.push({ name: "zto-dev-to-ollama" }), policy: "ollama-restrict-network-peers", blamesOther: true },
        { what: "one shared backend network: Ollama joins the filter's network", graph: () => prod, pick: ollama, change: (p) => p.networksAdvanced.push({ name: "zto-prod-to-filter" }), policy: "ollama-restrict-network-peers" },
        { what: "give the host an address on Ollama's network", graph: () => prod, pick: { type: "docker:index/network:Network", name: "network-to-ollama" }, change: (p) => delete p.options["com.docker.network.bridge.inhibit_ipv4"], policy: "ollama-restrict-network-peers", blamesOther: true },
        { what: "give the host an address on a node's Ollama network", graph: () => nodes, pick: { type: "docker:index/network:Network", name: "node-gpu-b-network-to-ollama" }, change: (p) => (p.options["com.docker.network.bridge.inhibit_ipv4"] = "false"), policy: "ollama-restrict-network-peers", blamesOther: true },
        { what: "bind the gateway to 0.0.0.0", graph: () => prod, pick: gateway, change: (p) => (p.ports[0].ip = "0.0.0.0"), policy: "gateway-require-single-ingress" },
        { what: "leave the gateway's bind address unset", graph: () => dev, pick: gateway, change: (p) => delete p.ports[0].ip, policy: "gateway-require-single-ingress" },
        { what: "add a second publishing container (the filter)", graph: () => prod, pick: { type: CONTAINER, name: "filter-container" }, change: (p) => (p.ports = [{ internal: 8080, external: 8080, ip: "127.0.0.1" }]), policy: "gateway-require-single-ingress" },
        { what: "mount the Docker socket into the gateway", graph: () => prod, pick: gateway, change: (p) => p.mounts.push({ type: "bind", source: "/var/run/docker.sock", target: "/var/run/docker.sock" }), policy: "container-disallow-docker-socket" },
        { what: "run oauth2-proxy privileged", graph: () => prod, pick: { type: CONTAINER, name: "oauth2-proxy-container" }, change: (p) => (p.privileged = true), policy: "container-disallow-privileged" },
        { what: "cap_add SYS_ADMIN on the filter", graph: () => prod, pick: { type: CONTAINER, name: "filter-container" }, change: (p) => (p.capabilities.adds = ["SYS_ADMIN"]), policy: "container-disallow-dangerous-capabilities" },
        { what: "drop no-new-privileges from the gateway", graph: () => dev, pick: gateway, change: (p) => (p.securityOpts = []), policy: "container-require-no-new-privileges" },
        { what: "keep Docker's default capabilities on Ollama", graph: () => dev, pick: ollama, change: (p) => (p.capabilities = {}), policy: "container-require-dropped-capabilities" },
        { what: "remove Ollama's role label", graph: () => prod, pick: ollama, change: (p) => (p.labels = labelsWithout(p.labels, "zero-trust-ollama.role")), policy: "container-require-role-label" },
        { what: "move Ollama's models off the encrypted store", graph: () => prod, pick: ollama, change: (p) => (p.mounts = []), policy: "ollama-require-encrypted-model-store" },
        { what: "unpinned image under mandatory pinning", graph: () => prod, pick: { type: "docker:index/remoteImage:RemoteImage", name: "ollama-image" }, change: (p) => (p.name = "ollama/ollama:0.12.3"), policy: "image-require-digest-pin", config: { "image-require-digest-pin": "mandatory" } },
        { what: "weak RSA CA key", graph: () => prod, pick: { type: "tls:index/privateKey:PrivateKey", name: "pki-ca-key" }, change: (p) => Object.assign(p, { algorithm: "RSA", rsaBits: 2048, ecdsaCurve: undefined }), policy: "tls-require-strong-keys" },
        { what: "CA certificate also allowed to serve TLS", graph: () => dev, pick: { type: "tls:index/selfSignedCert:SelfSignedCert", name: "pki-ca" }, change: (p) => p.allowedUses.push("server_auth"), policy: "tls-restrict-ca-usage" },
        { what: "client cert with server_auth", graph: () => prod, pick: { type: "tls:index/locallySignedCert:LocallySignedCert", name: "pki-device-alice-laptop-cert" }, change: (p) => p.allowedUses.push("server_auth"), policy: "tls-restrict-client-cert-usage" },
        { what: "server cert valid for 398 days", graph: () => dev, pick: { type: "tls:index/locallySignedCert:LocallySignedCert", name: "pki-server-cert" }, change: (p) => (p.validityPeriodHours = 398 * 24), policy: "tls-limit-server-cert-validity" },
        { what: "implicit grant on", graph: () => prod, pick: { type: "azuread:index/application:Application", name: /./ }, change: (p) => (p.web.implicitGrant = { accessTokenIssuanceEnabled: true, idTokenIssuanceEnabled: false }), policy: "entra-disallow-implicit-grant" },
        { what: "http redirect URI", graph: () => prod, pick: { type: "azuread:index/application:Application", name: /./ }, change: (p) => p.web.redirectUris.push("http://ollama.corp.example.com/oauth2/callback"), policy: "entra-require-https-redirects" },
        { what: "multi-tenant sign-in", graph: () => prod, pick: { type: "azuread:index/application:Application", name: /./ }, change: (p) => (p.signInAudience = "AzureADandPersonalMicrosoftAccount"), policy: "entra-require-single-tenant" },
        { what: "service principal without assignment", graph: () => prod, pick: { type: "azuread:index/servicePrincipal:ServicePrincipal", name: /./ }, change: (p) => (p.appRoleAssignmentRequired = false), policy: "entra-require-assignment" },
        { what: "wildcard ACL", graph: () => prodAcl, pick: { type: "tailscale:index/acl:Acl", name: /./ }, change: (p) => (p.acl = JSON.stringify({ ...JSON.parse(p.acl), acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }] })), policy: "tailscale-disallow-wildcards" },
        { what: "ACL opens Ollama's port to the client tag", graph: () => prodAcl, pick: { type: "tailscale:index/acl:Acl", name: /./ }, change: (p) => (p.acl = JSON.stringify({ ...JSON.parse(p.acl), grants: [{ src: ["tag:ai-client"], dst: ["tag:ai-server"], ip: ["tcp:11434"] }] })), policy: "tailscale-restrict-server-access" },
        { what: "ACL without tests", graph: () => prodAcl, pick: { type: "tailscale:index/acl:Acl", name: /./ }, change: (p) => (p.acl = JSON.stringify({ ...JSON.parse(p.acl), tests: [] })), policy: "tailscale-require-acl-tests" },
        { what: "16-byte cookie secret", graph: () => prod, pick: { type: "random:index/randomBytes:RandomBytes", name: /cookie/ }, change: (p) => (p.length = 16), policy: "random-require-cookie-secret-length" },
    ];

    test("at least 12 distinct mutations, covering every mandatory policy", () => {
        assert.ok(mutations.length >= 12);
        const covered = new Set(mutations.map((m) => m.policy));
        const uncovered = POLICIES.filter((p) => p.enforcementLevel === "mandatory" && !covered.has(p.name)).map((p) => p.name);
        assert.deepEqual(uncovered, []);
    });

    for (const m of mutations) {
        test(`mutation: ${m.what} -> ${m.policy}`, async () => {
            const { graph, urns } = mutate(m.graph(), m.pick, m.change);
            const fired = (await evaluate(graph, m.config)).filter((v) => v.policy === m.policy);
            assert.ok(fired.length > 0, `${m.policy} did not fire`);
            assert.ok(fired.every((v) => v.enforcementLevel === "mandatory"), JSON.stringify(fired));
            if (!m.blamesOther) assert.ok(fired.some((v) => v.urn !== undefined && urns.includes(v.urn)), `${m.policy} blamed ${fired.map((v) => v.urn)} instead of ${urns}`);
            // The same policy is silent on the unbroken graph, so the mutation is what it caught.
            assert.deepEqual((await evaluate(m.graph(), m.config)).filter((v) => v.policy === m.policy && v.enforcementLevel === "mandatory"), []);
        });
    }
});
