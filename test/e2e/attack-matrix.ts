/**
 * The gateway attack matrix as DATA: every case says what to send, which certificate to present,
 * what status the gateway must answer and what the stub Ollama may have seen. The nginx e2e test
 * runs it through the sandbox; the HAProxy test runs the same cases (`appliesTo`, and
 * `statusByKind` where the two gateways legitimately answer differently).
 *
 * Cases run against one of a few sandbox profiles (stack configs below), so that e.g. the rate
 * limit case gets tight limits without throttling the rest of the matrix.
 */
import { DENIED_ROUTES, ENDPOINTS, type Endpoint } from "../../components/gateway/endpoints";
import { LEAKY_HEADERS_MODEL } from "../../scripts/sandbox/stub-ollama";

export type GatewayKind = "nginx" | "haproxy";

/**
 * Which client certificate to present: an enrolled device of the profile, none, a cert from a
 * CA the gateway never saw, an expired CA-signed cert, a valid CA-signed cert of a device that
 * was never in config, or one of a device removed from config (sandbox restarted on the same
 * state dir without it).
 */
export type CertChoice = "enrolled" | "second-device" | "none" | "foreign-ca" | "expired" | "unenrolled" | "removed";

export interface HttpSend {
    readonly kind: "http";
    readonly method: string;
    /** Sent byte for byte (no normalisation by the client). */
    readonly path: string;
    readonly headers?: Readonly<Record<string, string>>;
    /** JSON-encoded when an object. */
    readonly body?: string | object;
    /** A body of this many bytes (`{"prompt":"xxxx..."}`), for size limits. */
    readonly bodyBytes?: number;
    readonly cert?: CertChoice;
    /** Authenticate as the profile's signed-in user (identity profiles only). */
    readonly auth?: "cookie" | "bearer";
    /** TLS SNI; default none. */
    readonly servername?: string;
    /** Send this many identical requests first, back to back (the case checks the last one). */
    readonly warmup?: number;
}

export interface RawSend {
    readonly kind: "raw";
    /**
     * Bytes after the TLS handshake, sent `pauseMs` apart. `{host}` is replaced by the gateway's
     * host:port (a valid Host header).
     */
    readonly pieces: readonly string[];
    readonly pauseMs?: number;
    /** Give up waiting for the server after this long. */
    readonly timeoutMs?: number;
    readonly cert?: CertChoice;
    /** TLS SNI to send; the client then skips the certificate name check (an attacker would). */
    readonly servername?: string;
}

/** What the stub Ollama must have received for the case. */
export type UpstreamExpectation =
    | { readonly reaches: false }
    | {
          readonly reaches: true;
          /** The exact request target Ollama saw. */
          readonly path: string;
          /**
           * Header values Ollama saw (lowercase names). `null`: absent. Placeholders: `{device}`
           * (enrolled device name), `{owner}`, `{groups}` (comma-joined), `{user}` (signed-in user).
           */
          readonly headers?: Readonly<Record<string, string | null>>;
      };

export interface AttackCase {
    readonly id: string;
    readonly description: string;
    readonly profile: ProfileName;
    readonly send: HttpSend | RawSend;
    /**
     * Accepted statuses of the (first) response. 0 means: no HTTP response at all (TLS refused or
     * connection closed) — for raw sends, the server must also have closed the connection.
     */
    readonly status: readonly number[];
    /** Overrides `status` for one gateway kind. */
    readonly statusByKind?: Partial<Record<GatewayKind, readonly number[]>>;
    readonly upstream: UpstreamExpectation;
    /** Response headers: value to equal, a RegExp source to match (prefix `~`), or null for absent. */
    readonly responseHeaders?: Readonly<Record<string, string | null>>;
    /** The gateway's own JSON error shape `{"error":{"code","requestId"}}` with this code. */
    readonly errorCode?: string;
    /** A streamed answer: at least this many chunks, spread over time (not one burst). */
    readonly streamedChunks?: number;
    /** Raw sends: at most this many HTTP responses (a smuggled second request must not be answered). */
    readonly maxResponses?: number;
    readonly appliesTo: readonly GatewayKind[];
    /** The case needs OIDC sign-in (nginx auth_request); runs in the identity profile. */
    readonly needs?: "identity";
}

export type ProfileName = "default" | "tight-limits" | "identity";

/** A device of a profile: enrolled ones are in config; `removed` ones were, then were dropped. */
export interface ProfileDevice {
    readonly name: string;
    readonly owner: string;
    readonly groups: readonly string[];
}

