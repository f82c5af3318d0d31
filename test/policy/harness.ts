/**
 * Shared by the policy tests: hand-built resources and a one-call way to run policies on them
 * through the offline evaluator (the same path `plan` and `policy:check` take).
 */
import type { Policies } from "@pulumi/policy";
import { hardenedContainerArgs, type Role } from "../../components/hardening";
import { evaluatePolicies, resolvePolicyConfig, type GraphResource, type Violation } from "../../scripts/lib/policy-eval";

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

/** Violations of the given policies (pack order) on the graph, with optional policy config. */
export async function violations(policies: Policies, graph: GraphResource[], config: Record<string, unknown> = {}): Promise<Violation[]> {
    return evaluatePolicies(resolvePolicyConfig(policies, config), graph);
}

/** Messages of the violations, for readable assertion failures. */
export async function messages(policies: Policies, graph: GraphResource[], config: Record<string, unknown> = {}): Promise<string[]> {
    return (await violations(policies, graph, config)).map((v) => v.message);
}
