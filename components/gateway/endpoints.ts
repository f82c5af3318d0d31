/**
 * The Ollama endpoint table (DESIGN.md §6): the single allowlist every renderer, the filter and
 * the tests use. Anything not listed here is denied at the gateway and never reaches Ollama.
 */

export type HttpMethod = "GET" | "HEAD" | "POST";
export type EndpointKind = "metadata" | "inference";
/** How the upstream answers: NDJSON streaming (native), SSE (OpenAI/Anthropic), or one JSON body. */
export type StreamFormat = "ndjson" | "sse" | "json";

export interface Endpoint {
    /** Stable id used in logs, rule names and tests. */
    readonly id: string;
    /** Exact path, or a prefix followed by one model name when `modelParam` is set. */
    readonly path: string;
    /** When true the path is `path` + a model name matching `MODEL_PATH_SEGMENT`. */
    readonly modelParam: boolean;
    readonly methods: readonly HttpMethod[];
    readonly kind: EndpointKind;
    readonly stream: StreamFormat;
}

/**
 * A model name as it may appear in a URL path: the same characters as MODEL_PATTERN in
 * config.ts, never `..`, `//`, `%` or a trailing slash. Kept as a regex source for renderers.
 */
export const MODEL_PATH_SEGMENT = "[A-Za-z0-9][A-Za-z0-9_-]*(\\.[A-Za-z0-9_-]+)*(:[A-Za-z0-9][A-Za-z0-9._-]{0,127})?";

export const ENDPOINTS: readonly Endpoint[] = [
    { id: "version", path: "/api/version", modelParam: false, methods: ["GET", "HEAD"], kind: "metadata", stream: "json" },
    { id: "tags", path: "/api/tags", modelParam: false, methods: ["GET", "HEAD"], kind: "metadata", stream: "json" },
    { id: "show", path: "/api/show", modelParam: false, methods: ["POST"], kind: "metadata", stream: "json" },
    { id: "ps", path: "/api/ps", modelParam: false, methods: ["GET"], kind: "metadata", stream: "json" },
    { id: "v1-models", path: "/v1/models", modelParam: false, methods: ["GET"], kind: "metadata", stream: "json" },
    { id: "v1-model", path: "/v1/models/", modelParam: true, methods: ["GET"], kind: "metadata", stream: "json" },
    { id: "generate", path: "/api/generate", modelParam: false, methods: ["POST"], kind: "inference", stream: "ndjson" },
    { id: "chat", path: "/api/chat", modelParam: false, methods: ["POST"], kind: "inference", stream: "ndjson" },
    { id: "embed", path: "/api/embed", modelParam: false, methods: ["POST"], kind: "inference", stream: "json" },
    { id: "embeddings", path: "/api/embeddings", modelParam: false, methods: ["POST"], kind: "inference", stream: "json" },
    { id: "v1-chat-completions", path: "/v1/chat/completions", modelParam: false, methods: ["POST"], kind: "inference", stream: "sse" },
    { id: "v1-completions", path: "/v1/completions", modelParam: false, methods: ["POST"], kind: "inference", stream: "sse" },
    { id: "v1-embeddings", path: "/v1/embeddings", modelParam: false, methods: ["POST"], kind: "inference", stream: "json" },
    { id: "v1-responses", path: "/v1/responses", modelParam: false, methods: ["POST"], kind: "inference", stream: "sse" },
    { id: "v1-messages", path: "/v1/messages", modelParam: false, methods: ["POST"], kind: "inference", stream: "sse" },
];

/**
 * Endpoints the prompt filter answers itself (never forwarded to Ollama): allowlisted at the
 * gateway only when the filter is on (components/gateway/spec.ts), as metadata.
 */
export const FILTER_ENDPOINTS: readonly Endpoint[] = [
    /** The caller's own token budget windows (filter/src/budget). */
    { id: "v1-budget", path: "/v1/budget", modelParam: false, methods: ["GET"], kind: "metadata", stream: "json" },
];

/**
 * Routes Ollama serves that must never be reachable (model management, cloud sign-in, blobs,
 * experimental aliases, image generation). Listed so tests and docs can name them; the gateway
 * denies them because they are absent from ENDPOINTS, not because of this list. Every route of
 * the pinned Ollama (test/fixtures/ollama-routes.json) is either in ENDPOINTS with the same
 * methods or here (test/unit/ollama-routes.test.ts).
 */
export const DENIED_ROUTES: readonly { readonly method: HttpMethod | "DELETE" | "PUT"; readonly path: string }[] = [
    { method: "POST", path: "/api/pull" },
    { method: "POST", path: "/api/push" },
    { method: "POST", path: "/api/create" },
    { method: "POST", path: "/api/copy" },
    { method: "DELETE", path: "/api/delete" },
    { method: "HEAD", path: "/api/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000" },
    { method: "POST", path: "/api/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000" },
    { method: "POST", path: "/api/me" },
    { method: "POST", path: "/api/signout" },
    { method: "GET", path: "/api/user/keys" },
    { method: "DELETE", path: "/api/user/keys/c3NoLWVkMjU1MTk" },
    { method: "GET", path: "/api/experimental/aliases" },
    { method: "POST", path: "/api/experimental/aliases" },
    { method: "DELETE", path: "/api/experimental/aliases" },
    { method: "POST", path: "/v1/images/generations" },
    { method: "POST", path: "/v1/images/edits" },
    { method: "HEAD", path: "/" },
    { method: "POST", path: "/api/experimental/web_search" },
    { method: "GET", path: "/api/status" },
    { method: "GET", path: "/" },
];

/** Anchored regex (source) for the exact raw request path of an endpoint; no query string. */
export function endpointPathRegex(e: Endpoint): string {
    const literal = e.path.replace(/[.*+?^${}()|[\]\\/]/g, (c) => (c === "/" ? "/" : "\\" + c));
    return e.modelParam ? `^${literal}${MODEL_PATH_SEGMENT}$` : `^${literal}$`;
}

/** Each endpoint's compiled path regex: the filter matches every request, and rebuilding them per request was a visible share of its CPU. */
const PATH_REGEXES = new WeakMap<Endpoint, RegExp>();

function pathRegex(e: Endpoint): RegExp {
    let r = PATH_REGEXES.get(e);
    if (!r) PATH_REGEXES.set(e, (r = new RegExp(endpointPathRegex(e))));
    return r;
}

/** The endpoint of `table` a (raw) path and method address, or undefined when the request is denied. */
export function matchEndpoint(method: string, rawPath: string, table: readonly Endpoint[] = ENDPOINTS): Endpoint | undefined {
    const e = table.find((x) => pathRegex(x).test(rawPath));
    return e && (e.methods as readonly string[]).includes(method) ? e : undefined;
}
