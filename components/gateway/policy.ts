/**
 * GatewayPolicy: what the gateway does to a request, in order, as plain data derived once from a
 * validated GatewaySpec. nginx.conf, haproxy.cfg and the node enclaves render it; each maps every
 * check id with a `switch` ending in `never`, so a check added here does not compile until every
 * renderer renders it, and the two gateways cannot disagree on order, refusals or headers.
 */
import { REFUSALS, type GatewayError } from "./errors";
import { validateNodeSpec, type NodeSpec } from "./node-spec";
import { FORWARDED_IDENTITY_HEADERS, validateGatewaySpec, type GatewaySpec, type SpecErrorType } from "./spec";

/**
 * Where a check runs. connection: every client-facing request, sign-in pages included;
 * request: API requests, before identity; identity: the user session; route: what the request may do.
 */
export type CheckStage = "connection" | "request" | "identity" | "route";

interface Refusing<Id extends string, Stage extends CheckStage> {
    readonly id: Id;
    readonly stage: Stage;
    readonly refusal: GatewayError;
}

/** One step of the request pipeline and what the client gets when it fails. */
export type GatewayCheck =
    /** HTTP/0.9 (no version, no headers): any answer would carry no HSTS, CSP or JSON, so the connection is closed unanswered. */
    | { readonly id: "protocol"; readonly stage: "connection"; readonly refusal: "close" }
    /** The client certificate's SHA-1 is an enrolled device's (a CA-signed certificate alone is not enough). */
    | Refusing<"device", "connection">
    /** Origin-form targets only: absolute-form is for proxies. */
    | Refusing<"absoluteForm", "connection">
    /** Host (present, once) and SNI (when sent) are names of the server certificate. */
    | Refusing<"host", "connection">
    /** Devices with a static API key: `Authorization: Bearer <key>` is that device's key. */
    | Refusing<"apiKey", "request">
    /** An Origin header is an allowed CORS origin; a preflight for an allowlisted route is answered here. */
    | Refusing<"origin", "request">
    /** identity.provider entra/oidc: a valid session or token (or the device's own API key). */
    | Refusing<"signIn", "identity">
    /** The raw request target is an allowlisted endpoint (DESIGN.md section 6). */
    | Refusing<"endpoint", "route">
    /** The method is one the endpoint allows. */
    | Refusing<"method", "route">
    /** The body fits gateway.maxBodyKiB. */
    | (Refusing<"size", "route"> & { readonly maxBodyKiB: number })
    /** Requests per minute (with burst) and requests in flight, per user or device. */
    | (Refusing<"rate", "route"> & { readonly perMinute: number; readonly burst: number; readonly inFlight: number; readonly retryAfterSeconds: number });

export type CheckId = GatewayCheck["id"];

/** A header value the gateway sets itself. */
export type HeaderSource = "clientAddress" | "scheme" | "requestId" | "user" | "email" | "groups" | "device";

export interface SetHeader {
    readonly name: string;
    readonly source: HeaderSource;
}

/** Fields of the JSON access log, in line order. Never bodies, cookies, Authorization or query strings. */
export type LogField =
    | "time"
    | "requestId"
    | "remoteAddr"
    | "device"
    | "user"
    | "groups"
    | "method"
    | "path"
    | "endpoint"
    | "status"
    | "bytesSent"
    | "requestLength"
    | "requestTime"
    | "upstreamStatus"
    | "upstreamResponseTime"
    | "terminationState"
    | "tlsProtocol";

export type TlsProtocol = "TLSv1.2" | "TLSv1.3";

export interface TlsPolicy {
    readonly protocols: readonly TlsProtocol[];
    /** TLS 1.2 suites (AEAD with ECDHE only); empty when only TLS 1.3 is offered. */
    readonly tls12Ciphers: readonly string[];
}

export interface CorsPolicy {
    /** Exact, case-sensitive origins. */
    readonly origins: readonly string[];
    /** Request headers a preflight allows. */
    readonly allowHeaders: string;
    /** Response headers a page may read. */
    readonly exposeHeaders: string;
    readonly maxAgeSeconds: number;
}

