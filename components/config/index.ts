/**
 * Stack configuration: the one place that parses and validates `zero-trust-ollama:*` keys into
 * plain typed data. Everything downstream (components, renderers, sandbox, plan) takes the
 * `StackConfig` this module returns and never reads raw config itself. The shape is in
 * schema.ts, the cross-key rules in rules.ts; this file reads Pulumi's config map.
 */
import { ConfigError, schemaProblems, type ConfigProblem } from "./problems";
import { crossFieldProblems, namespaceProblems, plaintextCredentialProblems, type ProviderConfigView } from "./rules";
import { configSchema, PROJECT, type StackConfig } from "./schema";

export * from "./problems";
export * from "./rules";
export * from "./schema";
export * from "./settings";

export type ParseResult = { ok: true; config: StackConfig } | { ok: false; problems: ConfigProblem[] };

/**
 * Validate raw config (key -> already-decoded value, namespace stripped) and, when given, the
 * other-namespace provider config. Never throws; returns every problem found. Cross-key rules run
 * once the per-key shape is valid.
 */
export function parseStackConfig(raw: Record<string, unknown>, providerConfig?: ProviderConfigView): ParseResult {
    const credentialProblems = providerConfig ? [...namespaceProblems(providerConfig.keys), ...plaintextCredentialProblems(providerConfig)] : [];
    const result = configSchema.safeParse(raw);
    if (!result.success) return { ok: false, problems: [...schemaProblems(raw, result.error), ...credentialProblems] };
    const problems = [...crossFieldProblems(result.data), ...credentialProblems];
    if (problems.length) return { ok: false, problems };
    const { oidcClientSecret, tailscaleLogstreamToken, ...rest } = result.data;
    return { ok: true, config: { ...rest, hasOidcClientSecret: oidcClientSecret !== undefined, hasTailscaleLogstreamToken: tailscaleLogstreamToken !== undefined } };
}

/** Like `parseStackConfig` but throws a `ConfigError` listing every problem. */
export function loadStackConfig(raw: Record<string, unknown>, providerConfig?: ProviderConfigView): StackConfig {
    const r = parseStackConfig(raw, providerConfig);
    if (!r.ok) throw new ConfigError(r.problems);
    return r.config;
}

/** Keys in the config namespace whose value is a Pulumi secret (`secure:` in the stack file). */
export const SECRET_KEYS = ["oidcClientSecret", "tailscaleLogstreamToken"] as const;

/**
 * The whole config as Pulumi hands it to the program (`namespace:key` -> string, objects
 * JSON-encoded), validated: namespaces, project keys at every depth, provider credentials. The one
 * entry point of index.ts and, through `parseStackFileConfig`, of plan, sandbox and device:*.
 */
export function parsePulumiConfig(all: Record<string, string>, isSecret: (fullKey: string) => boolean): ParseResult {
    const otherKeys = Object.keys(all).filter((k) => !k.startsWith(PROJECT + ":"));
    return parseStackConfig(fromPulumiConfigMap(all), { keys: otherKeys, isSecret });
}

/**
 * Pulumi hands config over as `project:key` -> string (objects JSON-encoded). Strip the
 * namespace and decode JSON values; other namespaces are left to `parsePulumiConfig`'s checks.
 */
function fromPulumiConfigMap(all: Record<string, string>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(all)) {
        if (!k.startsWith(PROJECT + ":")) continue;
        const key = k.slice(PROJECT.length + 1);
        out[key] = decodeConfigValue(key, v);
    }
    return out;
}

function decodeConfigValue(key: string, v: string): unknown {
    if ((SECRET_KEYS as readonly string[]).includes(key)) return v;
    try {
        return JSON.parse(v);
    } catch {
        return v;
    }
}
