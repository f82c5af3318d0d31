/**
 * What `plan` and `policy:check` do around the policy analyzer (./policy-server), i.e. what the
 * Pulumi CLI does around it: read and validate policy config against each policy's configSchema
 * (@pulumi/policy leaves that to the CLI), build the resource graph from the mocked program
 * (`npm run plan`) or a `pulumi stack export` document (`npm run policy:check`), and report.
 */
import { readFileSync } from "node:fs";
import type {
    EnforcementLevel,
    Policies,
    PolicyConfigSchema,
    ResourceValidationPolicy,
    StackValidationPolicy,
} from "@pulumi/policy";
import type { PolicyConfigJSONSchema } from "@pulumi/policy/schema";
import type { RecordedResource } from "./mock-program";
import { mockOutputs } from "./mock-outputs";

/** One resource as the CLI sends it to the analyzer. */
export interface GraphResource {
    readonly urn: string;
    readonly type: string;
    readonly name: string;
    readonly parent?: string;
    /** What resource policies validate (the resource's inputs). */
    readonly inputs: Record<string, any>;
    /** What stack policies validate (the resource's state after the operation). */
    readonly outputs: Record<string, any>;
    readonly dependencies: readonly string[];
    readonly propertyDependencies: Readonly<Record<string, readonly string[]>>;
    /** URN of the provider resource it is managed by, when known (stack exports record it). */
    readonly provider?: string;
}

export interface Violation {
    readonly policy: string;
    readonly enforcementLevel: EnforcementLevel;
    /** The offending resource, or undefined when a stack policy blames the whole stack. */
    readonly urn?: string;
    readonly message: string;
}

/** Input the tools cannot use (bad JSON, wrong shape, bad policy config); exit code 2. */
export class PolicyInputError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "PolicyInputError";
    }
}

/** A policy threw while validating (the analyzer fails the preview the same way). */
export class PolicyEvaluationError extends Error {
    constructor(policy: string, urn: string | undefined, cause: unknown) {
        super(`policy ${policy} failed${urn ? ` on ${urn}` : ""}: ${cause instanceof Error ? cause.message : String(cause)}`);
        this.name = "PolicyEvaluationError";
    }
}

const LEVELS: readonly EnforcementLevel[] = ["advisory", "mandatory", "remediate", "disabled"];

/** Per-policy effective settings after policy config is applied. */
export interface ResolvedPolicy {
    readonly policy: ResourceValidationPolicy | StackValidationPolicy;
    readonly enforcementLevel: EnforcementLevel;
    /** Config the policy's getConfig() returns: schema defaults overlaid with the given values. */
    readonly config: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Policy config (same shape as `pulumi preview --policy-pack-config`)

function describeValue(v: unknown): string {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function typeMatches(v: unknown, t: string): boolean {
    switch (t) {
        case "integer":
            return Number.isInteger(v);
        case "number":
            return typeof v === "number" && Number.isFinite(v);
        case "array":
            return Array.isArray(v);
        case "object":
            return typeof v === "object" && v !== null && !Array.isArray(v);
        case "null":
            return v === null;
        default:
            return typeof v === t;
    }
}

/** The subset of JSON Schema the pack's configSchemas use; returns one message per problem. */
export function schemaProblems(v: unknown, schema: PolicyConfigJSONSchema, path: string): string[] {
    const out: string[] = [];
    const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
    if (types.length && !types.some((t) => typeMatches(v, t))) return [`${path}: must be ${types.join(" or ")} (got ${describeValue(v)})`];
    if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) out.push(`${path}: must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")} (got ${describeValue(v)})`);
    if (typeof v === "number") {
        if (schema.minimum !== undefined && v < schema.minimum) out.push(`${path}: must be >= ${schema.minimum} (got ${v})`);
        if (schema.maximum !== undefined && v > schema.maximum) out.push(`${path}: must be <= ${schema.maximum} (got ${v})`);
    }
    if (typeof v === "string") {
        if (schema.minLength !== undefined && v.length < schema.minLength) out.push(`${path}: must have at least ${schema.minLength} characters`);
        if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(v)) out.push(`${path}: must match ${schema.pattern} (got ${describeValue(v)})`);
    }
    if (Array.isArray(v)) {
        if (schema.minItems !== undefined && v.length < schema.minItems) out.push(`${path}: must have at least ${schema.minItems} items`);
        if (schema.items && typeof schema.items === "object" && !Array.isArray(schema.items)) {
            const items = schema.items;
            v.forEach((x, i) => out.push(...schemaProblems(x, items, `${path}[${i}]`)));
        }
    }
    return out;
}