export interface Profile {
    /** Raw stack config (keys without namespace). */
    readonly config: Record<string, unknown>;
    readonly enrolled: ProfileDevice;
    readonly second: ProfileDevice;
    /** In config at first start, removed before the sandbox the cases run against. */
    readonly removed?: ProfileDevice;
    /** Signed-in user for `auth`, identity profiles only. */
    readonly user?: string;
}

const alice: ProfileDevice = { name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng", "analysts"] };
const bob: ProfileDevice = { name: "bob-workstation", owner: "bob@example.com", groups: ["analysts"] };
const mallory: ProfileDevice = { name: "mallory-old-laptop", owner: "mallory@example.com", groups: ["ml-eng"] };

/** Allowed CORS origin of the test stacks. */
export const ALLOWED_ORIGIN = "https://chat.example.com";
export const MODEL = "llama3.2:3b";
/** Small so the oversized-body cases stay cheap. */
export const MAX_BODY_KIB = 64;
/** Small so the slow-header case finishes quickly. */
export const CLIENT_TIMEOUT_SECONDS = 2;
export const TIGHT_BURST = 3;

const gatewayCommon = (kind: GatewayKind) => ({
    kind,
    maxBodyKiB: MAX_BODY_KIB,
    clientTimeoutSeconds: CLIENT_TIMEOUT_SECONDS,
    corsOrigins: [ALLOWED_ORIGIN],
});

export function profiles(kind: GatewayKind): Record<ProfileName, Profile> {
    const base = { domain: "ollama.test", filter: { enabled: false, modelsByGroup: { "*": [MODEL] } }, pki: { keyAlgorithm: "ECDSA-P256" } };
    return {
        default: {
            config: { ...base, devices: [alice, bob], gateway: { ...gatewayCommon(kind), rateLimitPerMinute: 60000, burst: 1000 }, identity: { provider: "none" } },
            enrolled: alice,
            second: bob,
            removed: mallory,
        },
        "tight-limits": {
            config: { ...base, devices: [alice, bob], gateway: { ...gatewayCommon(kind), rateLimitPerMinute: 6, burst: TIGHT_BURST }, identity: { provider: "none" } },
            enrolled: alice,
            second: bob,
        },
        identity: {
            config: {
                ...base,
                devices: [alice, bob],
                gateway: { ...gatewayCommon(kind), rateLimitPerMinute: 60000, burst: 1000 },
                identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedEmailDomains: ["example.com"] },
                oidcClientSecret: "sandbox-not-a-secret",
            },
            enrolled: alice,
            second: bob,
            user: "bob@example.com",
        },
    };
}

const BOTH: readonly GatewayKind[] = ["nginx", "haproxy"];
const NGINX: readonly GatewayKind[] = ["nginx"];
const nothing: UpstreamExpectation = { reaches: false };

/** Headers every gateway response carries, errors included. */
export const REQUIRED_RESPONSE_HEADERS = ["strict-transport-security", "x-content-type-options", "x-frame-options", "content-security-policy", "referrer-policy", "cache-control", "x-request-id"] as const;

/** A request body each allowlisted endpoint accepts (streaming ones ask for a stream). */
function bodyFor(e: Endpoint): object | undefined {
    if (e.methods.includes("GET")) return undefined;
    switch (e.id) {
        case "show":
            return { model: MODEL };
        case "generate":
            return { model: MODEL, prompt: "hi" };
        case "chat":
            return { model: MODEL, messages: [{ role: "user", content: "hi" }] };
        case "embed":
        case "v1-embeddings":
            return { model: MODEL, input: "hi" };
        case "embeddings":
            return { model: MODEL, prompt: "hi" };
        case "v1-messages":
            return { model: MODEL, max_tokens: 16, messages: [{ role: "user", content: "hi" }], stream: true };
        case "v1-responses":
            return { model: MODEL, input: "hi", stream: true };
        case "v1-completions":
            return { model: MODEL, prompt: "hi", stream: true };
        default:
            return { model: MODEL, messages: [{ role: "user", content: "hi" }], stream: true };
    }
}

const concretePath = (e: Endpoint) => (e.modelParam ? `${e.path}${MODEL}` : e.path);

