/**
 * Shared by the policy tests: hand-built resources and a one-call way to run policies on them
 * through the pack's own analyzer server (the same path `plan` and `policy:check` take). One
 * server per test process serves the pack's POLICIES; a test names the policies it checks and
 * the others are disabled by policy config.
 */
import assert from "node:assert/strict";
import { after } from "node:test";
import type { Policies } from "@pulumi/policy";
import { hardenedContainerArgs, type Role } from "../../components/hardening";
import { POLICIES } from "../../policies/all";
import { resolvePolicyConfig, type GraphResource, type Violation } from "../../scripts/lib/policy-eval";
import { PolicyServer } from "../../scripts/lib/policy-server";

let server: Promise<PolicyServer> | undefined;
after(async () => {
    await server?.then((s) => s.stop());
});

/** The server this test process shares, started on first use and checked to serve exactly POLICIES. */
export function packServer(): Promise<PolicyServer> {
    server ??= PolicyServer.start().then(async (s) => {
        await s.expectPolicies(POLICIES.map((p) => p.name));
        return s;
    });
    return server;
}

/** A resource whose inputs and outputs are the given props (as after `pulumi up`). */
export function res(type: string, name: string, props: Record<string, any>, outputs: Record<string, any> = {}): GraphResource {
    return { urn: `urn:pulumi:test::zero-trust-ollama::${type}::${name}`, type, name, inputs: props, outputs: { ...props, ...outputs }, dependencies: [], propertyDependencies: {} };
}

export const IMAGE_ID = `sha256:${"a".repeat(64)}`;
export const DIGEST = `sha256:${"b".repeat(64)}`;

/** Container props as the program builds them: hardened, labelled with `role`, on the internal network. */
export function containerProps(role: string, extra: Record<string, any> = {}): Record<string, any> {
    return { image: IMAGE_ID, ...hardenedContainerArgs(role as Role, {}), networksAdvanced: [{ name: "zto-test-internal" }], ...extra };
}

export const CONTAINER = "docker:index/container:Container";

/**
 * Violations of the given policies (members of POLICIES; pack order) on the graph, as the
 * served pack reports them, with optional policy config.
 */
export async function violations(policies: Policies, graph: readonly GraphResource[], config: Record<string, unknown> = {}): Promise<Violation[]> {
    for (const p of policies) assert.ok(POLICIES.includes(p), `${p.name} is not in the pack's POLICIES`);
    const others = Object.fromEntries(POLICIES.filter((p) => !policies.includes(p)).map((p) => [p.name, "disabled"]));
    return (await packServer()).analyze(resolvePolicyConfig(POLICIES, { ...others, ...config }), graph);
}

/** Messages of the violations, for readable assertion failures. */
export async function messages(policies: Policies, graph: readonly GraphResource[], config: Record<string, unknown> = {}): Promise<string[]> {
    return (await violations(policies, graph, config)).map((v) => v.message);
}
