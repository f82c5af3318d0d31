/**
 * nginx.conf for a GPU node's enclave proxy, rendered from a NodeSpec with the gateway renderer's
 * building blocks (same endpoint maps, mTLS server block, proxy headers and masked errors).
 *
 *   TLS 1.3 + client certificate verified against the CA, then pinned: only the certificate whose
 *   SHA-1 is the gateway's is admitted (a device certificate from the same CA is refused)
 *   endpoint allowlist on the RAW request target + method check, then proxy_pass to Ollama
 */
import { ENDPOINTS } from "./endpoints";
import { REFUSALS } from "./errors";
import {
    NGINX_ERRORS,
    NginxRenderError,
    ROUTE_ERROR_STATUSES,
    address,
    endpointMaps,
    errorLocations,
    errorPage,
    httpCommon,
    indent,
    mainContext,
    logTarget,
    mapBlock,
    mutualTlsServer,
    nginxString,
    proxyCommon,
    refuse,
    upstreamBlock,
} from "./nginx";
import type { NodeSpec } from "./node-spec";

/** Refusal for a CA-signed certificate that is not the gateway's. */
const NOT_GATEWAY = { status: 403, code: "client_not_gateway", message: "only the gateway may connect" } as const;

function validate(spec: NodeSpec): void {
    if (!/^[0-9a-f]{40}$/.test(spec.gatewayFingerprintSha1)) throw new NginxRenderError(`node "${spec.name}": gatewayFingerprintSha1 must be 40 lowercase hex characters`);
    if (spec.endpoints !== ENDPOINTS && spec.endpoints.some((e) => !ENDPOINTS.includes(e))) throw new NginxRenderError(`node "${spec.name}": endpoints must come from the endpoint table`);
    for (const [k, v] of [["maxBodyKiB", spec.maxBodyKiB], ["upstreamTimeoutSeconds", spec.upstreamTimeoutSeconds]] as const) {
        if (!Number.isInteger(v) || v < 1) throw new NginxRenderError(`node "${spec.name}": ${k} must be a positive integer (got ${v})`);
    }
}

function logFormat(): string {
    const fields = [
        ["time", "$time_iso8601"],
        ["requestId", "$request_id"],
        ["gatewayRequestId", "$http_x_request_id"],
        ["remoteAddr", "$remote_addr"],
        ["client", "$zto_gateway"],
        ["method", "$request_method"],
        ["endpoint", "$zto_endpoint"],
        ["status", "$status"],
        ["requestTime", "$request_time"],
        ["upstreamStatus", "$upstream_status"],
    ];
    return `log_format zto_enclave escape=json '{${fields.map(([k, v]) => `"${k}":"${v}"`).join(",")}}';`;
}

/** Render the enclave's nginx.conf. Throws NginxRenderError naming the offending field. */
export function renderEnclaveConf(spec: NodeSpec): string {
    validate(spec);
    const run = spec.runtimeDir;
    return [
        `# Enclave proxy of GPU node ${JSON.stringify(spec.name)}, rendered by zero-trust-ollama. Do not edit.`,
        ...mainContext(spec.workerUser, run, spec.errorLog),
        "",
        "http {",
        indent(
            [
                ...httpCommon(run),
                "",
                logFormat(),
                logTarget(spec.accessLog, "accessLog", "zto_enclave"),
                "log_not_found off;",
                `client_max_body_size ${spec.maxBodyKiB}k;`,
                `client_body_buffer_size ${Math.min(spec.maxBodyKiB, 1024)}k;`,
                "client_header_buffer_size 1k;",
                "large_client_header_buffers 4 8k;",
                "client_header_timeout 10s;",
                "client_body_timeout 10s;",
                "keepalive_timeout 60s;",
                "keepalive_requests 10000;",
                "ignore_invalid_headers on;",
                "underscores_in_headers off;",
                "",
                'geo $zto_dollar { default "$"; }',
                ...endpointMaps(spec.endpoints),
                "",
                "# The only admitted client: the gateway's own certificate (pinned by SHA-1 of its DER).",
                ...mapBlock("$ssl_client_fingerprint", "$zto_gateway", [[spec.gatewayFingerprintSha1, '"gateway"']]),
                "",
                ...upstreamBlock("zto_ollama", spec.ollama, "ollama", 32),
                "",
                "server {",
                indent(
                    [
                        `listen ${address(spec.listen, "listen")} ssl;`,
                        ...mutualTlsServer({ minVersion: "1.3", ...spec.tls }),
                        "",
                        ...NGINX_ERRORS.map((e) => errorPage(e.nginxStatus)),
                        "",
                        "location / {",
                        indent(
                            [
                                `if ($zto_gateway = "") { ${refuse(NOT_GATEWAY)} }`,
                                `if ($zto_endpoint = "") { ${refuse(REFUSALS.routeNotAllowed)} }`,
                                `if ($zto_method_ok = "") { ${refuse(REFUSALS.methodNotAllowed)} }`,
                                ...ROUTE_ERROR_STATUSES.map(errorPage),
                                "proxy_intercept_errors on;",
                                "proxy_next_upstream off;",
                                "proxy_pass http://zto_ollama$request_uri;",
                                ...proxyCommon(nginxString(spec.ollamaHost, "ollamaHost")),
                                "proxy_buffering off;",
                                "proxy_cache off;",
                                "proxy_request_buffering on;",
                                "proxy_connect_timeout 5s;",
                                `proxy_read_timeout ${spec.upstreamTimeoutSeconds}s;`,
                                `proxy_send_timeout ${spec.upstreamTimeoutSeconds}s;`,
                            ],
                            1,
                        ),
                        "}",
                        "",
                        ...errorLocations(),
                    ],
                    1,
                ),
                "}",
            ],
            1,
        ),
        "}",
        "",
    ].join("\n");
}