/** Positive: every allowlisted endpoint works for an enrolled device, path passed exactly. */
const allowedEndpointCases: AttackCase[] = ENDPOINTS.map((e) => ({
    id: `allow-${e.id}`,
    description: `${e.methods[0]} ${concretePath(e)} from an enrolled device reaches Ollama with exactly that path`,
    profile: "default",
    send: { kind: "http", method: e.methods[0], path: concretePath(e), body: bodyFor(e) },
    status: [200],
    upstream: { reaches: true, path: concretePath(e), headers: { "x-device-name": "{device}" } },
    streamedChunks: e.stream === "json" ? undefined : 4,
    appliesTo: BOTH,
}));

const deniedRouteCases: AttackCase[] = DENIED_ROUTES.map((r) => ({
    id: `deny-${r.method.toLowerCase()}-${r.path.replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "").slice(0, 40) || "root"}`,
    description: `${r.method} ${r.path} is a denied route: refused at the gateway`,
    profile: "default",
    send: { kind: "http", method: r.method, path: r.path, body: r.method === "POST" ? { model: MODEL, name: MODEL } : undefined },
    status: [403],
    errorCode: "route_not_allowed",
    upstream: nothing,
    appliesTo: BOTH,
}));

/** Spellings of denied routes that a normalising proxy or Ollama's router could map onto them. */
const PATH_TRICKS: readonly (readonly [string, string, string, (readonly number[])?])[] = [
    ["pct-letter", "/api/%70ull", "percent-encoded letter"],
    ["pct-slash", "/api%2Fpull", "encoded slash %2F"],
    ["pct-slash-lower", "/api%2fpull", "encoded slash %2f"],
    ["dotdot", "/api/generate/../pull", "dot-dot segment from an allowed route", [400, 403]],
    ["dotdot-encoded", "/api/generate/%2e%2e/pull", "encoded dot-dot %2e%2e", [400, 403]],
    ["dotdot-mixed", "/api/generate/.%2E/pull", "mixed-case encoded dot-dot", [400, 403]],
    ["dot", "/api/./pull", "single-dot segment"],
    ["double-slash-lead", "//api/pull", "leading double slash"],
    ["double-slash-mid", "/api//pull", "double slash"],
    ["trailing-slash", "/api/pull/", "trailing slash"],
    ["upper", "/API/PULL", "upper case"],
    ["mixed-case", "/Api/Pull", "mixed case"],
    ["semicolon", "/api/pull;x=1", "; parameter"],
    ["semicolon-allowed", "/api/version;/../pull", "; then dot-dot behind an allowed route", [400, 403]],
    ["query", "/api/pull?stream=false", "query string"],
    ["backslash", "/api\\pull", "backslash separator"],
    ["nul", "/api/pull%00", "encoded NUL", [400, 403]],
    ["space", "/api/pull%20", "encoded trailing space"],
    ["model-escape", "/v1/models/..%2f..%2fapi%2fpull", "escape from the model parameter with %2f"],
    ["model-dotdot", "/v1/models/../../api/pull", "escape from the model parameter with ..", [400, 403]],
    ["overlong-utf8", "/api/%c0%afpull", "overlong UTF-8 slash"],
    ["pct-allowed", "/api/%76ersion", "percent-encoded allowed route (not the exact allowlisted spelling)"],
    ["trailing-slash-allowed", "/api/version/", "allowed route with a trailing slash"],
    ["blobs-dotdot", "/api/tags/../blobs/sha256:00", "dot-dot into /api/blobs", [400, 403]],
];

const pathTrickCases: AttackCase[] = PATH_TRICKS.map(([id, path, what, status]) => ({
    id: `path-${id}`,
    description: `${what}: ${path} never reaches Ollama`,
    profile: "default",
    send: { kind: "http", method: "POST", path, body: { model: MODEL, name: MODEL } },
    status: status ?? [403],
    upstream: nothing,
    appliesTo: BOTH,
}));

const METHOD_TRICKS: readonly (readonly [string, string, string])[] = [
    ["DELETE", "/api/version", "GET, HEAD"],
    ["POST", "/api/tags", "GET, HEAD"],
    ["GET", "/api/generate", "POST"],
    ["PUT", "/api/chat", "POST"],
    ["PATCH", "/v1/chat/completions", "POST"],
    ["DELETE", "/v1/models/llama3.2:3b", "GET"],
    ["OPTIONS", "/api/generate", "POST"],
];

