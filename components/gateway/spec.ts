/**
 * GatewaySpec: everything a gateway renderer needs, as plain data derived once from validated
 * config, the PKI and where things run (containers or the local sandbox). nginx.conf and
 * haproxy.cfg are both rendered from this, so the two gateways cannot drift apart.
 */
import type { StackConfig } from "../config";
import { ENDPOINTS, FILTER_ENDPOINTS, type Endpoint } from "./endpoints";
import type { NodePool } from "./node-spec";
import { checkNoControlCharacters, type SpecErrorType } from "./values";

export type { SpecErrorType } from "./values";

export interface Upstream {
    readonly host: string;
    readonly port: number;
}

/** One enrolled device as the gateway sees it. */
export interface GatewayDevice {
    readonly name: string;
    readonly owner: string;
    readonly groups: readonly string[];
    /** SHA-1 of the certificate DER, lowercase hex (nginx $ssl_client_fingerprint). */
    readonly fingerprintSha1: string;
    readonly serial: string;
    /**
     * devices[].apiKey: digest of the device's static API key (`apiKeyDigest`: MD5, unpadded
     * base64url). The gateway then also requires `Authorization: Bearer <key>` from this device
     * (identity none) or accepts it instead of a user session (entra/oidc). Never the key itself.
     */
    readonly apiKeyDigest?: string;
}

/** Certificate facts (and, for apiKey devices, the key digest) per device name, as deriveGatewaySpec takes them. */
export type GatewayDeviceFacts = Readonly<Record<string, { readonly fingerprintSha1: string; readonly serial: string; readonly apiKeyDigest?: string }>>;

/** Where the gateway and its neighbours live in one deployment (containers or the sandbox). */
export interface GatewayPlacement {
    /** Address and port the gateway process itself listens on. */
    readonly listen: Upstream;
    /** Paths, as the gateway process sees them, of its TLS material. */
    readonly tlsFiles: { readonly cert: string; readonly key: string; readonly ca: string };
    /**
     * The ticket key file of this config generation (see tickets.ts). Without it the gateway
     * issues no session tickets: every connection is a full handshake.
     */
    readonly sessionTicketKeys?: string;
    /** Ollama's address on the internal network. */
    readonly ollama: Upstream;
    /** The prompt filter, when enabled. */
    readonly filter?: Upstream;
    /** oauth2-proxy, when identity.provider is not none. */
    readonly oauth2Proxy?: Upstream;
    /** Writable directory for pid file, temp files and sockets. */
    readonly runtimeDir: string;
    /** Where the JSON access log goes: "stdout" in containers, a file path in the sandbox. */
    readonly accessLog: string;
    /** Where the error log goes: "stderr" in containers, a file path in the sandbox. */
    readonly errorLog: string;
    /**
     * OS user for the worker processes when the master runs as root. Only the sandbox sets it
     * (its state dir, which holds the temp paths, is private to the user running it); containers
     * leave it unset and keep the image default. Renderers: nginx `user <name>;`, haproxy
     * `user <name>` in `global`, each only when this is set.
     */
    readonly workerUser?: string;
    /**
     * ollama.nodes: the GPU node pool. `ollama` (or the filter's upstream) is then the pool's
     * router listener (`nodePool.router`), where the gateway picks a node per request.
     */
    readonly nodePool?: NodePool;
}

export interface GatewayLimits {
    readonly ratePerMinute: number;
    readonly burst: number;
    /** Rate for /oauth2/ (sign-in brute force), per client address. */
    readonly authRatePerMinute: number;
    readonly connectionsPerClient: number;
    readonly maxBodyKiB: number;
    readonly clientTimeoutSeconds: number;
    readonly upstreamTimeoutSeconds: number;
    /** After a reload, how long connections still serving a request begun on the old config may stay open. */
    readonly reloadDrainSeconds: number;
}

