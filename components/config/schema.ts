/**
 * The shape of the stack config: every `zero-trust-ollama:*` key, what values it allows and its
 * default, and the StackConfig type the parse produces. Rules that span several keys are in
 * rules.ts; reading Pulumi's config map is in index.ts.
 */
import { z } from "zod";

export const PROJECT = "zero-trust-ollama";

/** Device and node names: DNS-label-like, used verbatim in resource names and cert CNs. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const TAG_PATTERN = /^tag:[a-z][a-z0-9-]{0,62}$/;
export const DIGEST_PATTERN = /@sha256:[a-f0-9]{64}$/;
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
export const GUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
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

// The node-pool keys have no zod defaults: their defaults apply only with `ollama.nodes` (see
// withNodePoolDefaults), so a stack without a pool parses to exactly the config it did before.
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
    /** HTTP worker processes in the filter container (its primary alone keeps the budget ledger). */
    workers: z.number().int().min(1).max(16).default(2),
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

/** Root object schema. Keys are the stack config keys without the `zero-trust-ollama:` namespace. */
export const configObjectSchema = z.strictObject({
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

/** Defaults of the node-pool keys (ollama.nodes and friends); ollama.defaultModel defaults to the first node's first model. */
export const NODE_POOL_DEFAULTS = { nodeTag: "tag:ai-node", enclavePort: 11443, nodeFailTimeoutSeconds: 30 } as const;

type ParsedConfig = z.output<typeof configObjectSchema>;

/**
 * With `ollama.nodes`, every pool key gets its default (a node's modelsPath is ollama.modelsPath);
 * without, none appears, so a stack without a pool parses to no pool keys at all.
 */
function withNodePoolDefaults(c: ParsedConfig): ParsedConfig {
    const o = c.ollama;
    if (!o.nodes) return c;
    return {
        ...c,
        ollama: {
            ...o,
            nodes: o.nodes.map((n) => ({ ...n, modelsPath: n.modelsPath ?? o.modelsPath })),
            enclavePort: o.enclavePort ?? NODE_POOL_DEFAULTS.enclavePort,
            defaultModel: o.defaultModel ?? o.nodes[0].models[0],
            nodeFailTimeoutSeconds: o.nodeFailTimeoutSeconds ?? NODE_POOL_DEFAULTS.nodeFailTimeoutSeconds,
        },
        tailscale: { ...c.tailscale, nodeTag: c.tailscale.nodeTag ?? NODE_POOL_DEFAULTS.nodeTag },
    };
}

/** The whole config: shapes, per-key defaults, then the node-pool defaults. */
export const configSchema = configObjectSchema.transform(withNodePoolDefaults);

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