export interface GatewayPolicy {
    /** In the order the gateway applies them; the first that fails answers. */
    readonly checks: readonly GatewayCheck[];
    readonly requestHeaders: {
        /** Client headers passed upstream; every other client header (cookies, tokens, identity claims) is dropped. */
        readonly kept: readonly string[];
        /** Set on every request the gateway forwards, oauth2-proxy's included. */
        readonly forwarded: readonly SetHeader[];
        /** Set on requests to the upstream only; the only identity headers it ever sees. */
        readonly identity: readonly SetHeader[];
    };
    readonly responseHeaders: {
        /** Upstream headers never shown to clients (the gateway owns these). */
        readonly hidden: readonly string[];
        /** Every upstream header with this prefix is hidden too, where the binary can match a prefix. */
        readonly hiddenPrefix: string;
        /** Added to every response, the gateway's own refusals and errors included. */
        readonly always: readonly (readonly [string, string])[];
        /** The request id, on every response. */
        readonly requestId: string;
    };
    /** No origins: no CORS headers at all, and any Origin is refused. */
    readonly cors: CorsPolicy;
    readonly tls: TlsPolicy;
    readonly log: readonly LogField[];
}

/** Client request headers passed upstream. */
export const FORWARDED_CLIENT_HEADERS = ["Content-Type", "Accept", "User-Agent"] as const;

/** CORS response headers a browser acts on: only the gateway sets them. */
const CORS_RESPONSE_HEADERS = [
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
];

/**
 * Upstream response headers never shown to clients. `Server` is hidden by both gateways: the
 * upstream's Server names the software (and often the version) behind the gateway, which a
 * client has no use for and an attacker does. (nginx hides it by default; it is listed so both
 * configs say so.) The gateway's own `Server: nginx` stays: server_tokens off drops its version,
 * removing it needs a third-party module, and it names nothing behind the gateway.
 */
export const HIDDEN_UPSTREAM_HEADERS = ["Server", "X-Request-Id", "Set-Cookie", "X-Powered-By", ...CORS_RESPONSE_HEADERS] as const;

const TLS12_CIPHERS = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"];

/** TLS 1.3 only, or 1.2 too with AEAD ECDHE suites. */
export function tlsPolicy(minVersion: "1.2" | "1.3"): TlsPolicy {
    return minVersion === "1.2" ? { protocols: ["TLSv1.2", "TLSv1.3"], tls12Ciphers: TLS12_CIPHERS } : { protocols: ["TLSv1.3"], tls12Ciphers: [] };
}

/** Seconds a client should wait after a 429 before one more request is admitted. */
export function retryAfterSeconds(ratePerMinute: number): number {
    return Math.max(1, Math.ceil(60 / ratePerMinute));
}

const FORWARDED_HEADERS: readonly SetHeader[] = [
    { name: "X-Forwarded-For", source: "clientAddress" },
    { name: "X-Forwarded-Proto", source: "scheme" },
    { name: FORWARDED_IDENTITY_HEADERS.requestId, source: "requestId" },
];

const HIDDEN = { hidden: HIDDEN_UPSTREAM_HEADERS, hiddenPrefix: "Access-Control-" } as const;

const LOG_FIELDS: readonly LogField[] = [
    "time",
    "requestId",
    "remoteAddr",
    "device",
    "user",
    "groups",
    "method",
    "path",
    "endpoint",
    "status",
    "bytesSent",
    "requestLength",
    "requestTime",
    "upstreamStatus",
    "upstreamResponseTime",
    "terminationState",
    "tlsProtocol",
];

/**
 * Validate the spec (throwing `fail`, the renderer's error type, naming the field) and derive
 * the policy. The checks a spec does not need are left out: no API key check without keyed
 * devices, no sign-in without an identity provider.
 */