const methodCases: AttackCase[] = METHOD_TRICKS.map(([method, path, allow]) => ({
    id: `method-${method.toLowerCase()}-${path.replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "")}`,
    description: `${method} on ${path} (allowed: ${allow}) is answered 405 with Allow, never proxied`,
    profile: "default",
    send: { kind: "http", method, path, body: method === "GET" || method === "OPTIONS" ? undefined : { model: MODEL } },
    status: [405],
    responseHeaders: { allow },
    errorCode: "method_not_allowed",
    upstream: nothing,
    appliesTo: BOTH,
}));

const certCases: AttackCase[] = [
    { id: "cert-none", description: "no client certificate", profile: "default", send: { kind: "http", method: "GET", path: "/api/version", cert: "none" }, status: [400], statusByKind: { haproxy: [0] }, upstream: nothing, appliesTo: BOTH },
    { id: "cert-foreign-ca", description: "client certificate from a foreign CA", profile: "default", send: { kind: "http", method: "GET", path: "/api/version", cert: "foreign-ca" }, status: [400], statusByKind: { haproxy: [0] }, upstream: nothing, appliesTo: BOTH },
    { id: "cert-expired", description: "expired certificate signed by the gateway's CA", profile: "default", send: { kind: "http", method: "GET", path: "/api/version", cert: "expired" }, status: [400], statusByKind: { haproxy: [0] }, upstream: nothing, appliesTo: BOTH },
    {
        id: "cert-unenrolled",
        description: "valid CA-signed certificate of a device that is not in config",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/api/version", cert: "unenrolled" },
        status: [403],
        statusByKind: { haproxy: [0, 403] },
        errorCode: "device_not_enrolled",
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "cert-removed-device",
        description: "certificate of a device removed from config (revocation by config edit, same state dir)",
        profile: "default",
        send: { kind: "http", method: "POST", path: "/api/generate", body: { model: MODEL, prompt: "hi" }, cert: "removed" },
        status: [403],
        statusByKind: { haproxy: [0, 403] },
        errorCode: "device_not_enrolled",
        upstream: nothing,
        appliesTo: BOTH,
    },
];

const bigPrompt = MAX_BODY_KIB * 1024 + 1;
const chunked = (size: number) => `${size.toString(16)}\r\n${"x".repeat(size)}\r\n`;

const limitCases: AttackCase[] = [
    {
        id: "body-oversized",
        description: `a body above maxBodyKiB (${MAX_BODY_KIB} KiB, Content-Length) is refused with 413`,
        profile: "default",
        send: { kind: "http", method: "POST", path: "/api/generate", bodyBytes: bigPrompt },
        status: [413],
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "body-oversized-chunked",
        description: "an oversized chunked body is refused before any byte reaches Ollama",
        profile: "default",
        send: {
            kind: "raw",
            pieces: [`POST /api/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`, chunked(40 * 1024), chunked(40 * 1024) + "0\r\n\r\n"],
            pauseMs: 50,
        },
        status: [413],
        statusByKind: { haproxy: [411] }, // haproxy refuses every chunked request body: it cannot measure one without buffering it whole
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "headers-oversized",
        description: "a 32 KiB header line is refused (header buffer limits)",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/api/version", headers: { "X-Padding": "a".repeat(32 * 1024) } },
        status: [400, 431],
        statusByKind: { haproxy: [0] }, // haproxy's parser closes without an answer (see haproxy.ts SILENT_PARSER_STATUSES)
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "slow-headers",
        description: `slowloris: headers trickled past clientTimeoutSeconds (${CLIENT_TIMEOUT_SECONDS}s) -> connection closed`,
        profile: "default",
        send: {
            kind: "raw",
            pieces: ["GET /api/version HTTP/1.1\r\n", "Host: {host}\r\n", "X-A: 1\r\n", "X-B: 2\r\n", "X-C: 3\r\n", "X-D: 4\r\n", "\r\n"],
            pauseMs: 1000,
            timeoutMs: (CLIENT_TIMEOUT_SECONDS + 3) * 1000,
        },
        status: [0, 408],
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "rate-limit-burst",
        description: `past the burst (${TIGHT_BURST}) the device gets 429 with Retry-After, not proxied`,
        profile: "tight-limits",
        send: { kind: "http", method: "GET", path: "/api/version", warmup: TIGHT_BURST + 1 },
        status: [429],
        responseHeaders: { "retry-after": "~^[1-9][0-9]*$" },
        errorCode: "rate_limited",
        upstream: nothing,
        appliesTo: BOTH,
    },
];

