/**
 * The JSON errors the gateway answers with, shared by every renderer so nginx and HAProxy give
 * clients the same status, code and message for the same refusal (and never internal detail).
 */

/** A gateway refusal: HTTP status, stable machine code, short message (never internal detail). */
export interface GatewayError {
    readonly status: number;
    readonly code: string;
    readonly message: string;
}

/** Refusals the gateway config itself issues. */
export const REFUSALS = {
    deviceNotEnrolled: { status: 403, code: "device_not_enrolled", message: "client certificate is not enrolled" },
    absoluteForm: { status: 400, code: "absolute_form_not_allowed", message: "request target must be a path" },
    unknownHost: { status: 421, code: "unknown_host", message: "unknown host" },
    originNotAllowed: { status: 403, code: "origin_not_allowed", message: "origin not allowed" },
    routeNotAllowed: { status: 403, code: "route_not_allowed", message: "route not allowed" },
    methodNotAllowed: { status: 405, code: "method_not_allowed", message: "method not allowed for this route" },
    unauthenticated: { status: 401, code: "unauthenticated", message: "sign-in required" },
    apiKeyInvalid: { status: 401, code: "api_key_invalid", message: "API key missing or not valid for this device" },
    bodyTooLarge: { status: 413, code: "request_too_large", message: "request body too large" },
    lengthRequired: { status: 411, code: "length_required", message: "length required" },
    rateLimited: { status: 429, code: "rate_limited", message: "too many requests" },
} as const satisfies Record<string, GatewayError>;

/** The error a gateway answers for an HTTP status it produces itself (or masks from upstream). */
export const ERRORS_BY_STATUS: Readonly<Record<number, GatewayError>> = Object.fromEntries(
    (
        [
            [400, "bad_request", "malformed request"],
            [401, "unauthenticated", "sign-in required"],
            [403, "forbidden", "access denied"],
            [404, "not_found", "no such route"],
            [405, "method_not_allowed", "method not allowed"],
            [407, "forbidden", "access denied"],
            [408, "request_timeout", "request not received in time"],
            [410, "not_found", "no such route"],
            [411, "length_required", "length required"],
            [413, "request_too_large", "request body too large"],
            [414, "uri_too_long", "request target too long"],
            [416, "range_not_satisfiable", "range not satisfiable"],
            [425, "too_early", "retry after the handshake"],
            [429, "rate_limited", "too many requests"],
            [500, "internal_error", "internal error"],
            [501, "not_implemented", "not implemented"],
            [502, "upstream_unavailable", "upstream unavailable"],
            [503, "service_unavailable", "service unavailable"],
            [504, "upstream_timeout", "upstream timed out"],
            [505, "http_version_not_supported", "HTTP version not supported"],
        ] as const
    ).map(([status, code, message]) => [status, { status, code, message }]),
);

/** Upstream statuses the gateway replaces with its own JSON error: their bodies may name hosts, paths or versions. */
export const MASKED_UPSTREAM_STATUSES = [413, 429, 500, 502, 503, 504] as const;

/**
 * With no filter in between, Ollama's own 4xx answers reach the gateway too: their bodies are Go
 * decoder messages about request bodies nobody validated. The gateway keeps the status and
 * answers its own JSON error. (The filter masks them itself, so its JSON refusals pass unchanged.)
 */
export const MASKED_OLLAMA_4XX_STATUSES = [400, 403, 404, 405, 408, 410, 411, 414, 416] as const;

/**
 * Statuses a gateway replaces in answers from this upstream. The filter's 429 passes: it is the
 * filter's own JSON (a token budget refusal, or Ollama's 429 already masked as upstream_busy) and
 * its Retry-After (when the budget frees) is what the client must wait, not the gateway's rate.
 */
export const maskedUpstreamStatuses = (via: "filter" | "ollama"): readonly number[] =>
    via === "ollama" ? [...MASKED_OLLAMA_4XX_STATUSES, ...MASKED_UPSTREAM_STATUSES] : MASKED_UPSTREAM_STATUSES.filter((s) => s !== 429);