export function deriveGatewayPolicy(spec: GatewaySpec, fail: SpecErrorType): GatewayPolicy {
    validateGatewaySpec(spec, fail);
    const l = spec.limits;
    const h = FORWARDED_IDENTITY_HEADERS;
    const checks: GatewayCheck[] = [
        { id: "protocol", stage: "connection", refusal: "close" },
        { id: "device", stage: "connection", refusal: REFUSALS.deviceNotEnrolled },
        { id: "absoluteForm", stage: "connection", refusal: REFUSALS.absoluteForm },
        { id: "host", stage: "connection", refusal: REFUSALS.unknownHost },
        ...(spec.devices.some((d) => d.apiKeyDigest !== undefined) ? [{ id: "apiKey", stage: "request", refusal: REFUSALS.apiKeyInvalid } as const] : []),
        { id: "origin", stage: "request", refusal: REFUSALS.originNotAllowed },
        ...(spec.identity.provider !== "none" ? [{ id: "signIn", stage: "identity", refusal: REFUSALS.unauthenticated } as const] : []),
        { id: "endpoint", stage: "route", refusal: REFUSALS.routeNotAllowed },
        { id: "method", stage: "route", refusal: REFUSALS.methodNotAllowed },
        { id: "size", stage: "route", refusal: REFUSALS.bodyTooLarge, maxBodyKiB: l.maxBodyKiB },
        { id: "rate", stage: "route", refusal: REFUSALS.rateLimited, perMinute: l.ratePerMinute, burst: l.burst, inFlight: l.connectionsPerClient, retryAfterSeconds: retryAfterSeconds(l.ratePerMinute) },
    ];
    return {
        checks,
        requestHeaders: {
            kept: FORWARDED_CLIENT_HEADERS,
            forwarded: FORWARDED_HEADERS,
            identity: [
                { name: h.user, source: "user" },
                { name: h.email, source: "email" },
                { name: h.groups, source: "groups" },
                { name: h.device, source: "device" },
            ],
        },
        responseHeaders: { ...HIDDEN, always: spec.securityHeaders, requestId: h.requestId },
        cors: { origins: spec.corsOrigins, allowHeaders: "Authorization, Content-Type, Accept", exposeHeaders: `${h.requestId}, Retry-After`, maxAgeSeconds: 600 },
        tls: tlsPolicy(spec.tls.minVersion),
        log: LOG_FIELDS,
    };
}

/** The check with this id; throws when the policy has none (a renderer asked for a check its policy always has). */
export function checkOf<Id extends CheckId>(policy: { readonly checks: readonly GatewayCheck[] }, id: Id): Extract<GatewayCheck, { id: Id }> {
    const found = policy.checks.find((c): c is Extract<GatewayCheck, { id: Id }> => c.id === id);
    if (!found) throw new Error(`the policy has no ${id} check`);
    return found;
}

/** The checks of one stage, in pipeline order. */
export function checksOf<S extends CheckStage>(policy: GatewayPolicy, stage: S): Extract<GatewayCheck, { stage: S }>[] {
    return policy.checks.filter((c): c is Extract<GatewayCheck, { stage: S }> => c.stage === stage);
}

/** Methods of one endpoint as the Allow header and CORS preflights list them. */
export const methodList = (methods: readonly string[]) => methods.join(", ");

/** The checks a node's enclave applies: its one "device" is the gateway. */
export type NodeCheck = Extract<GatewayCheck, { readonly id: "device" | "endpoint" | "method" | "size" }>;

/** What a node's enclave does to a request from the gateway. */
export interface NodePolicy {
    readonly checks: readonly NodeCheck[];
    /** The same client headers, forwarded headers and hidden headers as the gateway; no identity headers. */
    readonly requestHeaders: GatewayPolicy["requestHeaders"];
    readonly responseHeaders: Pick<GatewayPolicy["responseHeaders"], "hidden" | "hiddenPrefix">;
    readonly tls: TlsPolicy;
}

/** Refusal for a CA-signed certificate that is not the gateway's. */
export const NOT_GATEWAY = { status: 403, code: "client_not_gateway", message: "only the gateway may connect" } as const satisfies GatewayError;

/** Validate the node spec (throwing `fail`) and derive what its enclave enforces: TLS 1.3 only, the gateway's certificate only. */
export function deriveNodePolicy(spec: NodeSpec, fail: SpecErrorType): NodePolicy {
    validateNodeSpec(spec, fail);
    return {
        checks: [
            { id: "device", stage: "connection", refusal: NOT_GATEWAY },
            { id: "endpoint", stage: "route", refusal: REFUSALS.routeNotAllowed },
            { id: "method", stage: "route", refusal: REFUSALS.methodNotAllowed },
            { id: "size", stage: "route", refusal: REFUSALS.bodyTooLarge, maxBodyKiB: spec.maxBodyKiB },
        ],
        requestHeaders: { kept: FORWARDED_CLIENT_HEADERS, forwarded: FORWARDED_HEADERS, identity: [] },
        responseHeaders: HIDDEN,
        tls: tlsPolicy("1.3"),
    };
}