export interface GatewaySpec {
    readonly kind: "nginx" | "haproxy";
    /** The DNS name clients use (server cert SAN). */
    readonly serverName: string;
    /**
     * Every name a client may put in Host/SNI (lowercase): the server certificate's names. Any
     * other Host is refused, so a rebound or spoofed name never reaches the allowlist.
     */
    readonly acceptedHosts: readonly string[];
    readonly listen: Upstream;
    readonly tls: {
        readonly minVersion: "1.2" | "1.3";
        readonly cert: string;
        readonly key: string;
        readonly ca: string;
        /** Session resumption by ticket; absent: no tickets, every connection is a full handshake. */
        readonly sessionTickets?: { readonly keyFile: string; readonly lifetimeSeconds: number };
    };
    /** Allowlisted devices; a CA-signed cert whose fingerprint is not here is refused. */
    readonly devices: readonly GatewayDevice[];
    readonly identity: {
        readonly provider: "none" | "entra" | "oidc";
        /** oauth2-proxy address when provider is not none. */
        readonly oauth2Proxy?: Upstream;
    };
    /** The allowlisted endpoints (DESIGN.md §6). */
    readonly endpoints: readonly Endpoint[];
    /** Where allowed requests go: the filter when enabled, else Ollama. */
    readonly upstream: Upstream & { readonly via: "filter" | "ollama" };
    /** Host header sent upstream; Ollama checks it. */
    readonly upstreamHost: string;
    readonly limits: GatewayLimits;
    /** Exact origins allowed for CORS; empty means no CORS headers at all. */
    readonly corsOrigins: readonly string[];
    /** Security headers added to every response, errors included. */
    readonly securityHeaders: readonly (readonly [string, string])[];
    readonly logging: {
        readonly accessLog: string;
        readonly errorLog: string;
        /** Syslog target for the access log, when configured. */
        readonly syslog?: { readonly protocol: "udp" | "tcp"; readonly host: string; readonly port: number };
    };
    readonly runtimeDir: string;
    /** See GatewayPlacement.workerUser: render the worker user directive only when set. */
    readonly workerUser?: string;
    /** See GatewayPlacement.nodePool: absent for a single-node stack. */
    readonly nodePool?: NodePool;
}

export const SECURITY_HEADERS: readonly (readonly [string, string])[] = [
    ["Strict-Transport-Security", "max-age=63072000; includeSubDomains"],
    ["X-Content-Type-Options", "nosniff"],
    ["X-Frame-Options", "DENY"],
    ["Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"],
    ["Referrer-Policy", "no-referrer"],
    ["Cache-Control", "no-store"],
    ["Cross-Origin-Resource-Policy", "same-origin"],
];

/**
 * Names the gateway answers to: the domain, loopback names, and the Tailscale address when
 * known. The same list is the server certificate's SANs, so a name outside it would also fail
 * TLS verification in a browser.
 */
export function gatewayHostNames(cfg: StackConfig): string[] {
    const names = [cfg.domain, "localhost", "127.0.0.1", "::1"];
    if (cfg.tailscale.serverAddress) names.push(cfg.tailscale.serverAddress.toLowerCase());
    return [...new Set(names)];
}

function parseSyslog(address: string | undefined): GatewaySpec["logging"]["syslog"] {
    if (!address) return undefined;
    const m = /^(udp|tcp):\/\/([^:]+):(\d+)$/.exec(address);
    if (!m) throw new Error(`siem.syslogAddress "${address}" is not udp://host:port or tcp://host:port`);
    return { protocol: m[1] as "udp" | "tcp", host: m[2], port: Number(m[3]) };
}

function sessionTickets(cfg: StackConfig, placement: GatewayPlacement): Pick<GatewaySpec["tls"], "sessionTickets"> {
    const lifetimeSeconds = cfg.gateway.tlsTicketLifetimeSeconds;
    return placement.sessionTicketKeys && lifetimeSeconds > 0 ? { sessionTickets: { keyFile: placement.sessionTicketKeys, lifetimeSeconds } } : {};
}

/**
 * The backend the config needs but `given` lacks, as an error naming the key; undefined when both are
 * there. The component checks its args with it before anything is created, the spec its placement.
 */
export function missingBackend(cfg: StackConfig, given: { readonly filter?: unknown; readonly oauth2Proxy?: unknown }, what: string): string | undefined {
    if (cfg.filter.enabled && !given.filter) return `filter.enabled is true but ${what} has no filter address`;
    if (cfg.identity.provider !== "none" && !given.oauth2Proxy) return `identity.provider is ${cfg.identity.provider} but ${what} has no oauth2-proxy address`;
    return undefined;
}