function defaultsOf(schema: PolicyConfigSchema | undefined): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(schema?.properties ?? {})) if (typeof s === "object" && s.default !== undefined) out[k] = structuredClone(s.default);
    return out;
}

/**
 * Apply a policy-pack config document to the pack: enforcement overrides (per policy or `all`)
 * and configSchema values with defaults filled in. Every problem is reported at once, each naming
 * the policy and key.
 */
export function resolvePolicyConfig(policies: Policies, raw: unknown = {}, source = "policy config"): ResolvedPolicy[] {
    const problems: string[] = [];
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new PolicyInputError(`${source}: must be a JSON object mapping policy names to an enforcement level or {"enforcementLevel": ..., <config keys>}`);
    const byName = new Map(policies.map((p) => [p.name, p]));
    const entries = raw as Record<string, unknown>;
    const levelOf = (name: string, v: unknown): EnforcementLevel | undefined => {
        if (v === undefined) return undefined;
        if (typeof v === "string" && (LEVELS as string[]).includes(v)) return v as EnforcementLevel;
        problems.push(`${name}: enforcement level must be one of ${LEVELS.join(", ")} (got ${describeValue(v)})`);
        return undefined;
    };
    const split = (name: string, v: unknown): { level?: EnforcementLevel; props: Record<string, unknown> } => {
        if (typeof v === "string") return { level: levelOf(name, v), props: {} };
        if (typeof v !== "object" || v === null || Array.isArray(v)) {
            problems.push(`${name}: must be an enforcement level or an object (got ${describeValue(v)})`);
            return { props: {} };
        }
        const { enforcementLevel, ...props } = v as Record<string, unknown>;
        return { level: levelOf(`${name}.enforcementLevel`, enforcementLevel), props };
    };

    const all = "all" in entries ? split("all", entries.all) : { props: {} };
    if (Object.keys(all.props).length) problems.push(`all: only "enforcementLevel" may be set for every policy at once (got ${Object.keys(all.props).join(", ")})`);
    for (const name of Object.keys(entries)) {
        if (name !== "all" && !byName.has(name)) problems.push(`${name}: no such policy in the pack (policies: ${[...byName.keys()].join(", ")})`);
    }

    const resolved = policies.map((policy) => {
        const given = policy.name in entries ? split(policy.name, entries[policy.name]) : { props: {} as Record<string, unknown> };
        const schema = policy.configSchema;
        for (const [k, v] of Object.entries(given.props)) {
            const s = schema?.properties[k];
            if (!s) problems.push(`${policy.name}.${k}: unknown config key (${schema ? `allowed: ${Object.keys(schema.properties).join(", ")}` : "this policy takes no config"})`);
            else if (typeof s === "object") problems.push(...schemaProblems(v, s, `${policy.name}.${k}`));
        }
        const config = { ...defaultsOf(schema), ...given.props };
        for (const req of schema?.required ?? []) if (config[req] === undefined) problems.push(`${policy.name}.${req}: is required`);
        const enforcementLevel = given.level ?? all.level ?? policy.enforcementLevel ?? "advisory";
        return { policy: policy as ResourceValidationPolicy | StackValidationPolicy, enforcementLevel, config };
    });
    if (problems.length) throw new PolicyInputError(`${source}: invalid policy config (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    return resolved;
}

/** Read and apply a policy config file (`--policy-config`); undefined path means the pack's defaults. */
export function loadPolicyConfig(policies: Policies, path?: string): ResolvedPolicy[] {
    if (path === undefined) return resolvePolicyConfig(policies);
    return resolvePolicyConfig(policies, readJsonFile(path, "policy config"), path);
}

export function readJsonFile(path: string, what: string): unknown {
    let text: string;
    try {
        text = readFileSync(path, "utf8");
    } catch (e) {
        throw new PolicyInputError(`${path}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
        return JSON.parse(text);
    } catch (e) {
        throw new PolicyInputError(`${path}: ${what} is not valid JSON (${(e as Error).message})`);
    }
}

// ---------------------------------------------------------------------------------------------
// Graph sources

/**
 * The mocked program's resources. Custom resources' outputs are their inputs plus what the mocked
 * provider returned (the same function the mock harness calls), so stack policies can follow
 * e.g. a container's image id back to its RemoteImage as they would after `pulumi up`.
 */
export function graphFromMockRun(resources: readonly RecordedResource[]): GraphResource[] {
    return resources.map((r) => {
        const inputs = resourceRefsToUrns(r.inputs) as Record<string, any>;
        return {
            urn: r.urn,
            type: r.type,
            name: r.name,
            parent: r.parent,
            inputs,
            outputs: r.custom ? { ...inputs, ...mockOutputs(r.type, r.name, r.inputs) } : inputs,
            dependencies: [],
            propertyDependencies: {},
            provider: providerUrnOf((r as { provider?: unknown }).provider),
        };
    });
}

