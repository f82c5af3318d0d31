/**
 * `npm run plan`'s policy evaluation, in process: the pack's own POLICIES run over the mocked
 * graph the way @pulumi/policy's analyzer server runs them (type filter, not-applicable,
 * enforcement levels, stack links). plan keeps this path because the real server
 * (./policy-server, which `policy:check` uses) made the 1,000-device plan 2.3 times as costly
 * (docs/policies.md has the figures); test/policy/pack-server.test.ts and the probe tests in
 * test/policy/policy-eval.test.ts prove both report the same. A mocked graph has no unknown
 * values, so the analyzer's unknown-value proxy has nothing to catch here.
 */
import type {
    PolicyResource,
    ReportViolation,
    ResourceValidation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
} from "@pulumi/policy";
import { PolicyEvaluationError, providerResolver, type GraphResource, type ResolvedPolicy, type Violation } from "./policy-eval";


class NotApplicable extends Error {}
const notApplicable = (reason?: string): never => {
    throw new NotApplicable(reason);
};

/** Same test as the CrossGuard server: the class's `__pulumiType`, else its `isInstance`. */
function isTypeOf(type: string, resourceClass: unknown): boolean {
    const token = (resourceClass as { __pulumiType?: unknown })?.__pulumiType;
    if (typeof token === "string" && token) return type === token;
    const isInstance = (resourceClass as { isInstance?: unknown })?.isInstance;
    return typeof isInstance === "function" && isInstance({ __pulumiType: type }) === true;
}

const NO_TAGS: ReadonlyMap<string, string> = new Map();

function optionsOf(r: GraphResource) {
    return { protect: false, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: [], parent: r.parent };
}

/** What resource and stack policies both get about one resource: identity, options, props and type checks. */
function resourceView(r: GraphResource, props: Record<string, any>): Pick<PolicyResource, "type" | "props" | "urn" | "name" | "opts" | "isType" | "asType"> {
    return {
        type: r.type,
        props,
        urn: r.urn,
        name: r.name,
        opts: optionsOf(r),
        isType: (cls) => isTypeOf(r.type, cls),
        asType: ((cls: unknown) => (isTypeOf(r.type, cls) ? props : undefined)) as PolicyResource["asType"],
    };
}

async function runResourcePolicy(rp: ResolvedPolicy, graph: readonly GraphResource[], out: Violation[]): Promise<void> {
    const policy = rp.policy as ResourceValidationPolicy;
    const validations = ([] as ResourceValidation[]).concat(policy.validateResource ?? []);
    const providerOf = providerResolver(graph);
    for (const validate of validations) {
        const onlyType = (validate as { __pulumiType?: string }).__pulumiType;
        for (const r of graph) {
            if (onlyType && r.type !== onlyType) continue;
            const report: ReportViolation = (message) => out.push({ policy: policy.name, enforcementLevel: rp.enforcementLevel, urn: r.urn, message });
            // Same shape as a stack policy's resource; only asType's declared type differs.
            const args = {
                ...resourceView(r, r.inputs),
                stackTags: NO_TAGS,
                getConfig: <T extends object>() => structuredClone(rp.config) as T,
                notApplicable,
            } as unknown as ResourceValidationArgs;
            const provider = providerOf(r);
            if (provider) args.provider = provider;
            try {
                await validate(args, report);
            } catch (e) {
                if (!(e instanceof NotApplicable)) throw new PolicyEvaluationError(policy.name, r.urn, e);
            }
        }
    }
}

/** PolicyResource objects linked to their parents and dependencies, as the analyzer builds them. */
function stackResources(graph: readonly GraphResource[]): PolicyResource[] {
    const byUrn = new Map<string, PolicyResource>();
    const providerOf = providerResolver(graph);
    const built = graph.map((r) => {
        const pr: PolicyResource = { ...resourceView(r, r.outputs), dependencies: [], propertyDependencies: {} };
        const provider = providerOf(r);
        if (provider) pr.provider = provider;
        byUrn.set(r.urn, pr);
        return pr;
    });
    const resolve = (urns: readonly string[]) => urns.map((u) => byUrn.get(u)).filter((x): x is PolicyResource => x !== undefined);
    graph.forEach((r, i) => {
        const pr = built[i];
        if (r.parent) pr.parent = byUrn.get(r.parent);
        pr.dependencies = resolve(r.dependencies);
        pr.propertyDependencies = Object.fromEntries(Object.entries(r.propertyDependencies).map(([k, urns]) => [k, resolve(urns)]));
    });
    return built;
}

async function runStackPolicy(rp: ResolvedPolicy, graph: readonly GraphResource[], out: Violation[]): Promise<void> {
    const policy = rp.policy as StackValidationPolicy;
    const args: StackValidationArgs = {
        resources: stackResources(graph),
        stackTags: NO_TAGS,
        getConfig: <T extends object>() => structuredClone(rp.config) as T,
        notApplicable,
    };
    const report: ReportViolation = (message, urn) => out.push({ policy: policy.name, enforcementLevel: rp.enforcementLevel, urn, message });
    try {
        await policy.validateStack(args, report);
    } catch (e) {
        if (!(e instanceof NotApplicable)) throw new PolicyEvaluationError(policy.name, undefined, e);
    }
}

/**
 * Run every enabled policy over the graph; violations come back in pack order, then graph order.
 * A "remediate" level is reported as mandatory, as the analyzer does when a violation remains.
 */
export async function evaluatePolicies(resolved: readonly ResolvedPolicy[], graph: readonly GraphResource[]): Promise<Violation[]> {
    const out: Violation[] = [];
    for (const rp of resolved) {
        if (rp.enforcementLevel === "disabled") continue;
        const effective = rp.enforcementLevel === "remediate" ? { ...rp, enforcementLevel: "mandatory" as const } : rp;
        if ("validateStack" in rp.policy && typeof rp.policy.validateStack === "function") await runStackPolicy(effective, graph, out);
        else await runResourcePolicy(effective, graph, out);
    }
    return out;
}