/**
 * Derive the spec. `devices` carries the certificate facts from the PKI (or the sandbox's
 * state dir) keyed by device name; every configured device must have one.
 */
export function deriveGatewaySpec(cfg: StackConfig, devices: GatewayDeviceFacts, placement: GatewayPlacement): GatewaySpec {
    const gatewayDevices = cfg.devices.map((d) => {
        const cert = devices[d.name];
        if (!cert) throw new Error(`no certificate for device "${d.name}"`);
        if (d.apiKey && !cert.apiKeyDigest) throw new Error(`device "${d.name}" has apiKey: true but no API key digest was given`);
        const device = { name: d.name, owner: d.owner, groups: [...d.groups], fingerprintSha1: cert.fingerprintSha1.toLowerCase(), serial: cert.serial };
        return d.apiKey ? { ...device, apiKeyDigest: cert.apiKeyDigest } : device;
    });
    const missing = missingBackend(cfg, placement, "the placement");
    if (missing) throw new Error(missing);
    const useFilter = cfg.filter.enabled;
    const upstream = useFilter ? { ...placement.filter!, via: "filter" as const } : { ...placement.ollama, via: "ollama" as const };
    return {
        kind: cfg.gateway.kind,
        serverName: cfg.domain,
        acceptedHosts: gatewayHostNames(cfg),
        listen: placement.listen,
        tls: { minVersion: cfg.gateway.tlsMinVersion, ...placement.tlsFiles, ...sessionTickets(cfg, placement) },
        devices: gatewayDevices,
        // A provider without an oauth2-proxy address is refused by validateGatewaySpec.
        identity: { provider: cfg.identity.provider, oauth2Proxy: cfg.identity.provider === "none" ? undefined : placement.oauth2Proxy },
        endpoints: useFilter ? [...ENDPOINTS, ...FILTER_ENDPOINTS] : ENDPOINTS,
        upstream,
        upstreamHost: `${upstream.host}:${upstream.port}`,
        limits: {
            ratePerMinute: cfg.gateway.rateLimitPerMinute,
            burst: cfg.gateway.burst,
            authRatePerMinute: cfg.gateway.authRateLimitPerMinute,
            connectionsPerClient: cfg.gateway.maxConnectionsPerClient,
            maxBodyKiB: cfg.gateway.maxBodyKiB,
            clientTimeoutSeconds: cfg.gateway.clientTimeoutSeconds,
            upstreamTimeoutSeconds: cfg.gateway.upstreamTimeoutSeconds,
            reloadDrainSeconds: cfg.gateway.reloadDrainSeconds,
        },
        corsOrigins: [...cfg.gateway.corsOrigins],
        securityHeaders: SECURITY_HEADERS,
        logging: { accessLog: placement.accessLog, errorLog: placement.errorLog, syslog: parseSyslog(cfg.siem.syslogAddress) },
        runtimeDir: placement.runtimeDir,
        workerUser: placement.workerUser,
        ...(placement.nodePool ? { nodePool: placement.nodePool } : {}),
    };
}

/**
 * Headers the gateway sets on every request it forwards (to the filter or Ollama). They are the
 * ONLY identity headers upstream: any client-sent header of the same name is removed first.
 */
export const FORWARDED_IDENTITY_HEADERS = {
    user: "X-Auth-Request-User",
    email: "X-Auth-Request-Email",
    groups: "X-Auth-Request-Groups",
    /** Name of the enrolled device whose certificate the client presented. */
    device: "X-Device-Name",
    requestId: "X-Request-Id",
} as const;

/** A certificate fingerprint as every renderer matches it: SHA-1 of the DER, lowercase hex. */
export function checkFingerprint(value: string, what: string, fail: SpecErrorType): void {
    if (!/^[0-9a-f]{40}$/.test(value)) throw new fail(`${what} must be 40 lowercase hex characters (SHA-1 of the certificate DER)`);
}

/** An exact https origin: scheme, lowercase host, optional port; never a wildcard. */
const CORS_ORIGIN = /^https:\/\/[a-z0-9.-]+(:\d{1,5})?$/;

/** Limits a gateway cannot work with at zero. */
const POSITIVE_LIMITS = ["ratePerMinute", "authRatePerMinute", "connectionsPerClient", "maxBodyKiB", "clientTimeoutSeconds", "upstreamTimeoutSeconds", "reloadDrainSeconds"] as const;