/** `<provider urn>::<id>` -> the provider's URN (URNs contain "::" themselves). */
function providerUrnOf(ref: unknown): string | undefined {
    return typeof ref === "string" && ref.includes("::") ? ref.slice(0, ref.lastIndexOf("::")) : undefined;
}

/** Key under which Pulumi's wire format marks special values (secrets, resource references). */
const SIG_KEY = "4dabf18193072939515e22adb298388d";
/** Pulumi's wire marker for a resource reference (`{sig, urn, id}`), e.g. a component's provider input. */
const RESOURCE_REF_SIG = "5cf8f73096256a8f31e491e813e4eb8e";

/** A value with every wire-format resource reference replaced by the referenced URN. */
export function resourceRefsToUrns(v: unknown): unknown {
    if (Array.isArray(v)) return v.map(resourceRefsToUrns);
    if (v && typeof v === "object") {
        const o = v as Record<string, unknown>;
        if (o[SIG_KEY] === RESOURCE_REF_SIG && typeof o.urn === "string") return o.urn;
        return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, resourceRefsToUrns(x)]));
    }
    return v;
}

const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
/** Stand-in for an encrypted secret in a stack export (it cannot be decrypted offline). */
export const EXPORT_SECRET_PLACEHOLDER = "[secret]";

/** Decode a stack-export property value: plaintext secrets are unwrapped, encrypted ones masked. */
function decodeExportValue(v: unknown): unknown {
    if (Array.isArray(v)) return v.map(decodeExportValue);
    if (v && typeof v === "object") {
        const o = v as Record<string, unknown>;
        if (o[SIG_KEY] === SECRET_SIG) {
            if (typeof o.plaintext === "string") {
                try {
                    return decodeExportValue(JSON.parse(o.plaintext));
                } catch {
                    return o.plaintext;
                }
            }
            return EXPORT_SECRET_PLACEHOLDER;
        }
        return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decodeExportValue(x)]));
    }
    return v;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Resource name from a URN (`urn:pulumi:stack::project::type::name`). */
function nameFromUrn(urn: string): string {
    const i = urn.lastIndexOf("::");
    return i < 0 ? urn : urn.slice(i + 2);
}

/**
 * Validate a `pulumi stack export` document and turn `deployment.resources[]` into the graph.
 * Every shape problem is reported at once, each naming its JSON path.
 */
