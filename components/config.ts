/**
 * Stack configuration: the one place that parses and validates `zero-trust-ollama:*` keys into
 * plain typed data. Everything downstream (components, renderers, sandbox, plan) takes the
 * `StackConfig` this module returns and never reads raw config itself.
 */
import { z } from "zod";
import type { VolumeCheckSettings } from "./model-store/volume";

export const PROJECT = "zero-trust-ollama";

/** Device and node names: DNS-label-like, used verbatim in resource names and cert CNs. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TAG_PATTERN = /^tag:[a-z][a-z0-9-]{0,62}$/;
const DIGEST_PATTERN = /@sha256:[a-f0-9]{64}$/;
/** Ollama model references such as `llama3.2:3b`, `library/qwen2.5:7b-instruct`, `hf.co/org/m:q4`. */
export const MODEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*){0,2}(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?$/;
/** `llama3.2` and `library/llama3.2:latest` name the same model as `llama3.2:latest`. */
export function canonicalModel(name: string): string {
    let n = name.toLowerCase();
    if (n.startsWith("registry.ollama.ai/")) n = n.slice("registry.ollama.ai/".length);
    if (n.startsWith("library/")) n = n.slice("library/".length);
    const lastSlash = n.lastIndexOf("/");
    return n.indexOf(":", lastSlash + 1) === -1 ? `${n}:latest` : n;
}
const GROUP_PATTERN = /^[^\s,"\\]{1,128}$/;
const GUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HOSTNAME_PATTERN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * The oauth2-proxy release the stack pins. The tests build and run this very version
 * (scripts/lib/tools.ts reads it), so the image and the tested binary cannot drift apart.
 */
export const OAUTH2_PROXY_VERSION = "v7.15.6";

/** Image defaults are version-pinned; stacks with `requirePinnedImages` must add a digest. */
export const DEFAULT_IMAGES = {
    ollama: "ollama/ollama:0.17.4",
    nginx: "nginx:1.28.0-alpine",
    haproxy: "haproxy:2.8.15-alpine",
    // The -alpine variant: its busybox wget runs the healthcheck (the distroless one has no HTTP client).
    oauth2Proxy: `quay.io/oauth2-proxy/oauth2-proxy:${OAUTH2_PROXY_VERSION}-alpine`,
    // oauth2-proxy's session store (identity.sessionStore redis); the tests run Debian's redis-server 7.0 with the same redis.conf.
    sessionStore: "redis:7.4.2-alpine",
    /** Runs the model-store probe (python3) on the Ollama host; see components/model-store. */
    modelStoreProbe: "python:3.13.5-alpine3.22",
} as const;

const email = z.string().regex(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, "must be an email address like alice@example.com");
const group = z.string().regex(GROUP_PATTERN, "must be a group name or id without spaces, commas or quotes");
const port = z.number().int("must be a whole number").min(1, "must be a TCP port 1-65535").max(65535, "must be a TCP port 1-65535");
const imageRef = z.string().regex(/^[a-z0-9][a-z0-9._\/:-]*(@sha256:[a-f0-9]{64})?$/, "must be an image reference like repo/name:tag[@sha256:<64 hex>]");
const httpsOrigin = z
    .string()
    .refine((s) => s !== "*", "\"*\" is never allowed; list exact https origins such as https://chat.example.com")
    .refine((s) => s === "*" || /^https:\/\/[a-z0-9.-]+(:\d{1,5})?$/.test(s), "must be an exact https origin like https://chat.example.com (no path, no wildcard, lowercase)");
const tag = z.string().regex(TAG_PATTERN, "must be a Tailscale tag like tag:ai-server (tag: then a lowercase letter, then lowercase letters, digits, dashes)");
/** Who may apply a tag: an admin role, a policy group or a user; never "*" or every member. */
const tagOwner = z
    .string()
    .regex(/^(autogroup:(admin|owner|it-admin|network-admin)|group:[a-z0-9][a-z0-9._-]{0,62}|[^\s@*]+@[^\s@*]+\.[^\s@*]+)$/, "must be autogroup:admin, autogroup:owner, autogroup:it-admin, autogroup:network-admin, group:<name> or a user email");

const tailscaleNodeId = z.string().regex(/^[A-Za-z0-9]{6,64}$/, "must be a Tailscale node id such as nXXXXXXXXCNTRL");

const deviceSchema = z.strictObject({
    name: z.string().regex(NAME_PATTERN, `must match ${NAME_PATTERN.source}`),
    owner: email,
    groups: z.array(group).default([]),
    tailscaleDeviceId: tailscaleNodeId.optional(),
    apiKey: z.boolean().default(false),
});

/** A device revoked from `devices` whose tailnet approval the stack withdraws (tailscale.revokedDevices[]). */
const revokedDeviceSchema = z.strictObject({
    name: z.string().regex(NAME_PATTERN, `must match ${NAME_PATTERN.source}`),
    tailscaleDeviceId: tailscaleNodeId,
});

const gatewaySchema = z.strictObject({
    kind: z.enum(["nginx", "haproxy"]).default("nginx"),
    listen: z.enum(["loopback", "tailscale"]).default("loopback"),
    port: port.default(8443),
    rateLimitPerMinute: z.number().int().min(1).max(100000).default(120),
    burst: z.number().int().min(0).max(10000).default(20),
    authRateLimitPerMinute: z.number().int().min(1).max(10000).default(10),
    maxConnectionsPerClient: z.number().int().min(1).max(10000).default(20),
    maxBodyKiB: z.number().int().min(1).max(1024 * 1024).default(1024),
    corsOrigins: z.array(httpsOrigin).default([]),
    upstreamTimeoutSeconds: z.number().int().min(5).max(86400).default(600),
    clientTimeoutSeconds: z.number().int().min(1).max(300).default(10),
    /** After a reload (enrol, revoke, any config change): how long requests begun on the old config may run before their connections are closed. */
    reloadDrainSeconds: z.number().int().min(1).max(3600).default(120),
    tlsMinVersion: z.enum(["1.3", "1.2"]).default("1.3"),
    /** How long a TLS session ticket may be resumed; 0 turns resumption off (every connection a full handshake). */
    tlsTicketLifetimeSeconds: z.number().int().min(0).max(3600).default(300),
    image: imageRef.optional(),
});

const identitySchema = z.strictObject({
    provider: z.enum(["none", "entra", "oidc"]).default("none"),
    tenantId: z.string().regex(GUID_PATTERN, "must be the Entra tenant GUID").optional(),
    issuerUrl: z.string().url("must be an https URL").refine((u) => u.startsWith("https://"), "must be an https URL (the IdP's OIDC issuer)").optional(),
    clientId: z.string().min(1).max(256).optional(),
    allowedGroups: z.array(group).default([]),
    allowedEmailDomains: z.array(z.string().regex(HOSTNAME_PATTERN, "must be a domain like example.com")).default([]),
    allowedEmails: z.array(email).default([]),
    requireMfa: z.boolean().default(false),
    cookieExpireHours: z.number().int().min(1).max(168).default(8),
    cookieRefreshMinutes: z.number().int().min(1).max(1440).default(60),
    secretRotationDays: z.number().int().min(1).max(730).default(180),
    /** Extra `aud` values accepted on bearer tokens besides the client id (IdPs whose API tokens carry another audience). */
    extraAudiences: z.array(z.string().regex(/^[^\s,"\\]{1,256}$/, "must be an audience value without spaces, commas or quotes, e.g. api://default")).default([]),
    image: imageRef.optional(),
    /** Where oauth2-proxy keeps sessions: a Redis container only it can reach (the cookie holds a ticket), or the cookie itself. */
    sessionStore: z.enum(["redis", "cookie"]).default("redis"),
    /** Image of the Redis session store (sessionStore redis). */
    sessionStoreImage: imageRef.optional(),
});

const tailscaleSchema = z.strictObject({
    enabled: z.boolean().default(false),
    serverTag: tag.default("tag:ai-server"),
    clientTag: tag.default("tag:ai-client"),
    allowedUsers: z.array(email).default([]),
    tagOwners: z.array(tagOwner).min(1, "must list at least one owner, e.g. [autogroup:admin]").default(["autogroup:admin"]),
    manageAcl: z.boolean().default(false),
    overwriteExistingAcl: z.boolean().default(false),
    serverHostname: z.string().regex(HOSTNAME_PATTERN, "must be the server's tailnet host name").optional(),
    serverAddress: z.string().optional(),
    authKeyExpiryHours: z.number().int().min(1).max(2160).default(24),
    logstream: z.enum(["off", "splunk", "elastic", "cribl", "datadog", "axiom", "panther"]).default("off"),
    logstreamUrl: z.string().url().refine((u) => u.startsWith("https://"), "must be an https URL").optional(),
    /** Tag every GPU node of ollama.nodes carries (default tag:ai-node). */
    nodeTag: tag.optional(),
    /** Tag of the OAuth client that runs pulumi up; it owns the server, client and node tags in the rendered policy. */
    deployerTag: tag.optional(),
    /** Devices removed from `devices` that stay de-authorised at the tailnet (their authorization resource kept with authorized: false). */
    revokedDevices: z.array(revokedDeviceSchema).default([]),
});

const gpusSchema = z.union([z.literal("all"), z.literal("none"), z.number().int().min(1).max(64)], {
    error: "must be \"all\", \"none\" or a GPU count 1-64",
});

const dockerHost = z
    .string()
    .regex(/^(unix:\/\/\/\S+|ssh:\/\/[A-Za-z0-9._-]+@[A-Za-z0-9.-]+(:\d{1,5})?)$/, "must be unix:///path/to/docker.sock or ssh://user@host[:port]");

/** One GPU node of the pool (ollama.nodes[]): its own Docker host, Ollama and enclave proxy. */
const nodeSchema = z.strictObject({
    name: z.string().regex(NAME_PATTERN, `must match ${NAME_PATTERN.source}`),
    dockerHost,
    gpus: gpusSchema.default("all"),
    models: z.array(z.string().regex(MODEL_PATTERN, "must be a model name like llama3.2:3b")).min(1, "must list at least one model the node serves"),
    /** The node's Tailscale address: the only address its enclave proxy binds. */
    tailscaleAddress: z.string(),
    modelsPath: z.string().regex(/^\/[^\0]*$/, "must be an absolute host path").refine((p) => !p.split("/").includes(".."), "must not contain '..'").optional(),
});

/** ollama.modelStore: how the encrypted model store is checked and, when asked, provisioned. */
const modelStoreSchema = z.strictObject({
    /** Create the encrypted directory on the host (fscrypt: ext4/f2fs native encryption, key a Pulumi secret). */
    provision: z
        .enum(["fscrypt"], {
            error: (issue) =>
                issue.input === "gocryptfs"
                    ? "gocryptfs cannot be provisioned by the program: its FUSE mount would have to be made by a container holding CAP_SYS_ADMIN and /dev/fuse (which container-disallow-dangerous-capabilities forbids, as a host escape) and would vanish with that container's process; mount it on the host instead (docs/model-store.md, \"gocryptfs\": the check accepts the mount), or use \"fscrypt\""
                    : "must be \"fscrypt\" (or leave ollama.modelStore.provision out to only verify an existing encrypted path)",
        })
        .optional(),
    /** Image the probe runs in on the Ollama host (needs python3). */
    probeImage: imageRef.optional(),
});

// Node-pool keys are optional without schema defaults: a stack without `ollama.nodes` parses to
// exactly the config it parsed to before the pool existed (see nodePoolSettings for defaults).
const ollamaSchema = z.strictObject({
    image: imageRef.default(DEFAULT_IMAGES.ollama),
    gpus: gpusSchema.default("all"),
    modelsPath: z.string().regex(/^\/[^\0]*$/, "must be an absolute host path").refine((p) => !p.split("/").includes(".."), "must not contain '..'").default("/srv/encrypted/ollama"),
    memoryLimitMiB: z.number().int().min(512).max(4 * 1024 * 1024).default(32768),
    keepAlive: z.string().regex(/^-?\d+[smh]?$/, "must be a duration like 5m").default("5m"),
    /** Development only: deploy even when modelsPath is not encrypted at rest (warned at every run, flagged by the pack). */
    allowUnencryptedModels: z.boolean().optional(),
    modelStore: modelStoreSchema.optional(),
    nodes: z.array(nodeSchema).min(1, "must list at least one node, or leave ollama.nodes out for the single local node").optional(),
    enclavePort: port.optional(),
    defaultModel: z.string().regex(MODEL_PATTERN, "must be a model name like llama3.2:3b").optional(),
    nodeFailTimeoutSeconds: z.number().int().min(1).max(3600).optional(),
});

/** One budget: every window is optional; an absent window does not limit. */
const tokens = z.number().int().min(1).max(1_000_000_000_000);
const budgetSchema = z
    .strictObject({
        tokensPerHour: tokens.optional(),
        tokensPerDay: tokens.optional(),
        tokensPerMonth: tokens.optional(),
        concurrentRequests: z.number().int().min(1).max(10_000).optional(),
    })
    .refine((b) => Object.keys(b).length > 0, "must set at least one of tokensPerHour, tokensPerDay, tokensPerMonth, concurrentRequests");
/** True for an IANA time zone name this Node runtime knows (the filter computes windows with the same Intl data). */
const knownTimeZone = (tz: string) => {
    try {
        new Intl.DateTimeFormat("en-US", { timeZone: tz });
        return true;
    } catch {
        return false;
    }
};

const piiAction = z.enum(["block", "redact", "off"]);
const filterSchema = z.strictObject({
    enabled: z.boolean().default(true),
    pii: piiAction.default("block"),
    jailbreak: z.enum(["block", "off"]).default("block"),
    maxPromptChars: z.number().int().min(1).max(10_000_000).default(32000),
    maxMessages: z.number().int().min(1).max(10000).default(200),
    maxNumCtx: z.number().int().min(256).max(1_048_576).default(32768),
    maxOutputTokens: z.number().int().min(1).max(1_048_576).default(8192),
    /** Opt-in: forward /api/generate `context` token arrays, which the filter cannot read. */
    allowContextTokens: z.boolean().default(false),
    modelsByGroup: z
        .record(z.string().regex(/^(\*|[^\s,"\\]{1,128})$/, "must be a group name or \"*\""), z.array(z.string().regex(MODEL_PATTERN, "must be a model name like llama3.2:3b")))
        .default({ "*": ["llama3.2:3b"] }),
    /** Token budgets per group ("*" for everyone), enforced per user (per device with identity.provider none). */
    budgets: z.record(z.string().regex(/^(\*|[^\s,"\\]{1,128})$/, "must be a group name or \"*\""), budgetSchema).default({}),
    /** How a member of several budget groups is limited: the most generous value per window, or the strictest. */
    budgetMode: z.enum(["generous", "strictest"]).default("generous"),
    /** Time zone whose calendar days and months the day and month windows follow. */
    budgetTimeZone: z.string().refine(knownTimeZone, "must be an IANA time zone such as UTC or Europe/Berlin").default("UTC"),
});

const siemSchema = z.strictObject({
    syslogAddress: z
        .string()
        .regex(/^(udp|tcp):\/\/[A-Za-z0-9.-]+:\d{1,5}$/, "must be udp://host:port or tcp://host:port")
        .optional(),
});

const dockerSchema = z.strictObject({
    host: dockerHost.default("unix:///var/run/docker.sock"),
    /** Development only: keep the stack's Docker volumes even when the data root is not encrypted at rest (warned at every run). */
    allowUnencryptedVolumes: z.boolean().optional(),
});

const pkiSchema = z.strictObject({
    keyAlgorithm: z.enum(["ECDSA-P256", "ECDSA-P384", "RSA-3072", "RSA-4096"]).default("ECDSA-P384"),
    caValidityDays: z.number().int().min(30).max(3650).default(1825),
    serverCertValidityDays: z.number().int().min(1).max(397).default(365),
    clientCertValidityDays: z.number().int().min(1).max(825).default(90),
});

/** Root schema. Keys are the stack config keys without the `zero-trust-ollama:` namespace. */
export const configSchema = z.strictObject({
    domain: z.string().regex(HOSTNAME_PATTERN, "must be a lowercase DNS name like ollama.example.internal"),
    requirePinnedImages: z.boolean().default(false),
    devices: z.array(deviceSchema).default([]),
    gateway: gatewaySchema.default(gatewaySchema.parse({})),
    identity: identitySchema.default(identitySchema.parse({})),
    tailscale: tailscaleSchema.default(tailscaleSchema.parse({})),
    ollama: ollamaSchema.default(ollamaSchema.parse({})),
    filter: filterSchema.default(filterSchema.parse({})),
    siem: siemSchema.default({}),
    docker: dockerSchema.default(dockerSchema.parse({})),
    pki: pkiSchema.default(pkiSchema.parse({})),
    /** Presence marker for the `secure:` OIDC client secret; its value never enters StackConfig. */
    oidcClientSecret: z.string().optional(),
    /** Presence marker for the `secure:` token of the SIEM that tailnet logs stream to. */
    tailscaleLogstreamToken: z.string().optional(),
});

export type StackConfig = Omit<z.output<typeof configSchema>, "oidcClientSecret" | "tailscaleLogstreamToken"> & {
    /** True when a (secret) `oidcClientSecret` is configured; the value stays a Pulumi secret. */
    readonly hasOidcClientSecret: boolean;
    /** True when a (secret) `tailscaleLogstreamToken` is configured; the value stays a Pulumi secret. */
    readonly hasTailscaleLogstreamToken: boolean;
};
export type DeviceConfig = StackConfig["devices"][number];
export type GatewayConfig = StackConfig["gateway"];
export type IdentityConfig = StackConfig["identity"];
export type TailscaleConfig = StackConfig["tailscale"];
export type OllamaConfig = StackConfig["ollama"];
export type FilterConfig = StackConfig["filter"];

/** One validation problem: the full config key path and what is allowed there. */
export interface ConfigProblem {
    readonly path: string;
    readonly message: string;
}

export class ConfigError extends Error {
    constructor(public readonly problems: readonly ConfigProblem[]) {
        super(formatProblems(problems));
        this.name = "ConfigError";
    }
}

export function formatProblems(problems: readonly ConfigProblem[], heading = "invalid stack config"): string {
    const lines = problems.map((p) => `  - ${p.path}: ${p.message}`);
    return `${heading} (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n${lines.join("\n")}`;
}

/** `["devices", 2, "name"]` -> `zero-trust-ollama:devices[2].name` */
export function keyPath(path: readonly PropertyKey[]): string {
    let out = PROJECT + ":";
    path.forEach((seg, i) => {
        if (typeof seg === "number") out += `[${seg}]`;
        else out += (i === 0 ? "" : ".") + String(seg);
    });
    return out;
}

function describe(value: unknown): string {
    const s = JSON.stringify(value);
    return s === undefined ? String(value) : s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
    let cur: unknown = raw;
    for (const seg of path) {
        if (cur === null || typeof cur !== "object") return undefined;
        cur = (cur as Record<PropertyKey, unknown>)[seg as string];
    }
    return cur;
}

/**
 * Edit distance between two words (optimal string alignment: insertions, deletions,
 * substitutions and swaps of neighbours each cost 1), for "did you mean" hints.
 */
export function editDistance(a: string, b: string): number {
    const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            const cost = a[i - 1] === b[j - 1] ? 0 : 1;
            d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.length][b.length];
}

/** The candidate closest to `word` if it is close enough to be a typo of it (ties: the first listed). */
export function closestKnown(word: string, candidates: readonly string[]): string | undefined {
    const limit = Math.max(1, Math.floor(word.length / 3));
    let best: { name: string; distance: number } | undefined;
    for (const c of candidates) {
        const distance = editDistance(word.toLowerCase(), c.toLowerCase());
        if (distance <= limit && (!best || distance < best.distance)) best = { name: c, distance };
    }
    return best?.name;
}

/** The schema without its default/optional wrappers. */
function unwrapSchema(schema: z.ZodType): z.ZodType {
    let cur = schema;
    while (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = cur.def.innerType as z.ZodType;
    return cur;
}

/** Keys the schema allows in the object at `path` of the config (list indexes and record keys step into their elements). */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
    let cur: z.ZodType | undefined = unwrapSchema(configSchema);
    for (const seg of path) {
        if (cur instanceof z.ZodObject) cur = (cur.shape as Record<string, z.ZodType>)[String(seg)];
        else if (cur instanceof z.ZodArray) cur = cur.element as z.ZodType;
        else if (cur instanceof z.ZodRecord) cur = cur.valueType as z.ZodType;
        else return [];
        if (!cur) return [];
        cur = unwrapSchema(cur);
    }
    return cur instanceof z.ZodObject ? Object.keys(cur.shape) : [];
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
    const guess = closestKnown(key, known);
    return `unknown key (${guess ? `did you mean "${guess}"? ` : ""}check the spelling; every key is documented in Pulumi.yaml)`;
}

function schemaProblems(raw: unknown, error: z.ZodError): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    for (const issue of error.issues) {
        if (issue.code === "unrecognized_keys") {
            const known = knownKeysAt(issue.path);
            for (const k of issue.keys) out.push({ path: keyPath([...issue.path, k]), message: unknownKeyMessage(k, known) });
            continue;
        }
        const got = valueAt(raw, issue.path);
        const message = got === undefined ? (issue.code === "invalid_type" ? "is required" : issue.message) : `${issue.message} (got ${describe(got)})`;
        out.push({ path: keyPath(issue.path), message });
    }
    return out;
}

const TAILSCALE_V4 = { base: (100 << 24) | (64 << 16), maskBits: 10 };
/** True for addresses in Tailscale's ranges: 100.64.0.0/10 and fd7a:115c:a1e0::/48. */
export function isTailscaleAddress(addr: string): boolean {
    const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
    if (v4) {
        const octets = v4.slice(1).map(Number);
        if (octets.some((o) => o > 255)) return false;
        const n = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
        const mask = (~0 << (32 - TAILSCALE_V4.maskBits)) >>> 0;
        return (n & mask) >>> 0 === TAILSCALE_V4.base >>> 0;
    }
    return /^fd7a:115c:a1e0:/i.test(addr);
}

/** Rules that span several keys; they run only on input that passed the schema. */
function crossFieldProblems(c: z.output<typeof configSchema>): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    const add = (path: PropertyKey[], message: string) => out.push({ path: keyPath(path), message });

    const seen = new Map<string, number>();
    const seenNodeIds = new Map<string, number>();
    c.devices.forEach((d, i) => {
        const first = seen.get(d.name);
        if (first !== undefined) add(["devices", i, "name"], `duplicate device name "${d.name}" (also devices[${first}]); names must be unique`);
        else seen.set(d.name, i);
        if (d.tailscaleDeviceId !== undefined) {
            // Two entries tagging the same node would fight over its tags; one would survive a revocation.
            const firstNode = seenNodeIds.get(d.tailscaleDeviceId);
            if (firstNode !== undefined) add(["devices", i, "tailscaleDeviceId"], `duplicate Tailscale node id "${d.tailscaleDeviceId}" (also devices[${firstNode}]); each device is one node`);
            else seenNodeIds.set(d.tailscaleDeviceId, i);
        }
        if (c.tailscale.enabled && !d.tailscaleDeviceId) add(["devices", i, "tailscaleDeviceId"], "is required when tailscale.enabled is true (the node id from the Tailscale admin console)");
    });

    const id = c.identity;
    if (id.provider === "entra" && !id.tenantId) add(["identity", "tenantId"], "is required when identity.provider is \"entra\"");
    if (id.provider === "oidc") {
        if (!id.issuerUrl) add(["identity", "issuerUrl"], "is required when identity.provider is \"oidc\" (e.g. https://login.example.com/realms/main)");
        if (!id.clientId) add(["identity", "clientId"], "is required when identity.provider is \"oidc\"");
        if (c.oidcClientSecret === undefined) add(["oidcClientSecret"], "is required when identity.provider is \"oidc\"; set it with `pulumi config set --secret oidcClientSecret <value>`");
    }
    if (id.provider === "entra") {
        // The program creates the app registration: its issuer, client id and secret are outputs, not inputs.
        if (id.issuerUrl) add(["identity", "issuerUrl"], "only applies to identity.provider \"oidc\"; with \"entra\" the issuer is derived from identity.tenantId");
        if (id.clientId) add(["identity", "clientId"], "only applies to identity.provider \"oidc\"; with \"entra\" the program creates the app registration and uses its client id");
        if (c.oidcClientSecret !== undefined) add(["oidcClientSecret"], "only applies to identity.provider \"oidc\"; with \"entra\" the program creates and rotates the client secret");
        id.allowedGroups.forEach((g, i) => {
            if (!GUID_PATTERN.test(g)) add(["identity", "allowedGroups", i], `must be an Entra group object id (a GUID such as 6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b), not a display name (got "${g}")`);
        });
    }
    if (id.provider !== "none") {
        if (!id.allowedGroups.length && !id.allowedEmailDomains.length && !id.allowedEmails.length) {
            add(["identity", "allowedGroups"], `identity.provider is "${id.provider}": list at least one of identity.allowedGroups, identity.allowedEmailDomains or identity.allowedEmails (an empty allowlist would admit every account the IdP can sign in)`);
        }
        if (id.cookieRefreshMinutes >= id.cookieExpireHours * 60) {
            add(["identity", "cookieRefreshMinutes"], `must be less than identity.cookieExpireHours (${id.cookieExpireHours} h = ${id.cookieExpireHours * 60} min), or sessions expire before they are refreshed`);
        }
    }
    if (id.provider !== "none" && id.image !== undefined && !/:[^/@]*-alpine(@sha256:[a-f0-9]{64})?$/.test(id.image)) {
        add(["identity", "image"], `must be an -alpine variant of oauth2-proxy, e.g. quay.io/oauth2-proxy/oauth2-proxy:v7.15.6-alpine: its healthcheck runs wget in the container, and the distroless image has no HTTP client (got "${id.image}")`);
    }
    if (id.provider === "entra" && id.sessionStore === "cookie") {
        add(["identity", "sessionStore"], "\"cookie\" cannot hold an Entra session: the ID, access and refresh tokens with group claims exceed one 4 KB cookie, and the gateway passes only the first Set-Cookie of a session refresh; use \"redis\"");
    }
    if (id.sessionStoreImage !== undefined && (id.provider === "none" || id.sessionStore !== "redis")) {
        add(["identity", "sessionStoreImage"], "only applies with identity.provider entra or oidc and identity.sessionStore \"redis\"");
    }
    if (c.gateway.kind === "haproxy" && id.provider !== "none") {
        add(["identity", "provider"], `"${id.provider}" needs the nginx gateway (HAProxy has no auth_request); use gateway.kind: nginx, or identity.provider: none with device certificates and Tailscale`);
    }

    const ts = c.tailscale;
    if (c.gateway.listen === "tailscale" && !ts.enabled) add(["gateway", "listen"], "\"tailscale\" needs tailscale.enabled: true; use \"loopback\" otherwise");
    if (c.gateway.listen === "tailscale" && ts.enabled && !ts.serverAddress && !ts.serverHostname) {
        add(["tailscale", "serverAddress"], "gateway.listen is \"tailscale\": give serverAddress (the server's 100.x address) or serverHostname to look it up");
    }
    if (ts.serverAddress !== undefined && !isTailscaleAddress(ts.serverAddress)) {
        add(["tailscale", "serverAddress"], `must be a Tailscale address in 100.64.0.0/10 or fd7a:115c:a1e0::/48 (got "${ts.serverAddress}")`);
    }
    if (ts.serverTag === ts.clientTag) add(["tailscale", "clientTag"], "must differ from tailscale.serverTag");
    if (ts.deployerTag !== undefined) {
        const applied = [ts.serverTag, ts.clientTag, ...(c.ollama.nodes ? [ts.nodeTag ?? NODE_POOL_DEFAULTS.nodeTag] : [])];
        if (applied.includes(ts.deployerTag)) add(["tailscale", "deployerTag"], `must differ from the tags the stack applies (${applied.join(", ")}): the deployer tag owns them and is granted nothing`);
        if (!ts.enabled) add(["tailscale", "deployerTag"], "only applies with tailscale.enabled: true");
    }
    if (ts.overwriteExistingAcl && !ts.manageAcl) add(["tailscale", "overwriteExistingAcl"], "only applies with tailscale.manageAcl: true");
    if (ts.revokedDevices.length && !ts.enabled) add(["tailscale", "revokedDevices"], "only applies with tailscale.enabled: true");
    const revokedNames = new Map<string, number>();
    const revokedIds = new Map<string, number>();
    ts.revokedDevices.forEach((r, i) => {
        const enrolled = c.devices.findIndex((d) => d.name === r.name);
        if (enrolled >= 0) add(["tailscale", "revokedDevices", i, "name"], `"${r.name}" is still enrolled (devices[${enrolled}]); remove it from devices to revoke it`);
        const enrolledNode = c.devices.findIndex((d) => d.tailscaleDeviceId === r.tailscaleDeviceId);
        if (enrolledNode >= 0) add(["tailscale", "revokedDevices", i, "tailscaleDeviceId"], `node "${r.tailscaleDeviceId}" is enrolled as devices[${enrolledNode}]; a node cannot be both authorised and de-authorised`);
        for (const [seenBefore, key, value] of [[revokedNames, "name", r.name], [revokedIds, "tailscaleDeviceId", r.tailscaleDeviceId]] as const) {
            const first = seenBefore.get(value);
            if (first !== undefined) add(["tailscale", "revokedDevices", i, key], `duplicate ${key} "${value}" (also tailscale.revokedDevices[${first}])`);
            else seenBefore.set(value, i);
        }
    });
    if (ts.logstream !== "off" && !ts.logstreamUrl) add(["tailscale", "logstreamUrl"], `is required when tailscale.logstream is "${ts.logstream}"`);
    if (ts.logstream !== "off" && c.tailscaleLogstreamToken === undefined) {
        add(["tailscaleLogstreamToken"], `is required when tailscale.logstream is "${ts.logstream}"; set it with \`pulumi config set --secret tailscaleLogstreamToken <value>\``);
    }

    if (c.requirePinnedImages) {
        const images: [PropertyKey[], string][] = [
            [["ollama", "image"], c.ollama.image],
            [["gateway", "image"], c.gateway.image ?? DEFAULT_IMAGES[c.gateway.kind]],
        ];
        if (id.provider !== "none") images.push([["identity", "image"], id.image ?? DEFAULT_IMAGES.oauth2Proxy]);
        if (usesSessionStore(c)) images.push([["identity", "sessionStoreImage"], id.sessionStoreImage ?? DEFAULT_IMAGES.sessionStore]);
        // The probe checks the stack's volumes too, which a pinned stack may not waive.
        images.push([["ollama", "modelStore", "probeImage"], modelStoreSettings(c).probeImage]);
        for (const [path, ref] of images) {
            if (!DIGEST_PATTERN.test(ref)) add(path, `must be pinned by digest (repo:tag@sha256:<64 hex>) because requirePinnedImages is true (got "${ref}")`);
        }
    }
    if (c.requirePinnedImages && c.docker.allowUnencryptedVolumes) {
        add(["docker", "allowUnencryptedVolumes"], "cannot be true when requirePinnedImages is true (a production stack keeps its TLS keys and config only on encrypted volumes); put Docker's data root on LUKS instead (docs/model-store.md)");
    }
    if (c.ollama.allowUnencryptedModels && c.ollama.modelStore?.provision) {
        add(["ollama", "allowUnencryptedModels"], "contradicts ollama.modelStore.provision (an encrypted store is being provisioned); remove one of them");
    }
    out.push(...nodeProblems(c));
    if (c.filter.enabled && !Object.keys(c.filter.modelsByGroup).length) add(["filter", "modelsByGroup"], "must list at least one group (use \"*\" for everyone)");
    return out;
}

/** True when oauth2-proxy runs with the Redis session store (a sign-in provider and sessionStore redis). */
export function usesSessionStore(c: Pick<StackConfig, "identity">): boolean {
    return c.identity.provider !== "none" && c.identity.sessionStore === "redis";
}

/** How every Ollama host's model store is checked (and provisioned), defaults resolved. */
export interface ModelStoreSettings {
    /** ollama.allowUnencryptedModels: skip the check (development stacks only). */
    readonly allowUnencrypted: boolean;
    /** ollama.modelStore.provision. */
    readonly provision?: "fscrypt";
    /** ollama.modelStore.probeImage. */
    readonly probeImage: string;
    /** requirePinnedImages: an opt-out here is a mandatory policy violation. */
    readonly pinnedStack: boolean;
}

// Optional without schema defaults, like the node-pool keys: a stack that does not set them
// parses to the same config as before they existed.
export function modelStoreSettings(c: Pick<StackConfig, "ollama" | "requirePinnedImages">): ModelStoreSettings {
    return {
        allowUnencrypted: c.ollama.allowUnencryptedModels ?? false,
        provision: c.ollama.modelStore?.provision,
        probeImage: c.ollama.modelStore?.probeImage ?? DEFAULT_IMAGES.modelStoreProbe,
        pinnedStack: c.requirePinnedImages,
    };
}

/** How the stack's Docker volumes are checked on their hosts, defaults resolved. */
export function volumeCheckSettings(c: Pick<StackConfig, "docker" | "ollama">): VolumeCheckSettings {
    return { allowUnencrypted: c.docker.allowUnencryptedVolumes ?? false, probeImage: c.ollama.modelStore?.probeImage ?? DEFAULT_IMAGES.modelStoreProbe };
}

/** Defaults of the node-pool keys (ollama.nodes and friends). */
export const NODE_POOL_DEFAULTS = { nodeTag: "tag:ai-node", enclavePort: 11443, nodeFailTimeoutSeconds: 30 } as const;

/** One configured GPU node, defaults resolved. */
export type NodeConfig = Required<Omit<NonNullable<StackConfig["ollama"]["nodes"]>[number], "modelsPath">> & { readonly modelsPath: string };

/** The node pool with every default resolved; undefined for a stack without `ollama.nodes`. */
export interface NodePoolSettings {
    readonly nodes: readonly NodeConfig[];
    readonly nodeTag: string;
    readonly enclavePort: number;
    /** Model whose nodes take requests when the gateway cannot see the model (no filter, metadata). */
    readonly defaultModel: string;
    /** Seconds a node that failed is left out of the pool (passive health). */
    readonly failTimeoutSeconds: number;
}

export function nodePoolSettings(c: Pick<StackConfig, "ollama" | "tailscale">): NodePoolSettings | undefined {
    const o = c.ollama;
    if (!o.nodes) return undefined;
    return {
        nodes: o.nodes.map((n) => ({ ...n, modelsPath: n.modelsPath ?? o.modelsPath })),
        nodeTag: c.tailscale.nodeTag ?? NODE_POOL_DEFAULTS.nodeTag,
        enclavePort: o.enclavePort ?? NODE_POOL_DEFAULTS.enclavePort,
        defaultModel: o.defaultModel ?? o.nodes[0].models[0],
        failTimeoutSeconds: o.nodeFailTimeoutSeconds ?? NODE_POOL_DEFAULTS.nodeFailTimeoutSeconds,
    };
}

function nodeProblems(c: z.output<typeof configSchema>): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    const add = (path: PropertyKey[], message: string) => out.push({ path: keyPath(path), message });
    const o = c.ollama;
    if (!o.nodes) {
        for (const k of ["enclavePort", "defaultModel", "nodeFailTimeoutSeconds"] as const) if (o[k] !== undefined) add(["ollama", k], "only applies with ollama.nodes (a pool of GPU nodes)");
        if (c.tailscale.nodeTag !== undefined) add(["tailscale", "nodeTag"], "only applies with ollama.nodes (a pool of GPU nodes)");
        return out;
    }
    // Nodes are reached over the tailnet only, through the nginx gateway's upstream pool.
    if (!c.tailscale.enabled) add(["ollama", "nodes"], "needs tailscale.enabled: true (each node's enclave proxy listens only on its Tailscale address)");
    if (c.gateway.kind !== "nginx") add(["ollama", "nodes"], `needs gateway.kind: nginx (the node pool is an nginx upstream pool; got "${c.gateway.kind}")`);
    const names = new Map<string, number>();
    const addresses = new Map<string, number>();
    o.nodes.forEach((n, i) => {
        const first = names.get(n.name);
        if (first !== undefined) add(["ollama", "nodes", i, "name"], `duplicate node name "${n.name}" (also ollama.nodes[${first}]); names must be unique`);
        else names.set(n.name, i);
        if (!isTailscaleAddress(n.tailscaleAddress)) add(["ollama", "nodes", i, "tailscaleAddress"], `must be a Tailscale address in 100.64.0.0/10 or fd7a:115c:a1e0::/48 (got "${n.tailscaleAddress}")`);
        const firstAddress = addresses.get(n.tailscaleAddress);
        if (firstAddress !== undefined) add(["ollama", "nodes", i, "tailscaleAddress"], `duplicate address "${n.tailscaleAddress}" (also ollama.nodes[${firstAddress}]); each node is one tailnet machine`);
        else addresses.set(n.tailscaleAddress, i);
    });
    const served = new Set(o.nodes.flatMap((n) => n.models));
    if (o.defaultModel !== undefined && !served.has(o.defaultModel)) add(["ollama", "defaultModel"], `no node serves "${o.defaultModel}" (served: ${[...served].join(", ")})`);
    const tag = c.tailscale.nodeTag ?? NODE_POOL_DEFAULTS.nodeTag;
    if (tag === c.tailscale.serverTag || tag === c.tailscale.clientTag) add(["tailscale", "nodeTag"], `must differ from tailscale.serverTag and tailscale.clientTag (got "${tag}")`);
    const port = o.enclavePort ?? NODE_POOL_DEFAULTS.enclavePort;
    if (o.enclavePort !== undefined && (port === 11434 || port === 22)) add(["ollama", "enclavePort"], `must not be ${port} (Ollama's own port and SSH stay closed on nodes)`);
    return out;
}

/**
 * Provider config keys that hold credentials. Pulumi passes `tailscale:*` keys to the Tailscale
 * provider directly; a stack file may carry these only encrypted (`secure:`), never in plain text.
 */
export const PROVIDER_CREDENTIAL_KEYS = ["tailscale:apiKey", "tailscale:oauthClientSecret"] as const;

/**
 * Config namespaces besides this project's that a stack may set: the providers the program uses
 * (and Pulumi's own). Any other namespace is refused, because a misspelled project namespace
 * (`zero-trust-olama:identity`) would otherwise be skipped and switch a control off.
 */
export const PROVIDER_NAMESPACES = ["docker", "tailscale", "azuread", "tls", "random", "pulumi"] as const;

/** One problem per key whose namespace is neither this project's nor a provider's, with the closest known one. */
export function namespaceProblems(fullKeys: readonly string[]): ConfigProblem[] {
    const known = [PROJECT, ...PROVIDER_NAMESPACES];
    const out: ConfigProblem[] = [];
    for (const fullKey of fullKeys) {
        const sep = fullKey.indexOf(":");
        if (sep < 0) continue; // no namespace: Pulumi reads it as the project's
        const ns = fullKey.slice(0, sep);
        if ((known as readonly string[]).includes(ns)) continue;
        const guess = closestKnown(ns, known);
        const hint = guess ? `did you mean "${guess}${fullKey.slice(sep)}"? ` : "";
        out.push({ path: fullKey, message: `unknown config namespace "${ns}" (${hint}keys must be ${PROJECT}:<key> or belong to a provider this program uses: ${PROVIDER_NAMESPACES.join(", ")})` });
    }
    return out;
}

/** Other-namespace config as the program sees it: which keys are set and which are secrets. */
export interface ProviderConfigView {
    /** Full keys (`namespace:key`) set outside this project's namespace. */
    readonly keys: readonly string[];
    /** True when Pulumi holds the key's value as a secret (`secure:` in the stack file). */
    readonly isSecret: (fullKey: string) => boolean;
}

/** One problem per provider credential that is set in plain text. */
export function plaintextCredentialProblems(view: ProviderConfigView): ConfigProblem[] {
    const env: Record<(typeof PROVIDER_CREDENTIAL_KEYS)[number], string> = { "tailscale:apiKey": "TAILSCALE_API_KEY", "tailscale:oauthClientSecret": "TAILSCALE_OAUTH_CLIENT_SECRET" };
    return PROVIDER_CREDENTIAL_KEYS.filter((k) => view.keys.includes(k) && !view.isSecret(k)).map((k) => ({
        path: k,
        message: `is a credential and must not be plain text in the stack file; set it with \`pulumi config set --secret ${k} <value>\` or the ${env[k]} environment variable (and rotate the exposed value)`,
    }));
}

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
