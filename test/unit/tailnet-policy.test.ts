/**
 * The policy pack's Tailscale policies against the ACL this program renders: the real rendered
 * policy passes; variants an attacker or a careless edit would produce fail.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { POLICIES } from "../../policies/all";
import { parseStackFile } from "../../components/stack-file";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";
import { graphFromMockRun, type Violation } from "../../scripts/lib/policy-eval";
import { violations } from "../policy/harness";

const ACL_TYPE = "tailscale:index/acl:Acl";
const TAILSCALE_POLICIES = POLICIES.filter((p) => p.name.startsWith("tailscale-"));

async function managedAclGraph(): Promise<RecordedResource[]> {
    const file = parseStackFile(
        [
            "config:",
            "  zero-trust-ollama:domain: ollama.example.internal",
            "  zero-trust-ollama:devices:",
            "    - name: alice-laptop",
            "      owner: alice@example.com",
            "      tailscaleDeviceId: nALICE0001CNTRL",
            "  zero-trust-ollama:gateway:",
            "    port: 8443",
            "    listen: tailscale",
            "  zero-trust-ollama:tailscale:",
            "    enabled: true",
            "    manageAcl: true",
            "    allowedUsers: [carol@example.com]",
            "    serverAddress: 100.101.102.103",
        ].join("\n") + "\n",
        "managed-acl.yaml",
    );
    const r = await runProgramUnderMocks(file);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.resources;
}

/** Evaluate only the Tailscale policies, with the gateway port given (the graph's gateway may not publish yet). */
async function tailscaleViolations(resources: RecordedResource[]): Promise<Violation[]> {
    return violations(TAILSCALE_POLICIES, graphFromMockRun(resources), { "tailscale-restrict-server-access": { gatewayPorts: [8443], allowedUsers: ["carol@example.com"] } });
}

/** The same graph with the Acl's policy document edited. */
function withPolicy(resources: RecordedResource[], edit: (policy: any) => void): RecordedResource[] {
    return resources.map((r) => {
        if (r.type !== ACL_TYPE) return r;
        const policy = JSON.parse(r.inputs.acl);
        edit(policy);
        return { ...r, inputs: { ...r.inputs, acl: JSON.stringify(policy) } };
    });
}

describe("policy pack on the rendered tailnet policy", () => {
    test("the pack has the three Tailscale policies", () => {
        assert.deepEqual(TAILSCALE_POLICIES.map((p) => p.name).sort(), ["tailscale-disallow-wildcards", "tailscale-require-acl-tests", "tailscale-restrict-server-access"]);
    });

    test("the rendered ACL passes every Tailscale policy", async () => {
        const resources = await managedAclGraph();
        assert.equal(resources.filter((r) => r.type === ACL_TYPE).length, 1);
        assert.deepEqual(await tailscaleViolations(resources), []);
    });

    test("a wildcard grant fails (every source, every port)", async () => {
        const bad = withPolicy(await managedAclGraph(), (p) => p.grants.push({ src: ["*"], dst: ["*"], ip: ["*"] }));
        const names = new Set((await tailscaleViolations(bad)).map((v) => v.policy));
        assert.ok(names.has("tailscale-disallow-wildcards"));
        assert.ok(names.has("tailscale-restrict-server-access"));
    });

    test("a legacy acls rule opening Ollama's port on the server fails", async () => {
        const bad = withPolicy(await managedAclGraph(), (p) => (p.acls = [{ action: "accept", src: ["tag:ai-client"], dst: ["tag:ai-server:11434"] }]));
        const v = await tailscaleViolations(bad);
        assert.ok(v.some((x) => x.policy === "tailscale-restrict-server-access" && /11434/.test(x.message)), JSON.stringify(v));
    });

    test("a policy without its tests fails", async () => {
        const bad = withPolicy(await managedAclGraph(), (p) => delete p.tests);
        assert.ok((await tailscaleViolations(bad)).some((x) => x.policy === "tailscale-require-acl-tests"));
    });
});