/**
 * Everything a renderer needs to hold true before it writes a line, checked once for both
 * gateways (and what only haproxy needs, when spec.kind is haproxy). Throws `fail` naming the
 * offending field. Values are also quoted safely where they are written; this refuses what no
 * quoting can make mean the same thing.
 */
export function validateGatewaySpec(spec: GatewaySpec, fail: SpecErrorType): void {
    const haproxy = spec.kind === "haproxy";
    if (haproxy && spec.identity.provider !== "none") {
        throw new fail(`identity.provider is "${spec.identity.provider}": the haproxy gateway has no auth_request; use gateway.kind nginx, or identity.provider none`);
    }
    if (haproxy && spec.tls.key !== spec.tls.cert && spec.tls.key !== `${spec.tls.cert}.key`) {
        // haproxy 2.6 has no separate key directive: it reads the key from the cert file or <cert>.key.
        throw new fail(`tls.key must be the certificate file itself or "${spec.tls.cert}.key" (haproxy loads the key from there); got ${JSON.stringify(spec.tls.key)}`);
    }
    const seen = new Set<string>();
    for (const d of spec.devices) {
        checkFingerprint(d.fingerprintSha1, `device "${d.name}": fingerprintSha1`, fail);
        if (seen.has(d.fingerprintSha1)) throw new fail(`device "${d.name}": the same certificate is enrolled twice (fingerprint ${d.fingerprintSha1})`);
        seen.add(d.fingerprintSha1);
        for (const g of d.groups) if (g.includes(",")) throw new fail(`device "${d.name}": group ${JSON.stringify(g)} contains a comma (groups are sent comma-separated)`);
        if (d.apiKeyDigest !== undefined && !/^[A-Za-z0-9_-]{22}$/.test(d.apiKeyDigest)) throw new fail(`device "${d.name}": apiKeyDigest must be an MD5 digest in unpadded base64url (22 characters)`);
        // haproxy map values are the rest of the line: whitespace would be kept, a newline would add an entry.
        for (const [field, value] of haproxy ? ([["name", d.name], ["owner", d.owner], ...d.groups.map((g) => ["group", g])] as const) : []) {
            if (!/^[^\s,]+$/.test(value)) throw new fail(`device "${d.name}": ${field} ${JSON.stringify(value)} must be non-empty without whitespace or commas`);
        }
    }
    if (spec.identity.provider !== "none" && !spec.identity.oauth2Proxy) throw new fail(`identity.provider is ${spec.identity.provider} but the spec has no oauth2-proxy address`);
    for (const o of spec.corsOrigins) if (!CORS_ORIGIN.test(o)) throw new fail(`gateway.corsOrigins: ${JSON.stringify(o)} is not an exact https origin`);
    for (const h of spec.acceptedHosts) if (!/^[A-Za-z0-9.:-]+$/.test(h)) throw new fail(`acceptedHosts: ${JSON.stringify(h)} is not a host name or IP address`);
    for (const [name, value] of spec.securityHeaders) {
        if (!/^[A-Za-z0-9-]+$/.test(name)) throw new fail(`security header name ${JSON.stringify(name)} is not a token`);
        checkNoControlCharacters(value, `security header ${name}`, fail);
    }
    const l = spec.limits;
    for (const [k, v] of Object.entries(l)) if (!Number.isInteger(v) || v < 0) throw new fail(`limits.${k} must be a non-negative integer (got ${v})`);
    for (const k of POSITIVE_LIMITS) if (l[k] < 1) throw new fail(`limits.${k} must be at least 1 (got ${l[k]})`);
    const tickets = spec.tls.sessionTickets;
    if (tickets && (!Number.isInteger(tickets.lifetimeSeconds) || tickets.lifetimeSeconds < 1)) throw new fail(`tls.sessionTickets.lifetimeSeconds must be a positive whole number of seconds (got ${tickets.lifetimeSeconds})`);
    const log = spec.logging.accessLog;
    // haproxy writes no files: a path is where the runner sends its stdout.
    if (haproxy && log !== "stdout" && log !== "off" && !log.startsWith("/")) throw new fail(`logging.accessLog must be "stdout", "off" or an absolute path the runner sends haproxy's stdout to (got ${JSON.stringify(log)})`);
}