export function graphFromStackExport(doc: unknown, source: string): GraphResource[] {
    const fail = (problems: string[]) => new PolicyInputError(`${source}: not a usable \`pulumi stack export\` document:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    if (!isObject(doc)) throw fail(["the top level must be a JSON object with \"version\" and \"deployment\""]);
    if (doc.version !== undefined && !(typeof doc.version === "number" && doc.version >= 1 && doc.version <= 3)) throw fail([`version: unsupported deployment version ${describeValue(doc.version)} (1-3 are understood)`]);
    if (!isObject(doc.deployment)) throw fail(["deployment: missing or not an object (export with `pulumi stack export --file <f>`)"]);
    const resources = doc.deployment.resources ?? [];
    if (!Array.isArray(resources)) throw fail(["deployment.resources: must be an array"]);
    const problems: string[] = [];
    const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");
    const graph = resources.flatMap((r, i): GraphResource[] => {
        const at = `deployment.resources[${i}]`;
        if (!isObject(r)) {
            problems.push(`${at}: must be an object`);
            return [];
        }
        // The old copy of a replaced resource, waiting for deletion: not part of the stack's state.
        if (r.delete === true) return [];
        const before = problems.length;
        if (typeof r.urn !== "string" || !r.urn.startsWith("urn:pulumi:")) problems.push(`${at}.urn: must be a URN string (urn:pulumi:...)`);
        if (typeof r.type !== "string" || !r.type) problems.push(`${at}.type: must be a resource type token`);
        for (const k of ["inputs", "outputs", "propertyDependencies"]) if (r[k] !== undefined && !isObject(r[k])) problems.push(`${at}.${k}: must be an object`);
        if (r.parent !== undefined && typeof r.parent !== "string") problems.push(`${at}.parent: must be a URN string`);
        if (r.provider !== undefined && typeof r.provider !== "string") problems.push(`${at}.provider: must be a provider reference (<urn>::<id>)`);
        if (r.dependencies !== undefined && !strings(r.dependencies)) problems.push(`${at}.dependencies: must be an array of URNs`);
        if (isObject(r.propertyDependencies)) {
            for (const [k, v] of Object.entries(r.propertyDependencies)) if (!strings(v)) problems.push(`${at}.propertyDependencies.${k}: must be an array of URNs`);
        }
        if (problems.length > before) return [];
        const inputs = decodeExportValue(r.inputs ?? {}) as Record<string, any>;
        const outputs = decodeExportValue(r.outputs ?? {}) as Record<string, any>;
        return [
            {
                urn: r.urn as string,
                type: r.type as string,
                name: nameFromUrn(r.urn as string),
                parent: (r.parent as string | undefined) || undefined,
                inputs,
                // A resource still being created has no outputs yet; its inputs are the best view.
                outputs: Object.keys(outputs).length ? outputs : inputs,
                dependencies: (r.dependencies as string[] | undefined) ?? [],
                propertyDependencies: (r.propertyDependencies as Record<string, string[]> | undefined) ?? {},
                provider: providerUrnOf(r.provider),
            },
        ];
    });
    if (problems.length) throw fail(problems);
    return graph;
}

/** A resource's provider as the CLI describes it to the analyzer: type, name, URN and (when in the graph) its state. */
export function providerResolver(graph: readonly GraphResource[]): (r: GraphResource) => { type: string; name: string; urn: string; props: Record<string, any> } | undefined {
    const byUrn = new Map(graph.map((g) => [g.urn, g]));
    return (r) => {
        if (!r.provider) return undefined;
        const p = byUrn.get(r.provider);
        const i = r.provider.lastIndexOf("::");
        // urn:pulumi:<stack>::<project>::<parent type>$<type>::<name>
        const qualifiedType = r.provider.slice(r.provider.lastIndexOf("::", i - 1) + 2, i);
        return { type: p?.type ?? qualifiedType.slice(qualifiedType.lastIndexOf("$") + 1), props: p?.outputs ?? {}, urn: r.provider, name: p?.name ?? r.provider.slice(i + 2) };
    };
}

export function hasMandatory(violations: readonly Violation[]): boolean {
    return violations.some((v) => v.enforcementLevel === "mandatory");
}

// ---------------------------------------------------------------------------------------------
// Reporting (shared by plan and policy:check)

/** Exit codes of plan and policy:check (DESIGN.md §5). */
export const EXIT = { clean: 0, mandatoryViolation: 1, invalidInput: 2 } as const;

/** Violations as the `--json` contract has them (`urn` null for a stack-wide violation). */
export function violationsJson(violations: readonly Violation[]): { policy: string; enforcementLevel: EnforcementLevel; urn: string | null; message: string }[] {
    return violations.map((v) => ({ policy: v.policy, enforcementLevel: v.enforcementLevel, urn: v.urn ?? null, message: v.message }));
}

/** The human policy report: one block per violation, then a summary line. */
export function formatPolicyReport(violations: readonly Violation[], policyCount: number): string {
    const lines = [`Policy report (${policyCount} policies):`];
    if (violations.length === 0) lines.push("  no violations");
    for (const v of violations) {
        lines.push(`  [${v.enforcementLevel}] ${v.policy}`, `      ${v.urn ?? "(stack)"}`, `      ${v.message}`);
    }
    const count = (level: EnforcementLevel) => violations.filter((v) => v.enforcementLevel === level).length;
    lines.push(`Summary: ${count("mandatory")} mandatory, ${count("advisory")} advisory violation(s).`);
    return lines.join("\n");
}

/**
 * Runs a CLI's main and guarantees the exit-code contract: `isKnown` errors print their own
 * message, anything else (a throw, an unhandled rejection, a program whose Outputs never resolve)
 * one line naming the tool. Never a stack trace; always exit 2 on failure.
 */
export function runCli(tool: string, main: () => Promise<number>, isKnown: (e: unknown) => boolean): void {
    let finished = false;
    const fail = (e: unknown) => {
        finished = true;
        process.stderr.write(`${tool}: ${isKnown(e) ? (e as Error).message : `failed: ${e instanceof Error ? e.message : String(e)}`}\n`);
        process.exitCode = EXIT.invalidInput;
    };
    const failNow = (e: unknown) => {
        fail(e);
        process.exit(EXIT.invalidInput);
    };
    process.on("uncaughtException", failNow);
    process.on("unhandledRejection", failNow);
    process.on("beforeExit", () => {
        if (!finished) fail(new Error("the program stopped before registering all its resources (an Output never resolved)"));
    });
    main().then((code) => {
        finished = true;
        process.exitCode = code;
    }, fail);
}
