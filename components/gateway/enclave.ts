/**
 * nginx.conf for a GPU node's enclave proxy, rendered from a NodeSpec with the gateway renderer's
 * building blocks (same endpoint maps, mTLS server block, proxy headers and masked errors).
 *
 *   TLS 1.3 + client certificate verified against the CA, then pinned: only the certificate whose
 *   SHA-1 is the gateway's is admitted (a device certificate from the same CA is refused)
 *   endpoint allowlist on the RAW request target + method check, then proxy_pass to Ollama
 */
import { checkOf, deriveNodePolicy, type NodeCheck, type NodePolicy } from "./policy";
import type { NodeSpec } from "./node-spec";
import {
    NGINX_ERRORS,
    NginxRenderError,
    ROUTE_ERROR_STATUSES,
    address,
    endpointMaps,
    allowlistCheckLines,
    errorLocations,
    errorPage,
    forwardingLocation,
    httpCommon,
    indent,
    logTarget,
    mainContext,
    mapBlock,
    mutualTlsServer,
    nginxString,
    refuse,
    upstreamBlock,
} from "./nginx/syntax";

/** One check of the node policy as the enclave enforces it. */
function checkLines(check: NodeCheck): string[] {
    switch (check.id) {
        case "device":
            return [`if ($zto_gateway = "") { ${refuse(check.refusal)} }`];
        case "endpoint":
        case "method":
        case "size":
            return allowlistCheckLines(check);
    }
    const unrendered: never = check;
    throw new NginxRenderError(`check ${JSON.stringify(unrendered)} has no enclave rendering`);
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

/** The enclave's only location: the policy's checks, then Ollama with its 5xx and 429 masked. */
function forwardedToOllama(spec: NodeSpec, policy: NodePolicy): string[] {
    return forwardingLocation(policy, {
        checks: policy.checks.flatMap(checkLines),
        beforeProxy: [...ROUTE_ERROR_STATUSES.map(errorPage), "proxy_intercept_errors on;", "proxy_next_upstream off;"],
        upstream: "http://zto_ollama",
        hostHeader: nginxString(spec.ollamaHost, "ollamaHost"),
        afterProxy: [],
        connectTimeoutSeconds: 5,
        readTimeoutSeconds: spec.upstreamTimeoutSeconds,
        sendTimeoutSeconds: spec.upstreamTimeoutSeconds,
    });
}

/** Render the enclave's nginx.conf. Throws NginxRenderError naming the offending field. */
export function renderEnclaveConf(spec: NodeSpec): string {
    const policy = deriveNodePolicy(spec, NginxRenderError);
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
                `client_max_body_size ${checkOf(policy, "size").maxBodyKiB}k;`,
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
                        ...mutualTlsServer(spec.tls, policy.tls),
                        "",
                        ...NGINX_ERRORS.map((e) => errorPage(e.nginxStatus)),
                        "",
                        "location / {",
                        indent(forwardedToOllama(spec, policy), 1),
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