const smugglingCases: AttackCase[] = [
    {
        id: "smuggle-cl-te",
        description: "Content-Length and Transfer-Encoding together (CL.TE) -> 400, smuggled request never parsed",
        profile: "default",
        send: { kind: "raw", pieces: ["POST /api/show HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 42\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /api/pull HTTP/1.1\r\nHost: {host}\r\n\r\n"] },
        status: [400],
        statusByKind: { haproxy: [411] }, // haproxy refuses every chunked request body (with both headers, Transfer-Encoding wins per RFC 7230): it cannot measure one without buffering it whole
        maxResponses: 1,
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "smuggle-duplicate-cl",
        description: "two different Content-Length headers -> 400",
        profile: "default",
        send: { kind: "raw", pieces: ["POST /api/show HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}POST /api/pull HTTP/1.1\r\nHost: {host}\r\n\r\n"] },
        status: [400],
        statusByKind: { haproxy: [0] }, // haproxy's parser closes without an answer (see haproxy.ts SILENT_PARSER_STATUSES)
        maxResponses: 1,
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "smuggle-obs-fold",
        description: "obs-fold header continuation hiding Transfer-Encoding -> 400",
        profile: "default",
        send: { kind: "raw", pieces: ["POST /api/show HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\n\r\n{}"] },
        status: [400],
        maxResponses: 1,
        upstream: nothing,
        appliesTo: NGINX, // haproxy unfolds obs-fold (RFC 7230 3.2.4); see test/e2e/haproxy.test.ts
    },
    {
        id: "smuggle-te-obfuscated",
        description: "Transfer-Encoding other than chunked (`chunked, identity`) -> refused",
        profile: "default",
        send: { kind: "raw", pieces: ["POST /api/show HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"] },
        status: [400, 501],
        statusByKind: { haproxy: [0] }, // haproxy's parser closes without an answer (see haproxy.ts SILENT_PARSER_STATUSES)
        maxResponses: 1,
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "chunked-body-normalised",
        description: "a valid chunked body reaches Ollama re-framed with Content-Length (no Transfer-Encoding to desync on)",
        profile: "default",
        send: { kind: "raw", pieces: [`POST /api/show HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(JSON.stringify({ model: MODEL }).length).replace(/x+/, JSON.stringify({ model: MODEL }))}0\r\n\r\n`] },
        status: [200],
        upstream: { reaches: true, path: "/api/show", headers: { "transfer-encoding": null, "content-length": String(JSON.stringify({ model: MODEL }).length) } },
        // HAProxy refuses chunked request bodies outright (411), so there is nothing to re-frame.
        appliesTo: NGINX,
    },
    {
        id: "pipelined-after-refusal",
        description: "a denied request pipelined before an allowed one: the first is refused, only the second reaches Ollama",
        profile: "default",
        send: { kind: "raw", pieces: ["POST /api/pull HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n{}GET /api/version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"] },
        status: [403],
        upstream: { reaches: true, path: "/api/version" },
        appliesTo: BOTH,
    },
    {
        id: "crlf-in-target",
        description: "an encoded CRLF in the request target cannot inject an identity header",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/api/version%0D%0AX-Auth-Request-User:%20admin" },
        status: [400, 403],
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "absolute-uri-denied",
        description: "absolute-form request line targeting a denied route",
        profile: "default",
        send: { kind: "raw", pieces: ["GET https://{host}/api/pull HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"] },
        status: [400],
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "absolute-uri-foreign-host",
        description: "absolute-form request line naming another host, on an allowed path",
        profile: "default",
        send: { kind: "raw", pieces: ["GET http://evil.example/api/version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"] },
        status: [400, 421],
        statusByKind: { haproxy: [0] }, // haproxy's parser closes without an answer (see haproxy.ts SILENT_PARSER_STATUSES)
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "host-spoof",
        description: "Host header that is not one of the gateway's names",
        profile: "default",
        send: { kind: "raw", pieces: ["GET /api/version HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"] },
        status: [421],
        errorCode: "unknown_host",
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "h2-preface-without-alpn",
        description: "an HTTP/2 connection preface after an http/1.1 ALPN: never switched to HTTP/2 (whose bodies need no Content-Length)",
        profile: "default",
        send: { kind: "raw", pieces: ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"] },
        status: [0, 400],
        statusByKind: { haproxy: [0] }, // haproxy's parser closes without an answer (see haproxy.ts SILENT_PARSER_STATUSES)
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "http09-request",
        description: "an HTTP/0.9 request (no version, no headers; its answer could carry no HSTS, CSP or JSON) is closed unanswered",
        profile: "default",
        send: { kind: "raw", pieces: ["GET /api/version\r\n"] },
        status: [0],
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "http10-without-host",
        description: "an HTTP/1.0 request without Host is refused like one naming another host",
        profile: "default",
        send: { kind: "raw", pieces: ["GET /api/version HTTP/1.0\r\n\r\n"] },
        status: [421],
        errorCode: "unknown_host",
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "host-spoof-list",
        description: "a comma list in one Host header whose last part is a valid name",
        profile: "default",
        send: { kind: "raw", pieces: ["GET /api/version HTTP/1.1\r\nHost: evil.example, {host}\r\nConnection: close\r\n\r\n"] },
        status: [400, 421],
        statusByKind: { haproxy: [0, 400, 421] },
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "host-spoof-second-header",
        description: "a second Host header after the real one",
        profile: "default",
        send: { kind: "raw", pieces: ["GET /api/version HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"] },
        status: [400],
        statusByKind: { haproxy: [0] }, // haproxy's parser closes without an answer (see haproxy.ts SILENT_PARSER_STATUSES)
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "sni-spoof",
        description: "TLS SNI naming another host (the client ignores the certificate name mismatch)",
        profile: "default",
        send: { kind: "raw", servername: "evil.example", pieces: ["GET /api/version HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"] },
        status: [421],
        statusByKind: { haproxy: [0, 421] },
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "method-trace",
        description: "TRACE is never proxied",
        profile: "default",
        send: { kind: "http", method: "TRACE", path: "/api/version" },
        status: [405],
        upstream: nothing,
        appliesTo: BOTH,
    },
];

const FORGED = {
    "X-Auth-Request-User": "admin@evil.example",
    "X-Auth-Request-Email": "admin@evil.example",
    "X-Auth-Request-Groups": "admins",
    "X-Auth-Request-Access-Token": "forged-token",
    "X-Auth-Request-Preferred-Username": "admin",
    "X-Device-Name": "bob-workstation",
    "X-Forwarded-User": "admin",
    "X-Forwarded-Email": "admin@evil.example",
    "X-Forwarded-Groups": "admins",
    "X-Forwarded-Access-Token": "forged-token",
    "X-Remote-User": "admin",
    "X-Real-IP": "10.0.0.1",
    "X-Forwarded-For": "10.0.0.1",
    "X-Request-Id": "forged-request-id",
    Cookie: "session=stolen",
    Authorization: "Bearer forged-token",
};

const STRIPPED = {
    "x-auth-request-access-token": null,
    "x-auth-request-preferred-username": null,
    "x-forwarded-user": null,
    "x-forwarded-email": null,
    "x-forwarded-groups": null,
    "x-forwarded-access-token": null,
    "x-remote-user": null,
    "x-real-ip": null,
    cookie: null,
    authorization: null,
};

const identityHeaderCases: AttackCase[] = [
    {
        id: "forged-identity-headers",
        description: "client-sent identity headers are replaced by the gateway's (device identity), the rest stripped",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/api/tags", headers: FORGED },
        status: [200],
        upstream: {
            reaches: true,
            path: "/api/tags",
            headers: { "x-device-name": "{device}", "x-auth-request-user": "{owner}", "x-auth-request-email": "{owner}", "x-auth-request-groups": "{groups}", "x-forwarded-for": "127.0.0.1", ...STRIPPED },
        },
        appliesTo: BOTH,
    },
    {
        id: "forged-identity-underscore",
        description: "underscore spelling of identity headers (X_Auth_Request_User) never reaches Ollama",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/api/tags", headers: { X_Auth_Request_User: "admin", X_Device_Name: "bob-workstation" } },
        status: [200],
        upstream: { reaches: true, path: "/api/tags", headers: { "x-auth-request-user": "{owner}", "x-device-name": "{device}", x_auth_request_user: null, x_device_name: null } },
        appliesTo: BOTH,
    },
    {
        id: "identity-forged-with-session",
        description: "signed in, forged X-Auth-Request-* headers: Ollama sees the IdP's user, not the forgery",
        profile: "identity",
        send: { kind: "http", method: "GET", path: "/api/tags", auth: "cookie", headers: { "X-Auth-Request-User": "admin@evil.example", "X-Auth-Request-Email": "admin@evil.example", "X-Auth-Request-Groups": "admins" } },
        status: [200],
        upstream: { reaches: true, path: "/api/tags", headers: { "x-auth-request-email": "{user}", "x-device-name": "{device}", cookie: null, authorization: null } },
        appliesTo: NGINX,
        needs: "identity",
    },
    {
        id: "identity-no-session-api",
        description: "no session on an API path: 401 JSON, no redirect",
        profile: "identity",
        send: { kind: "http", method: "POST", path: "/api/generate", body: { model: MODEL, prompt: "hi" } },
        status: [401],
        errorCode: "unauthenticated",
        responseHeaders: { location: null },
        upstream: nothing,
        appliesTo: NGINX,
        needs: "identity",
    },
    {
        id: "identity-forged-headers-no-session",
        description: "no session but forged identity headers: still 401",
        profile: "identity",
        send: { kind: "http", method: "GET", path: "/v1/models", headers: { "X-Auth-Request-User": "admin", "X-Auth-Request-Email": "admin@example.com", "X-Forwarded-User": "admin" } },
        status: [401],
        responseHeaders: { location: null },
        upstream: nothing,
        appliesTo: NGINX,
        needs: "identity",
    },
    {
        id: "identity-bad-bearer",
        description: "a bearer token the IdP never issued: 401",
        profile: "identity",
        send: { kind: "http", method: "GET", path: "/api/tags", headers: { Authorization: "Bearer not-a-real-token" } },
        status: [401],
        upstream: nothing,
        appliesTo: NGINX,
        needs: "identity",
    },
    {
        id: "identity-browser-redirect",
        description: "a browser path without a session is redirected to sign-in",
        profile: "identity",
        send: { kind: "http", method: "GET", path: "/", headers: { Accept: "text/html" } },
        status: [302],
        responseHeaders: { location: "~^/oauth2/start\\?rd=/$" },
        upstream: nothing,
        appliesTo: NGINX,
        needs: "identity",
    },
    {
        id: "identity-session-denied-route",
        description: "signed in, a denied route is still refused",
        profile: "identity",
        send: { kind: "http", method: "POST", path: "/api/pull", auth: "cookie", body: { model: MODEL } },
        status: [403],
        errorCode: "route_not_allowed",
        upstream: nothing,
        appliesTo: NGINX,
        needs: "identity",
    },
    {
        id: "identity-oauth2-internal-path",
        description: "oauth2-proxy paths outside the sign-in flow are refused",
        profile: "identity",
        send: { kind: "http", method: "GET", path: "/oauth2/auth" },
        status: [403],
        upstream: nothing,
        appliesTo: NGINX,
        needs: "identity",
    },
    {
        id: "identity-bearer-ok",
        description: "a valid bearer token reaches Ollama as that user",
        profile: "identity",
        send: { kind: "http", method: "GET", path: "/api/version", auth: "bearer" },
        status: [200],
        upstream: { reaches: true, path: "/api/version", headers: { "x-auth-request-email": "{user}", authorization: null } },
        appliesTo: NGINX,
        needs: "identity",
    },
];

const corsCases: AttackCase[] = [
    {
        id: "cors-preflight-foreign-origin",
        description: "preflight from an origin not in corsOrigins is refused at the edge",
        profile: "default",
        send: { kind: "http", method: "OPTIONS", path: "/api/chat", headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "POST" } },
        status: [403],
        responseHeaders: { "access-control-allow-origin": null },
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "cors-simple-foreign-origin",
        description: "a cross-site POST from a foreign origin (CSRF-style) is refused, not proxied",
        profile: "default",
        send: { kind: "http", method: "POST", path: "/api/generate", headers: { Origin: "https://evil.example", "Content-Type": "text/plain" }, body: JSON.stringify({ model: MODEL, prompt: "hi" }) },
        status: [403],
        errorCode: "origin_not_allowed",
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "cors-origin-list",
        description: "an Origin header listing a foreign origin before the allowed one is refused",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/api/version", headers: { Origin: `https://evil.example, ${ALLOWED_ORIGIN}` } },
        status: [403],
        errorCode: "origin_not_allowed",
        responseHeaders: { "access-control-allow-origin": null },
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "cors-origin-case",
        description: "the allowed origin in another case is a different origin: refused",
        profile: "default",
        send: { kind: "http", method: "OPTIONS", path: "/api/chat", headers: { Origin: ALLOWED_ORIGIN.toUpperCase(), "Access-Control-Request-Method": "POST" } },
        status: [403],
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "cors-preflight-allowed",
        description: "preflight from the allowed origin is answered 204 at the edge (never proxied)",
        profile: "default",
        send: { kind: "http", method: "OPTIONS", path: "/api/chat", headers: { Origin: ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST" } },
        status: [204],
        responseHeaders: { "access-control-allow-origin": ALLOWED_ORIGIN, "access-control-allow-methods": "~POST", vary: "~Origin" },
        upstream: nothing,
        appliesTo: BOTH,
    },
    {
        id: "cors-allowed-request",
        description: "an actual request from the allowed origin is proxied and gets the origin back (never *)",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/api/version", headers: { Origin: ALLOWED_ORIGIN } },
        status: [200],
        responseHeaders: { "access-control-allow-origin": ALLOWED_ORIGIN },
        upstream: { reaches: true, path: "/api/version", headers: { origin: null } },
        appliesTo: BOTH,
    },
];

const errorMaskingCases: AttackCase[] = [
    {
        id: "second-device-identity",
        description: "a second enrolled device is identified as itself",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/api/ps", cert: "second-device" },
        status: [200],
        upstream: { reaches: true, path: "/api/ps", headers: { "x-device-name": "bob-workstation", "x-auth-request-groups": "analysts" } },
        appliesTo: BOTH,
    },
    {
        id: "upstream-headers-hidden",
        description: "an upstream answering with Server, X-Powered-By, Set-Cookie, its own X-Request-Id and CORS grants: the client sees none of them",
        profile: "default",
        send: { kind: "http", method: "POST", path: "/api/show", headers: { "Content-Type": "application/json" }, body: { model: LEAKY_HEADERS_MODEL } },
        status: [200],
        responseHeaders: {
            // nginx names itself (server_tokens off: no version); haproxy sends no Server at all.
            server: "~^(nginx)?$",
            "x-powered-by": null,
            "set-cookie": null,
            "x-request-id": "~^[0-9a-f-]{32,36}$",
            "access-control-allow-origin": null,
            "access-control-allow-credentials": null,
        },
        upstream: { reaches: true, path: "/api/show" },
        appliesTo: BOTH,
    },
    {
        id: "internal-location",
        description: "the gateway's internal error pages are not addressable",
        profile: "default",
        send: { kind: "http", method: "GET", path: "/_zto_error/502" },
        status: [403, 404],
        upstream: nothing,
        appliesTo: BOTH,
    },
];

/**
 * Ollama's 4xx bodies are Go decoder and lookup messages (they name models and echo the body's
 * structure): with no filter in between, the gateway keeps the status and answers its own JSON.
 */
const UPSTREAM_4XX: readonly (readonly [string, string, string, string | object, number, string])[] = [
    ["upstream-404-masked", "Ollama's 404 for a model it lacks", "/api/show", { model: "leaky-secret-name:1b" }, 404, "not_found"],
    ["upstream-404-masked-v1", "the same on an OpenAI-compatible route, whose 404 body Ollama shapes like the gateway's own", "/v1/chat/completions", { model: "leaky-secret-name:1b", messages: [{ role: "user", content: "hi" }] }, 404, "not_found"],
    ["upstream-400-masked", "Ollama's 400 for a body it cannot decode", "/api/chat", "[1,2", 400, "bad_request"],
];
const upstream4xxCases: AttackCase[] = UPSTREAM_4XX.map(([id, what, path, body, status, code]) => ({
    id,
    description: `${what}: its text is replaced by the gateway's JSON error, status kept`,
    profile: "default",
    send: { kind: "http", method: "POST", path, headers: { "Content-Type": "application/json" }, body },
    status: [status],
    errorCode: code,
    responseHeaders: { "content-type": "~^application/json" },
    upstream: { reaches: true, path },
    appliesTo: BOTH,
}));

/** The whole matrix. */
export const ATTACK_MATRIX: readonly AttackCase[] = [
    ...certCases,
    ...deniedRouteCases,
    ...pathTrickCases,
    ...methodCases,
    ...limitCases,
    ...smugglingCases,
    ...identityHeaderCases,
    ...corsCases,
    ...errorMaskingCases,
    ...upstream4xxCases,
    ...allowedEndpointCases,
];

/** Accepted statuses of a case for a gateway kind. */
export function expectedStatuses(c: AttackCase, kind: GatewayKind): readonly number[] {
    return c.statusByKind?.[kind] ?? c.status;
}
