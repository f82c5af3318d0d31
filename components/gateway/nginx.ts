/**
 * nginx.conf for the gateway, rendered from a GatewaySpec (pure: same spec, same text).
 *
 * Runs unchanged on nginx 1.22 (Debian, used by the e2e tests) and the pinned official image:
 * only directives that exist in 1.22 and are not deprecated later. The request pipeline is:
 *
 *   TLS 1.3 + client cert verified against the CA (resumed only by a ticket of this generation)
 *   server rewrite:  enrolled device (fingerprint allowlist) -> origin-form only -> known Host
 *   location /:      Origin allowlist, CORS preflight, [auth_request to oauth2-proxy]
 *   route:           endpoint allowlist on the RAW request target, method check, rate and
 *                    connection limits, then proxy_pass of exactly the allowlisted path (in
 *                    location / itself, or with identity in @zto_route, entered after auth)
 *
 * Every decision is taken on the raw `$request_uri`, never on nginx's normalised `$uri`, so
 * percent-encoding, dot segments, double slashes, `;` parameters and case tricks simply fail
 * to match the allowlist. All response headers are added once at server level (nothing below
 * adds headers, so nginx's add_header inheritance never drops them), with empty-valued
 * variables for the conditional ones: nginx omits a header whose value is empty.
 *
 * Deliberate choices and known limits:
 * - HTTP/1.1 only (no `http2`): one request parser to reason about, and streaming works as is.
 * - Absolute-form targets are refused (400) and Host/SNI must be a certificate name (421).
 * - `Server: nginx` stays (server_tokens off drops the version; removing the header needs a
 *   third-party module); nginx's own HTML error pages are replaced by JSON everywhere except a
 *   malformed chunked body in the route, where upstream 4xx must pass through unmasked.
 * - nginx sends syslog over UDP only; with a tcp:// SIEM the container's stdout is shipped by the
 *   Docker syslog log driver instead.
 * - Session refresh passes oauth2-proxy's first Set-Cookie ($upstream_http_set_cookie); a
 *   session split over several cookies needs oauth2-proxy's session store (identity.sessionStore
 *   redis, the default), whose cookie is one small ticket.
 * - Refused requests (403/405/421) are answered before the rate limit, so they are not counted.
 */
import { ERRORS_BY_STATUS, maskedUpstreamStatuses, MASKED_UPSTREAM_STATUSES, REFUSALS, type GatewayError } from "./errors";
import { canonicalModel } from "../config";
import { NODE_TLS_NAME, type NodePool, type PoolNode } from "./node-spec";
import { FORWARDED_IDENTITY_HEADERS, type GatewaySpec, type Upstream } from "./spec";
import { endpointPathRegex, type Endpoint } from "./endpoints";
import { REAL_CLIENT_IP_HEADER } from "../identity/oauth2-proxy-settings";

/** oauth2-proxy paths a browser needs for sign-in; every other /oauth2/ path is refused. */
export const OAUTH2_PUBLIC_PATHS = ["/oauth2/start", "/oauth2/callback", "/oauth2/sign_in", "/oauth2/sign_out"] as const;

/** Client request headers passed upstream; everything else (cookies, tokens, identity claims) is dropped. */
export const FORWARDED_CLIENT_HEADERS = ["Content-Type", "Accept", "User-Agent"] as const;

/** Upstream response headers never shown to clients (the gateway owns these). */
const HIDDEN_UPSTREAM_HEADERS = [
    "X-Request-Id",
    "Set-Cookie",
    "X-Powered-By",
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Credentials",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
    "Access-Control-Max-Age",
];

/**
 * Upstream control headers nginx would otherwise obey: X-Accel-Redirect would let an upstream
 * redirect internally (e.g. into the auth location), X-Accel-Buffering could re-enable buffering.
 */
const IGNORED_UPSTREAM_HEADERS = ["X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate", "X-Accel-Buffering", "X-Accel-Charset", "Expires", "Cache-Control", "Set-Cookie", "Vary"];

/**
 * Every status nginx itself can produce, mapped to the JSON error clients see. nginx's own
 * 494-497 (header and certificate problems) go out as 400 with their own codes.
 */
export const NGINX_ERRORS: readonly (GatewayError & { readonly nginxStatus: number })[] = [
    ...[400, 403, 404, 405, 408, 410, 411, 413, 414, 416, 429].map((s) => ({ nginxStatus: s, ...ERRORS_BY_STATUS[s] })),
    { nginxStatus: 494, status: 400, code: "request_headers_too_large", message: "request headers too large" },
    { nginxStatus: 495, status: 400, code: "client_certificate_invalid", message: "client certificate rejected" },
    { nginxStatus: 496, status: 400, code: "client_certificate_required", message: "client certificate required" },
    { nginxStatus: 497, status: 400, code: "https_required", message: "plain HTTP sent to the HTTPS port" },
    ...[500, 501, 502, 503, 504, 505].map((s) => ({ nginxStatus: s, ...ERRORS_BY_STATUS[s] })),
];

/** Statuses re-mapped in the enclave's route (Ollama's 5xx and 429 are masked; chunked body 413). */
export const ROUTE_ERROR_STATUSES = MASKED_UPSTREAM_STATUSES;

/**
 * What the gateway route's own limits (limit_req, limit_conn) answer, turned into the gateway's
 * 429 by an error page. nginx intercepts every upstream status that has an error page, so the
 * limits answer a status no upstream sends; an upstream 429 the route does not mask (the
 * filter's own JSON with its Retry-After) then passes unchanged.
 */
export const ROUTE_LIMIT_STATUS = 599;

/** nginx's main context and events block, shared by the gateway and the enclave proxies. */
export function mainContext(workerUser: string | undefined, runtimeDir: string, errorLog: string): string[] {
    return [
        ...(workerUser ? [`user ${nginxString(workerUser, "workerUser")};`] : []),
        "worker_processes auto;",
        "worker_rlimit_nofile 8192;",
        "# The allowlist maps are regexes evaluated on every request.",
        "pcre_jit on;",
        `pid ${nginxPath(`${runtimeDir}/nginx.pid`, "runtimeDir")};`,
        errorLogTarget(errorLog),
        "",
        "events {",
        "    worker_connections 4096;",
        "}",
    ];
}

/** Thrown when a spec value cannot be written into nginx.conf safely. */
export class NginxRenderError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "NginxRenderError";
    }
}

/**
 * A double-quoted nginx string whose content is taken literally. nginx has no `$` escape in
 * strings that interpolate variables, so `$` is written as `${zto_dollar}` (a geo constant).
 */
export function nginxString(value: string, what: string): string {
    if (/[\u0000-\u001f\u007f]/.test(value)) throw new NginxRenderError(`${what}: control characters are not allowed (got ${JSON.stringify(value)})`);
    return `"${value.replace(/[\\"]/g, (c) => "\\" + c).replace(/\$/g, "${zto_dollar}")}"`;
}

/** A regex for nginx, double-quoted; the regex itself must not contain `"` or `{`-ambiguity. */
function nginxRegex(source: string, caseInsensitive = false): string {
    if (/["\u0000-\u001f]/.test(source)) throw new NginxRenderError(`regex ${source} cannot be quoted for nginx`);
    return `"~${caseInsensitive ? "*" : ""}${source.replace(/\\/g, "\\\\")}"`;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

export function address(u: Upstream, what: string): string {
    if (!/^[A-Za-z0-9._:-]+$/.test(u.host)) throw new NginxRenderError(`${what}: host ${JSON.stringify(u.host)} is not a plain host name or IP`);
    if (!Number.isInteger(u.port) || u.port < 1 || u.port > 65535) throw new NginxRenderError(`${what}: port ${u.port} is not a TCP port`);
    return u.host.includes(":") ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;
}

/** A filesystem path for nginx (quoted); these come from placements, never from users. */
export function nginxPath(p: string, what: string): string {
    if (!/^\/[A-Za-z0-9._\/-]*$/.test(p)) throw new NginxRenderError(`${what}: ${JSON.stringify(p)} must be an absolute path of [A-Za-z0-9._/-]`);
    return `"${p}"`;
}

/** `{"error":{...}}` as a single-quoted nginx string; codes/messages are fixed identifiers. */
function errorBody(e: GatewayError): string {
    return `'{"error":{"code":"${e.code}","message":"${e.message}","requestId":"$request_id"}}'`;
}

export const refuse = (e: GatewayError) => `return ${e.status} ${errorBody(e)};`;

export function logTarget(target: string, what: string, format: string): string {
    if (target === "stdout") return `access_log /dev/stdout ${format};`;
    if (target === "off") return "access_log off;";
    return `access_log ${nginxPath(target, what)} ${format};`;
}

export function errorLogTarget(target: string): string {
    return `error_log ${target === "stderr" ? "stderr" : nginxPath(target, "logging.errorLog")} warn;`;
}

/** nginx's $host keeps IPv6 literals bracketed. */
const hostForNginx = (h: string) => (h.includes(":") ? `[${h}]` : h);

function methodsOf(e: Endpoint): string {
    return e.methods.join(", ");
}

/** Seconds a client should wait after a 429 before one more request is admitted. */
export function retryAfterSeconds(ratePerMinute: number): number {
    return Math.max(1, Math.ceil(60 / ratePerMinute));
}

export function indent(lines: readonly string[], depth: number): string {
    const pad = "    ".repeat(depth);
    return lines
        .flatMap((l) => l.split("\n"))
        .map((l) => (l === "" ? "" : pad + l))
        .join("\n");
}

export function mapBlock(source: string, target: string, entries: readonly (readonly [string, string])[], defaultValue = '""'): string[] {
    return [`map ${source} ${target} {`, `    default ${defaultValue};`, ...entries.map(([k, v]) => `    ${k} ${v};`), "}"];
}

function validateSpec(spec: GatewaySpec): void {
    if (spec.kind !== "nginx") throw new NginxRenderError(`gateway.kind is "${spec.kind}"; renderNginxConf renders only the nginx gateway`);
    const seen = new Set<string>();
    for (const d of spec.devices) {
        if (!/^[0-9a-f]{40}$/.test(d.fingerprintSha1)) throw new NginxRenderError(`device "${d.name}": fingerprintSha1 must be 40 lowercase hex characters (SHA-1 of the certificate DER)`);
        if (seen.has(d.fingerprintSha1)) throw new NginxRenderError(`device "${d.name}": the same certificate is enrolled twice (fingerprint ${d.fingerprintSha1})`);
        seen.add(d.fingerprintSha1);
        for (const g of d.groups) if (g.includes(",")) throw new NginxRenderError(`device "${d.name}": group ${JSON.stringify(g)} contains a comma (groups are sent comma-separated)`);
        if (d.apiKeyDigest !== undefined && !/^[A-Za-z0-9_-]{22}$/.test(d.apiKeyDigest)) throw new NginxRenderError(`device "${d.name}": apiKeyDigest must be an MD5 digest in unpadded base64url (22 characters)`);
    }
    if (spec.identity.provider !== "none" && !spec.identity.oauth2Proxy) throw new NginxRenderError(`identity.provider is ${spec.identity.provider} but the spec has no oauth2-proxy address`);
    for (const o of spec.corsOrigins) {
        if (!/^https:\/\/[a-z0-9.-]+(:\d{1,5})?$/.test(o)) throw new NginxRenderError(`gateway.corsOrigins: ${JSON.stringify(o)} is not an exact https origin`);
    }
    for (const [name, value] of spec.securityHeaders) {
        if (!/^[A-Za-z0-9-]+$/.test(name)) throw new NginxRenderError(`security header name ${JSON.stringify(name)} is not a token`);
        nginxString(value, `security header ${name}`);
    }
    const l = spec.limits;
    for (const [k, v] of Object.entries(l)) if (!Number.isInteger(v) || v < 0) throw new NginxRenderError(`limits.${k} must be a non-negative integer (got ${v})`);
    for (const k of ["ratePerMinute", "authRatePerMinute", "connectionsPerClient", "maxBodyKiB", "clientTimeoutSeconds", "upstreamTimeoutSeconds", "reloadDrainSeconds"] as const) {
        if (l[k] < 1) throw new NginxRenderError(`limits.${k} must be at least 1 (got ${l[k]})`);
    }
}

/** JSON access log: who, what, outcome, timings. Never bodies, cookies, Authorization or tokens. */
function logFormat(): string[] {
    const fields: [string, string, boolean][] = [
        ["time", "$time_iso8601", true],
        ["requestId", "$request_id", true],
        ["remoteAddr", "$remote_addr", true],
        ["device", "$zto_device", true],
        ["user", "$zto_id_user", true],
        ["groups", "$zto_id_groups", true],
        ["method", "$request_method", true],
        ["path", "$zto_path", true],
        ["endpoint", "$zto_endpoint", true],
        ["status", "$status", false],
        ["bytesSent", "$bytes_sent", false],
        ["requestLength", "$request_length", false],
        ["requestTime", "$request_time", false],
        ["upstreamStatus", "$upstream_status", true],
        ["upstreamResponseTime", "$upstream_response_time", true],
        ["tlsProtocol", "$ssl_protocol", true],
    ];
    const json = fields.map(([k, v, quoted]) => `"${k}":${quoted ? `"${v}"` : v}`).join(",");
    return [`log_format zto_json escape=json '{${json}}';`];
}

function accessLogs(spec: GatewaySpec): string[] {
    const lines = [logTarget(spec.logging.accessLog, "logging.accessLog", "zto_json")];
    const s = spec.logging.syslog;
    if (s && s.protocol === "udp") {
        lines.push(`access_log syslog:server=${address({ host: s.host, port: s.port }, "logging.syslog")},facility=local7,tag=zto_gateway,severity=info zto_json;`);
    } else if (s) {
        // nginx writes syslog over UDP only. Over TCP the same JSON lines reach the SIEM from the
        // container's stdout through Docker's syslog log driver (see hardening.ts dockerLogging).
        lines.push(`# syslog tcp://${s.host}:${s.port}: nginx has no TCP syslog; stdout is shipped by the container log driver`);
    }
    return lines;
}

/**
 * The endpoint allowlist as maps on the RAW request target: `$zto_endpoint` (endpoint id or ""),
 * `$zto_method_ok` and `$zto_endpoint_methods`. Shared by the gateway and the node enclaves.
 */
export function endpointMaps(endpoints: readonly Endpoint[]): string[] {
    const endpointEntries = endpoints.map((e) => [nginxRegex(endpointPathRegex(e)), e.id] as const);
    const methodEntries = endpoints.flatMap((e) => e.methods.map((m) => [`"${e.id} ${m}"`, "1"] as const));
    const methodList = endpoints.map((e) => [e.id, `"${methodsOf(e)}"`] as const);
    return [
        "# Endpoint allowlist (DESIGN.md section 6) on the RAW request target: exact path, no query.",
        ...mapBlock("$request_uri", "$zto_endpoint", endpointEntries),
        ...mapBlock('"$zto_endpoint $request_method"', "$zto_method_ok", methodEntries),
        ...mapBlock("$zto_endpoint", "$zto_endpoint_methods", methodList),
    ];
}

/** Maps on the raw request: path, endpoint id, method check, Origin, Host, device. */
function maps(spec: GatewaySpec): string[] {
    const identity = spec.identity.provider !== "none";
    const devices = spec.devices.map((d) => [d.fingerprintSha1, nginxString(d.name, `device ${d.name}`)] as const);
    const hosts = spec.acceptedHosts.map((h) => [nginxString(hostForNginx(h.toLowerCase()), "acceptedHosts"), "1"] as const);
    const sni = spec.acceptedHosts.filter((h) => !h.includes(":") && !/^\d+\.\d+\.\d+\.\d+$/.test(h)).map((h) => [nginxString(h.toLowerCase(), "acceptedHosts"), "1"] as const);
    const origins = spec.corsOrigins.map((o) => [nginxRegex(`^${escapeRegex(o)}$`), nginxString(o, "corsOrigins")] as const);
    const out: string[] = [
        "# `$` inside literal strings (nginx has no escape for it).",
        'geo $zto_dollar { default "$"; }',
        "",
        "# The raw path without the query string, for logs and the sign-in redirect.",
        ...mapBlock("$request_uri", "$zto_path", [[nginxRegex("^(?<zto_raw_path>[^?]*)"), "$zto_raw_path"]]),
        "",
        ...endpointMaps(spec.endpoints),
        "",
        "# Device allowlist: SHA-1 of the client certificate DER. A CA-signed certificate that is",
        "# not listed here (a device removed from config) is refused.",
        ...mapBlock("$ssl_client_fingerprint", "$zto_device", devices),
        "",
        "# Host (and SNI when sent) must be one of the server certificate's names.",
        ...mapBlock("$host", "$zto_host_ok", hosts),
        ...mapBlock("$ssl_server_name", "$zto_sni_ok", [['""', "1"], ...sni]),
        ...mapBlock('"$zto_host_ok$zto_sni_ok"', "$zto_name_ok", [['"11"', "1"]]),
        "# HTTP/0.9 answers carry no headers at all (no HSTS, CSP or JSON error): closed unanswered.",
        "# ($server_protocol is empty for them: an HTTP/0.9 request line has no version.)",
        ...mapBlock("$server_protocol", "$zto_http09", [['""', "1"]]),
        "# HTTP/1.0 may omit Host (nginx would then use its server name): refused like a wrong Host.",
        ...mapBlock('"$server_protocol:$http_host"', "$zto_host_missing", [['"HTTP/1.0:"', "1"]]),
        "",
        "# Absolute-form request targets (`GET https://host/path`) are for proxies, never for us.",
        ...mapBlock("$request", "$zto_absolute_form", [[nginxRegex("^[A-Za-z]+ +[A-Za-z][A-Za-z0-9+.-]*://"), "1"]]),
        "",
        "# CORS: exact, case-sensitive origin matches; any other Origin is refused.",
        ...mapBlock("$http_origin", "$zto_cors_origin", origins),
        ...mapBlock("$http_origin", "$zto_origin_refused", [['""', '""'], ...origins.map(([k]) => [k, '""'] as const)], "1"),
        ...mapBlock('"$request_method:$http_origin:$zto_endpoint"', "$zto_preflight", [[nginxRegex("^OPTIONS:.+:.+$"), "1"]]),
        ...mapBlock("$zto_cors_origin", "$zto_cors_credentials", [['""', '""']], '"true"'),
        ...mapBlock("$zto_cors_origin", "$zto_cors_expose", [['""', '""']], '"X-Request-Id, Retry-After"'),
        ...mapBlock("$zto_preflight", "$zto_preflight_methods", [["1", "$zto_endpoint_methods"]]),
        ...mapBlock("$zto_preflight", "$zto_preflight_headers", [["1", '"Authorization, Content-Type, Accept"']]),
        ...mapBlock("$zto_preflight", "$zto_preflight_max_age", [["1", '"600"']]),
        "",
        "# Headers that belong to one status only.",
        ...mapBlock("$status", "$zto_allow_header", [["405", "$zto_endpoint_methods"]]),
        "# The gateway's rate-limit Retry-After on its own 429s (no upstream answered; with no filter, Ollama's masked 429",
        "# too). A 429 from the filter keeps the filter's Retry-After, or none when the request can never fit.",
        ...mapBlock('"$status:$upstream_status"', "$zto_retry_after", [[spec.upstream.via === "ollama" ? nginxRegex("^429:") : '"429:"', `"${retryAfterSeconds(spec.limits.ratePerMinute)}"`]]),
    ];
    if (identity) {
        out.push(
            "",
            "# API clients get 401 JSON; anything else is a browser and is sent to sign-in.",
            ...mapBlock("$request_uri", "$zto_is_api", [[nginxRegex("^/(api|v1)(/|\\?|$)"), "1"]]),
            ...mapBlock("$zto_path", "$zto_signin_rd", [[nginxRegex("^(/[A-Za-z0-9_.~-]+)+/?$"), "$zto_path"]], '"/"'),
            ...mapBlock("$request_uri", "$zto_oauth2_allowed", [[nginxRegex(`^(${OAUTH2_PUBLIC_PATHS.map(escapeRegex).join("|")})(\\?[^#]*)?$`), "1"]]),
            "",
            "# Rate-limit key: the signed-in user, else the device.",
            ...mapBlock("$zto_id_user", "$zto_rate_key", [['""', '"device:$ssl_client_fingerprint"']], '"user:$zto_id_user"'),
        );
    } else {
        const owners = spec.devices.map((d) => [d.fingerprintSha1, nginxString(d.owner, `device ${d.name} owner`)] as const);
        const groups = spec.devices.map((d) => [d.fingerprintSha1, nginxString(d.groups.join(","), `device ${d.name} groups`)] as const);
        out.push(
            "",
            "# identity.provider none: the enrolled device is the identity (its owner and groups).",
            ...mapBlock("$ssl_client_fingerprint", "$zto_id_user", owners),
            ...mapBlock("$ssl_client_fingerprint", "$zto_id_groups", groups),
            ...mapBlock("$ssl_client_fingerprint", "$zto_rate_key", spec.devices.map((d) => [d.fingerprintSha1, `"device:${d.fingerprintSha1}"`] as const)),
        );
    }
    out.push(...apiKeyMaps(spec));
    return out;
}

export function upstreamBlock(name: string, u: Upstream, what: string, keepalive: number): string[] {
    // keepalive_timeout stays below the Node/Go servers' idle timeouts, so nginx never reuses a
    // connection the upstream is closing (that race surfaces as a 502).
    return [`upstream ${name} {`, `    server ${address(u, what)} max_fails=0;`, `    keepalive ${keepalive};`, "    keepalive_timeout 4s;", "}"];
}

/**
 * Directives shared by every location that proxies (upstream connection, headers in and out).
 * Only oauth2-proxy's sign-in locations may set cookies on the client.
 */
export function proxyCommon(hostHeader: string, opts: { passSetCookie: boolean } = { passSetCookie: false }): string[] {
    const hidden = HIDDEN_UPSTREAM_HEADERS.filter((h) => !(opts.passSetCookie && h === "Set-Cookie"));
    const ignored = IGNORED_UPSTREAM_HEADERS.filter((h) => !(opts.passSetCookie && h === "Set-Cookie"));
    return [
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        `proxy_set_header Host ${hostHeader};`,
        "proxy_pass_request_headers off;",
        ...FORWARDED_CLIENT_HEADERS.map((h) => `proxy_set_header ${h} $http_${h.toLowerCase().replace(/-/g, "_")};`),
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto https;",
        `proxy_set_header ${FORWARDED_IDENTITY_HEADERS.requestId} $request_id;`,
        ...hidden.map((h) => `proxy_hide_header ${h};`),
        `proxy_ignore_headers ${ignored.join(" ")};`,
        "proxy_redirect off;",
    ];
}

/**
 * Allowlist, method check, limits and the proxy to the upstream: the body of location / with
 * identity none, of @zto_route (entered after auth_request) with an identity provider.
 */
function routeDirectives(spec: GatewaySpec): string[] {
    const l = spec.limits;
    const h = FORWARDED_IDENTITY_HEADERS;
    const identity = spec.identity.provider !== "none";
    return [
        `if ($zto_endpoint = "") { ${refuse(REFUSALS.routeNotAllowed)} }`,
        `if ($zto_method_ok = "") { ${refuse(REFUSALS.methodNotAllowed)} }`,
        "",
        `limit_req zone=zto_requests burst=${l.burst} nodelay;`,
        `limit_conn zto_connections ${l.connectionsPerClient};`,
        `limit_req_status ${ROUTE_LIMIT_STATUS};`,
        `limit_conn_status ${ROUTE_LIMIT_STATUS};`,
        `error_page ${ROUTE_LIMIT_STATUS} =429 ${errorUri(429)};`,
        "",
        ...maskedUpstreamStatuses(spec.upstream.via).map(errorPage),
        "# Upstream error bodies may name hosts, paths or versions (and Ollama's 4xx echo its Go decoder): replace them.",
        "# The filter's 429 is its own JSON and passes (components/gateway/errors.ts maskedUpstreamStatuses).",
        "proxy_intercept_errors on;",
        "proxy_next_upstream off;",
        "",
        "# Exactly the allowlisted path (the whole raw target matched the allowlist).",
        "proxy_pass http://zto_upstream$request_uri;",
        ...proxyCommon(nginxString(spec.upstreamHost, "upstreamHost")),
        "# Identity headers are set here only: client-sent ones never pass (request headers off).",
        `proxy_set_header ${h.user} $zto_id_user;`,
        `proxy_set_header ${h.email} ${identity ? "$zto_id_email" : "$zto_id_user"};`,
        `proxy_set_header ${h.groups} $zto_id_groups;`,
        `proxy_set_header ${h.device} $zto_device;`,
        "",
        "# Streaming: NDJSON and SSE tokens go out as they arrive. Request bodies are read",
        "# completely first, so an oversized chunked body is refused before upstream sees it.",
        "proxy_buffering off;",
        "proxy_cache off;",
        "proxy_request_buffering on;",
        `proxy_connect_timeout 5s;`,
        `proxy_read_timeout ${l.upstreamTimeoutSeconds}s;`,
        `proxy_send_timeout ${l.upstreamTimeoutSeconds}s;`,
    ];
}

/** With an identity provider: the route runs after auth_request, in its own named location. */
function routeLocation(spec: GatewaySpec): string[] {
    if (spec.identity.provider === "none") return [];
    return ["location @zto_route {", indent(routeDirectives(spec), 1), "}"];
}

/** Room for oauth2-proxy's answer headers; nginx answers 502 when they exceed proxy_buffer_size. */
export const OAUTH2_PROXY_BUFFER_KIB = 32;

/**
 * Shared by both oauth2-proxy locations. The answer headers are large: a callback that sets a
 * cookie-held session sends several 4 KB Set-Cookie headers, and an auth answer carries
 * X-Auth-Request-Groups (Entra sends up to 200 group ids, about 7.5 KB) past nginx's default 4 KB
 * buffer. X-Real-IP is the header oauth2-proxy reads the client address from (its sign-in audit lines).
 */
function oauth2ProxyAnswerDirectives(): string[] {
    return [
        `proxy_set_header ${REAL_CLIENT_IP_HEADER} $remote_addr;`,
        `proxy_buffer_size ${OAUTH2_PROXY_BUFFER_KIB}k;`,
        `proxy_buffers 4 ${OAUTH2_PROXY_BUFFER_KIB}k;`,
        `proxy_busy_buffers_size ${OAUTH2_PROXY_BUFFER_KIB * 2}k;`,
    ];
}

function identityLocations(spec: GatewaySpec): string[] {
    if (spec.identity.provider === "none") return [];
    return [
        "# auth_request target: forwards only the session cookie and bearer token.",
        "location = /_zto_oauth2_auth {",
        indent(
            [
                "internal;",
                ...apiKeyAuthShortcut(spec),
                "proxy_pass http://zto_oauth2/oauth2/auth;",
                ...proxyCommon("$host"),
                "proxy_pass_request_body off;",
                'proxy_set_header Content-Length "";',
                "proxy_set_header Cookie $http_cookie;",
                "proxy_set_header Authorization $http_authorization;",
                "proxy_set_header X-Forwarded-Host $host;",
                "proxy_set_header X-Forwarded-Uri $request_uri;",
                ...oauth2ProxyAnswerDirectives(),
                "proxy_connect_timeout 5s;",
                "proxy_read_timeout 10s;",
            ],
            1,
        ),
        "}",
        "",
        "# Sign-in flow (browser): a fixed set of oauth2-proxy paths, tighter rate per address.",
        "location ^~ /oauth2/ {",
        indent(
            [
                ...requestChecks(),
                `if ($zto_oauth2_allowed = "") { ${refuse(REFUSALS.routeNotAllowed)} }`,
                `limit_req zone=zto_signin burst=${Math.max(2, Math.ceil(spec.limits.authRatePerMinute / 2))} nodelay;`,
                "proxy_pass http://zto_oauth2$request_uri;",
                ...proxyCommon("$host", { passSetCookie: true }),
                "proxy_set_header Cookie $http_cookie;",
                "proxy_set_header X-Forwarded-Host $host;",
                ...oauth2ProxyAnswerDirectives(),
                "proxy_connect_timeout 5s;",
                "proxy_read_timeout 30s;",
            ],
            1,
        ),
        "}",
        "",
        "location @zto_unauthenticated {",
        indent([`if ($zto_is_api) { ${refuse(REFUSALS.unauthenticated)} }`, "return 302 /oauth2/start?rd=$zto_signin_rd;"], 1),
        "}",
        "",
    ];
}

/**
 * First checks of every client-facing location: enrolled device, origin-form target, our own
 * name. They live in locations, not at server level, because the error pages are reached by
 * internal redirect, which would run server-level checks again and replace the real error.
 */
function requestChecks(): string[] {
    return [
        // HTTP/0.9 first: any answer to it, even a refusal, would go out without headers.
        "if ($zto_http09) { return 444; }",
        `if ($zto_device = "") { ${refuse(REFUSALS.deviceNotEnrolled)} }`,
        `if ($zto_host_missing) { ${refuse(REFUSALS.unknownHost)} }`,
        `if ($zto_absolute_form) { ${refuse(REFUSALS.absoluteForm)} }`,
        `if ($zto_name_ok = "") { ${refuse(REFUSALS.unknownHost)} }`,
    ];
}

/** Error pages are internal URIs: a named location cannot serve requests whose URI did not parse. */
const errorUri = (nginxStatus: number) => `/_zto_error/${nginxStatus}`;
export const errorPage = (nginxStatus: number) => `error_page ${nginxStatus} ${errorUri(nginxStatus)};`;

export function errorLocations(): string[] {
    return NGINX_ERRORS.map((e) => `location = ${errorUri(e.nginxStatus)} { internal; ${refuse(e)} }`);
}

// ---------------------------------------------------------------------------------------------
// Static per-device API keys (devices[].apiKey). Everything below renders nothing unless some
// device has a key, so specs without keys produce exactly the config above.
//
// nginx holds only each key's MD5 digest (unpadded base64url) and lets the built-in secure_link
// module hash the presented bearer token and compare: no plaintext key in nginx.conf, in the
// container upload or in any log. The digest is looked up by the client certificate's
// fingerprint, so a key only counts together with the certificate of the device it belongs to.
//
//   identity none:       a device with a key must send it on every request (401 otherwise).
//   identity entra/oidc: a device's own key stands in for a user session (identity = the device
//                        owner); without a key-shaped token the device signs in as usual.
//   both:                a key-shaped token that is not the presenting device's key is refused at
//                        the gateway (it never travels on to oauth2-proxy or upstream).
// ---------------------------------------------------------------------------------------------

const hasApiKeys = (spec: GatewaySpec) => spec.devices.some((d) => d.apiKeyDigest !== undefined);

function apiKeyMaps(spec: GatewaySpec): string[] {
    if (!hasApiKeys(spec)) return [];
    const keyed = spec.devices.filter((d) => d.apiKeyDigest !== undefined);
    const identity = spec.identity.provider !== "none";
    return [
        "",
        "# Static API keys: per-device digest, the presented token, and the verdict.",
        ...mapBlock("$ssl_client_fingerprint", "$zto_api_key_digest", keyed.map((d) => [d.fingerprintSha1, `"${d.apiKeyDigest}"`] as const)),
        ...mapBlock("$http_authorization", "$zto_api_key_sent", [[nginxRegex("^Bearer +(?<zto_api_key_token>[A-Za-z0-9]{48})$", true), "$zto_api_key_token"]]),
        ...mapBlock('"$zto_api_key_digest:$zto_api_key_sent:$secure_link"', "$zto_api_key", [
            [nginxRegex("^.+:.+:1$"), "ok"],
            // A key-shaped token that is not this device's key (or from a device without one).
            [nginxRegex("^.*:.+:$"), "bad"],
            // A keyed device without a key: refused when the key is its only credential.
            [nginxRegex("^.+::$"), identity ? '""' : "bad"],
        ]),
        ...(identity
            ? [
                  ...mapBlock("$zto_api_key", "$zto_api_key_user", [["ok", "$zto_api_key_owner"]]),
                  ...mapBlock("$ssl_client_fingerprint", "$zto_api_key_owner", keyed.map((d) => [d.fingerprintSha1, nginxString(d.owner, `device ${d.name} owner`)] as const)),
                  ...mapBlock("$zto_api_key", "$zto_api_key_groups", [["ok", "$zto_api_key_owner_groups"]]),
                  ...mapBlock("$ssl_client_fingerprint", "$zto_api_key_owner_groups", keyed.map((d) => [d.fingerprintSha1, nginxString(d.groups.join(","), `device ${d.name} groups`)] as const)),
              ]
            : []),
    ];
}

/** secure_link: $secure_link is "1" when MD5(presented token) equals this device's digest. */
function apiKeyServerDirectives(spec: GatewaySpec): string[] {
    if (!hasApiKeys(spec)) return [];
    return ["", "# Static API keys: compare MD5(bearer token) with the device's digest.", "secure_link $zto_api_key_digest;", "secure_link_md5 $zto_api_key_sent;"];
}

function apiKeyCheck(spec: GatewaySpec): string[] {
    return hasApiKeys(spec) ? [`if ($zto_api_key = "bad") { ${refuse(REFUSALS.apiKeyInvalid)} }`] : [];
}

/** The device's own valid key authenticates without asking oauth2-proxy (nothing is forwarded). */
function apiKeyAuthShortcut(spec: GatewaySpec): string[] {
    return hasApiKeys(spec) ? ['if ($zto_api_key = "ok") { return 204; }'] : [];
}

/**
 * Appended to the auth_request_set values: empty unless the device's key authenticated, in which
 * case there was no oauth2-proxy answer and the device owner is the identity.
 */
function apiKeyIdentity(spec: GatewaySpec, what: "user" | "groups"): string {
    if (!hasApiKeys(spec)) return "";
    return what === "user" ? "$zto_api_key_user" : "$zto_api_key_groups";
}

/** http-level basics every rendered nginx shares: no version, no compression, private temp paths. */
export function httpCommon(run: string): string[] {
    return [
        "server_tokens off;",
        "default_type application/json;",
        "charset off;",
        "gzip off;",
        "sendfile off;",
        "tcp_nodelay on;",
        `client_body_temp_path ${nginxPath(`${run}/client_body`, "runtimeDir")};`,
        `proxy_temp_path ${nginxPath(`${run}/proxy`, "runtimeDir")};`,
        `fastcgi_temp_path ${nginxPath(`${run}/fastcgi`, "runtimeDir")};`,
        `uwsgi_temp_path ${nginxPath(`${run}/uwsgi`, "runtimeDir")};`,
        `scgi_temp_path ${nginxPath(`${run}/scgi`, "runtimeDir")};`,
    ];
}

/** Server TLS with a required client certificate issued directly by the CA; resumption only with tickets. */
export function mutualTlsServer(tls: GatewaySpec["tls"]): string[] {
    return [
        `ssl_certificate ${nginxPath(tls.cert, "tls.cert")};`,
        `ssl_certificate_key ${nginxPath(tls.key, "tls.key")};`,
        `ssl_protocols ${tls.minVersion === "1.2" ? "TLSv1.2 TLSv1.3" : "TLSv1.3"};`,
        ...(tls.minVersion === "1.2"
            ? ["ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;"]
            : []),
        "ssl_prefer_server_ciphers off;",
        "# Mutual TLS: every connection presents a device certificate issued directly by the CA.",
        `ssl_client_certificate ${nginxPath(tls.ca, "tls.ca")};`,
        "ssl_verify_client on;",
        "ssl_verify_depth 1;",
        "ssl_session_cache off;",
        ...sessionResumption(tls.sessionTickets),
        "ssl_buffer_size 4k;",
    ];
}

/**
 * Resumption by ticket only (no server-side cache). A resumed session keeps the certificate it
 * was verified with, so $ssl_client_fingerprint, and with it the allowlist, is the same on every
 * request. The key file is this generation's own: a reload ends every earlier ticket.
 */
function sessionResumption(tickets: GatewaySpec["tls"]["sessionTickets"]): string[] {
    if (!tickets) return ["# No resumption: every connection is a full handshake with certificate verification.", "ssl_session_tickets off;"];
    return [
        "# Tickets sealed with this generation's keys (new at every reload) expire after gateway.tlsTicketLifetimeSeconds.",
        "ssl_session_tickets on;",
        `ssl_session_ticket_key ${nginxPath(tickets.keyFile, "tls.sessionTickets.keyFile")};`,
        `ssl_session_timeout ${positiveSeconds(tickets.lifetimeSeconds, "tls.sessionTickets.lifetimeSeconds")}s;`,
    ];
}

function positiveSeconds(value: number, what: string): number {
    if (!Number.isInteger(value) || value < 1) throw new NginxRenderError(`${what} must be a positive whole number of seconds (got ${value})`);
    return value;
}

/**
 * What an enrol or revoke (a reload, SIGHUP) does to connections opened before it. The master
 * starts workers on the new config; the old workers stop accepting, close their idle keep-alive
 * connections at once (a revoked device's next request then arrives on a new connection and meets
 * the new allowlist) and finish the requests they are serving. worker_shutdown_timeout bounds that
 * tail: after it the old workers close what is left. An old worker cannot tell a revoked device's
 * stream from anyone else's, so the one value is both how long a revoked device's in-flight
 * generation may continue and the longest anyone's generation survives a reload
 * (gateway.reloadDrainSeconds, default 120 s: a long answer finishes, a stolen device gets minutes,
 * not upstreamTimeoutSeconds per read).
 */
function reloadDrain(seconds: number): string[] {
    return ["# After a reload, old workers finish in-flight requests for at most this long (gateway.reloadDrainSeconds).", `worker_shutdown_timeout ${seconds}s;`];
}

/** Render nginx.conf for the spec. Throws NginxRenderError naming the offending spec field. */
export function renderNginxConf(spec: GatewaySpec): string {
    validateSpec(spec);
    const l = spec.limits;
    const identity = spec.identity.provider !== "none";
    const run = spec.runtimeDir;
    const tls = spec.tls;
    const headerBufferKiB = identity ? 16 : 8; // oauth2-proxy session cookies can reach ~12 KiB
    const serverHeaders: string[] = [
        ...spec.securityHeaders.map(([name, value]) => `add_header ${name} ${nginxString(value, `security header ${name}`)} always;`),
        `add_header ${FORWARDED_IDENTITY_HEADERS.requestId} $request_id always;`,
        "add_header Allow $zto_allow_header always;",
        "add_header Retry-After $zto_retry_after always;",
        ...(spec.corsOrigins.length
            ? [
                  "add_header Access-Control-Allow-Origin $zto_cors_origin always;",
                  "add_header Access-Control-Allow-Credentials $zto_cors_credentials always;",
                  "add_header Access-Control-Expose-Headers $zto_cors_expose always;",
                  "add_header Access-Control-Allow-Methods $zto_preflight_methods always;",
                  "add_header Access-Control-Allow-Headers $zto_preflight_headers always;",
                  "add_header Access-Control-Max-Age $zto_preflight_max_age always;",
                  "add_header Vary Origin always;",
              ]
            : []),
        ...(identity ? ["# Session refresh from the auth subrequest (nginx 1.22 passes the first Set-Cookie).", "add_header Set-Cookie $zto_auth_cookie always;"] : []),
    ];

    const mainLocation: string[] = [
        "location / {",
        indent(
            [
                ...requestChecks(),
                ...apiKeyCheck(spec),
                `if ($zto_origin_refused) { ${refuse(REFUSALS.originNotAllowed)} }`,
                "# CORS preflight for an allowlisted route from an allowed origin, answered here.",
                "if ($zto_preflight) { return 204; }",
                ...(identity
                    ? [
                          "auth_request /_zto_oauth2_auth;",
                          `auth_request_set $zto_id_user $upstream_http_${FORWARDED_IDENTITY_HEADERS.user.toLowerCase().replace(/-/g, "_")}${apiKeyIdentity(spec, "user")};`,
                          `auth_request_set $zto_id_email $upstream_http_${FORWARDED_IDENTITY_HEADERS.email.toLowerCase().replace(/-/g, "_")}${apiKeyIdentity(spec, "user")};`,
                          `auth_request_set $zto_id_groups $upstream_http_${FORWARDED_IDENTITY_HEADERS.groups.toLowerCase().replace(/-/g, "_")}${apiKeyIdentity(spec, "groups")};`,
                          "auth_request_set $zto_auth_cookie $upstream_http_set_cookie;",
                      ]
                    : []),
                ...(identity
                    ? ["# try_files runs after the access phase: limits in @zto_route see the signed-in user.", "try_files /.zto-no-static-files @zto_route;"]
                    : ["", ...routeDirectives(spec)]),
            ],
            1,
        ),
        "}",
    ];

    const conf = [
        "# Rendered by zero-trust-ollama from the stack config. Do not edit: edit the stack and redeploy.",
        ...mainContext(spec.workerUser, run, spec.logging.errorLog),
        ...reloadDrain(l.reloadDrainSeconds),
        "",
        "http {",
        indent(
            [
                ...httpCommon(run),
                "",
                ...logFormat(),
                ...accessLogs(spec),
                "log_not_found off;",
                "",
                "# Request size and slow-client limits (slowloris).",
                `client_max_body_size ${l.maxBodyKiB}k;`,
                `client_body_buffer_size ${Math.min(l.maxBodyKiB, 1024)}k;`,
                "client_header_buffer_size 1k;",
                `large_client_header_buffers 4 ${headerBufferKiB}k;`,
                `client_header_timeout ${l.clientTimeoutSeconds}s;`,
                `client_body_timeout ${l.clientTimeoutSeconds}s;`,
                `send_timeout ${l.clientTimeoutSeconds}s;`,
                "keepalive_timeout 60s;",
                "keepalive_requests 1000;",
                "reset_timedout_connection on;",
                "ignore_invalid_headers on;",
                "underscores_in_headers off;",
                "",
                "# Rate and connection limits per user (signed in) or device.",
                `limit_req_zone $zto_rate_key zone=zto_requests:10m rate=${l.ratePerMinute}r/m;`,
                `limit_req_zone $binary_remote_addr zone=zto_signin:1m rate=${l.authRatePerMinute}r/m;`,
                "limit_conn_zone $zto_rate_key zone=zto_connections:10m;",
                "limit_req_status 429;",
                "limit_conn_status 429;",
                "limit_req_log_level warn;",
                "limit_conn_log_level warn;",
                "",
                ...maps(spec),
                "",
                ...upstreamBlock("zto_upstream", spec.upstream, "upstream", 32),
                ...nodePoolHttp(spec),
                ...(identity ? upstreamBlock("zto_oauth2", spec.identity.oauth2Proxy!, "identity.oauth2Proxy", 8) : []),
                "",
                "server {",
                indent(
                    [
                        `listen ${address(spec.listen, "listen")} ssl default_server;`,
                        `server_name ${nginxString(spec.serverName, "serverName")};`,
                        `root ${nginxPath(`${run}/no-static-files`, "runtimeDir")};`,
                        "",
                        ...mutualTlsServer(tls),
                        "",
                        ...serverHeaders,
                        ...apiKeyServerDirectives(spec),
                        "",
                        ...NGINX_ERRORS.map((e) => errorPage(e.nginxStatus)),
                        ...(identity ? ["error_page 401 @zto_unauthenticated;"] : []),
                        "# Relative redirects: never reveal the container's own port.",
                        "absolute_redirect off;",
                        "",
                        ...mainLocation,
                        "",
                        ...routeLocation(spec),
                        "",
                        ...identityLocations(spec),
                        ...errorLocations(),
                    ],
                    1,
                ),
                "}",
                ...nodePoolRouter(spec),
            ],
            1,
        ),
        "}",
        "",
    ];
    return conf.join("\n");
}

// ---------------------------------------------------------------------------------------------
// GPU node pool (ollama.nodes). Renders nothing without spec.nodePool, so single-node specs
// produce exactly the config above.
//
// Requests reach a second, internal server (the router) from @zto_route (no filter) or from the
// filter, which names the request's model in X-Zto-Model. The router picks a pool: the nodes that
// serve that model, else (no model named) every node for metadata and the default model's nodes
// for inference; least_conn inside the pool. It connects to the node's enclave over mTLS with the
// gateway's own client certificate and verifies the enclave's certificate against the CA.
//
//   passive health: max_fails=1 fail_timeout=<nodeFailTimeoutSeconds> per node
//   metadata (idempotent): retried on another node after a connect error, timeout or 502/503/504
//   inference: retried on another node only when no answer began: the node was unreachable or
//              answered 502/503; never after a timeout, never once the response started streaming
// ---------------------------------------------------------------------------------------------

/** Header the filter sets to the request's model; the router's only routing input besides the path. */
export const MODEL_ROUTING_HEADER = "X-Zto-Model";

/** The node sets the router uses: one upstream per distinct set, named by first use. */
export function nodePools(pool: NodePool): { all: string; fallback: string; byModel: Map<string, string>; members: Map<string, readonly PoolNode[]> } {
    const members = new Map<string, readonly PoolNode[]>();
    const nameOf = (nodes: readonly PoolNode[]) => {
        const key = nodes.map((n) => n.name).join(",");
        for (const [name, m] of members) if (m.map((n) => n.name).join(",") === key) return name;
        const name = `zto_pool_${members.size}`;
        members.set(name, nodes);
        return name;
    };
    const all = nameOf(pool.nodes);
    // Keyed by canonical name: the filter names models that way (llama3.2 = llama3.2:latest).
    const models = [...new Set(pool.nodes.flatMap((n) => n.models.map(canonicalModel)))];
    const byModel = new Map(models.map((m) => [m, nameOf(pool.nodes.filter((n) => n.models.map(canonicalModel).includes(m)))]));
    const fallback = byModel.get(canonicalModel(pool.defaultModel));
    if (!fallback) throw new NginxRenderError(`nodePool.defaultModel "${pool.defaultModel}" is served by no node`);
    return { all, fallback, byModel, members };
}

function nodePoolHttp(spec: GatewaySpec): string[] {
    const pool = spec.nodePool;
    if (!pool) return [];
    if (!pool.router) throw new NginxRenderError("nodePool.router: the router listener address is required");
    const p = nodePools(pool);
    const kinds = spec.endpoints.map((e) => [e.id, e.kind] as const);
    return [
        "",
        "# GPU node pool: one upstream per set of nodes that serve a model; least connections inside.",
        ...[...p.members].flatMap(([name, nodes]) => [
            `upstream ${name} {`,
            "    # Shared memory: every worker sees the same connection counts and failed nodes.",
            `    zone ${name} 64k;`,
            "    least_conn;",
            ...nodes.map((n) => `    server ${address(n.enclave, `node ${n.name}`)} max_fails=1 fail_timeout=${pool.failTimeoutSeconds}s; # ${n.name}`),
            "    keepalive 16;",
            "    keepalive_timeout 4s;",
            "}",
        ]),
        ...mapBlock("$zto_endpoint", "$zto_endpoint_kind", kinds),
        ...mapBlock("$zto_endpoint_kind", "$zto_fallback_pool", [["metadata", p.all]], p.fallback),
        "# The model the filter read from the body selects the nodes that serve it.",
        ...mapBlock(`$http_${MODEL_ROUTING_HEADER.toLowerCase().replace(/-/g, "_")}`, "$zto_pool", [...p.byModel].map(([m, name]) => [nginxString(m, "model"), name] as const), "$zto_fallback_pool"),
    ];
}

function poolLocation(match: string, pool: NodePool, retry: "metadata" | "inference", readTimeoutSeconds: number): string[] {
    const t = pool.clientTls;
    return [
        `location ${match} {`,
        indent(
            [
                `if ($zto_endpoint = "") { ${refuse(REFUSALS.routeNotAllowed)} }`,
                `if ($zto_method_ok = "") { ${refuse(REFUSALS.methodNotAllowed)} }`,
                ...(retry === "metadata"
                    ? ["# Idempotent: another node answers when one fails.", "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;", "proxy_next_upstream_tries 3;"]
                    : [
                          "# Another node takes a generation only before any answer exists: the node was unreachable",
                          "# or answered 502/503 (its Ollama down or busy). Never after a timeout (the generation may be",
                          "# running) and never once streaming began (nginx cannot retry after the response started).",
                          "proxy_next_upstream error http_502 http_503 non_idempotent;",
                          "proxy_next_upstream_tries 2;",
                      ]),
                "proxy_pass https://$zto_pool$request_uri;",
                ...proxyCommon(`"${NODE_TLS_NAME}"`),
                `proxy_ssl_certificate ${nginxPath(t.cert, "nodePool.clientTls.cert")};`,
                `proxy_ssl_certificate_key ${nginxPath(t.key, "nodePool.clientTls.key")};`,
                `proxy_ssl_trusted_certificate ${nginxPath(t.ca, "nodePool.clientTls.ca")};`,
                "proxy_ssl_verify on;",
                "proxy_ssl_verify_depth 1;",
                `proxy_ssl_name ${NODE_TLS_NAME};`,
                "proxy_ssl_server_name off;",
                "proxy_ssl_protocols TLSv1.3;",
                "proxy_ssl_session_reuse on;",
                "proxy_buffering off;",
                "proxy_request_buffering on;",
                "proxy_connect_timeout 3s;",
                `proxy_read_timeout ${readTimeoutSeconds}s;`,
            ],
            1,
        ),
        "}",
    ];
}

function nodePoolRouter(spec: GatewaySpec): string[] {
    const pool = spec.nodePool;
    if (!pool) return [];
    const metadata = spec.endpoints.filter((e) => e.kind === "metadata");
    return [
        "",
        "# Router: internal listener (the gateway's own hop or the filter) -> the node pool.",
        "server {",
        indent(
            [
                `listen ${address(pool.router!, "nodePool.router")};`,
                "error_page 502 503 504 /_zto_error/502;",
                ...metadata.map((e) => poolLocation(e.modelParam ? `^~ ${e.path}` : `= ${e.path}`, pool, "metadata", spec.limits.upstreamTimeoutSeconds)).flat(),
                ...poolLocation("/", pool, "inference", spec.limits.upstreamTimeoutSeconds),
                ...errorLocations(),
            ],
            1,
        ),
        "}",
    ];
}
