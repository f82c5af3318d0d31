/**
 * nginx.conf for the gateway, rendered from a GatewaySpec and its GatewayPolicy (pure: same spec,
 * same text).
 *
 * Runs unchanged on nginx 1.22 (Debian, used by the e2e tests) and the pinned official image:
 * only directives that exist in 1.22 and are not deprecated later. The request pipeline is the
 * policy's checks, by stage:
 *
 *   TLS 1.3 + client cert verified against the CA (resumed only by a ticket of this generation)
 *   connection:  enrolled device (fingerprint allowlist) -> origin-form only -> known Host
 *   request:     [API key], Origin allowlist, CORS preflight
 *   identity:    [auth_request to oauth2-proxy]
 *   route:       endpoint allowlist on the RAW request target, method check, rate and
 *                connection limits, then proxy_pass of exactly the allowlisted path (in
 *                location / itself, or with identity in @zto_route, entered after auth)
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
 * - The gateway's own `Server: nginx` stays (see HIDDEN_UPSTREAM_HEADERS in ../policy.ts); nginx's
 *   own HTML error pages are replaced by JSON everywhere except a malformed chunked body in the
 *   route, where upstream 4xx must pass through unmasked.
 * - nginx sends syslog over UDP only; with a tcp:// SIEM the container's stdout is shipped by the
 *   Docker syslog log driver instead.
 * - Session refresh passes oauth2-proxy's first Set-Cookie ($upstream_http_set_cookie); a
 *   session split over several cookies needs oauth2-proxy's session store (identity.sessionStore
 *   redis, the default), whose cookie is one small ticket.
 * - Refused requests (403/405/421) are answered before the rate limit, so they are not counted.
 */
import { maskedUpstreamStatuses } from "../errors";
import { REAL_CLIENT_IP_HEADER } from "../../identity/oauth2-proxy-settings";
import { checkOf, checksOf, deriveGatewayPolicy, type GatewayCheck, type GatewayPolicy, type LogField } from "../policy";
import { FORWARDED_IDENTITY_HEADERS, type GatewaySpec } from "../spec";
import { escapeRegex } from "../values";
import { nodePoolHttp, nodePoolRouter } from "./pool";
import {
    NGINX_ERRORS,
    NginxRenderError,
    address,
    endpointMaps,
    allowlistCheckLines,
    errorLocations,
    errorPage,
    errorUri,
    forwardingLocation,
    headerValue,
    httpCommon,
    indent,
    logTarget,
    mainContext,
    mapBlock,
    mutualTlsServer,
    nginxPath,
    nginxRegex,
    nginxString,
    proxyCommon,
    refuse,
    requestHeaderVariable,
    upstreamBlock,
} from "./syntax";

/** oauth2-proxy paths a browser needs for sign-in; every other /oauth2/ path is refused. */
export const OAUTH2_PUBLIC_PATHS = ["/oauth2/start", "/oauth2/callback", "/oauth2/sign_in", "/oauth2/sign_out"] as const;

/**
 * What the gateway route's own limits (limit_req, limit_conn) answer, turned into the gateway's
 * 429 by an error page. nginx intercepts every upstream status that has an error page, so the
 * limits answer a status no upstream sends; an upstream 429 the route does not mask (the
 * filter's own JSON with its Retry-After) then passes unchanged.
 */
export const ROUTE_LIMIT_STATUS = 599;

/** nginx's $host keeps IPv6 literals bracketed. */
const hostForNginx = (h: string) => (h.includes(":") ? `[${h}]` : h);

/** One check of the policy as nginx enforces it, where its stage puts it. */
function checkLines(check: GatewayCheck, spec: GatewaySpec): string[] {
    switch (check.id) {
        case "protocol":
            // First: any answer to HTTP/0.9, even a refusal, would go out without headers.
            return ["if ($zto_http09) { return 444; }"];
        case "device":
            return [`if ($zto_device = "") { ${refuse(check.refusal)} }`];
        case "absoluteForm":
            return [`if ($zto_absolute_form) { ${refuse(check.refusal)} }`];
        case "host":
            return [`if ($zto_host_missing) { ${refuse(check.refusal)} }`, `if ($zto_name_ok = "") { ${refuse(check.refusal)} }`];
        case "apiKey":
            return [`if ($zto_api_key = "bad") { ${refuse(check.refusal)} }`];
        case "origin":
            return [`if ($zto_origin_refused) { ${refuse(check.refusal)} }`, "# CORS preflight for an allowlisted route from an allowed origin, answered here.", "if ($zto_preflight) { return 204; }"];
        case "signIn":
            // The refusal is @zto_unauthenticated's (401 JSON for API clients, sign-in for browsers).
            return [
                "auth_request /_zto_oauth2_auth;",
                `auth_request_set $zto_id_user ${upstreamIdentity("user")}${apiKeyIdentity(spec, "user")};`,
                `auth_request_set $zto_id_email ${upstreamIdentity("email")}${apiKeyIdentity(spec, "user")};`,
                `auth_request_set $zto_id_groups ${upstreamIdentity("groups")}${apiKeyIdentity(spec, "groups")};`,
                "auth_request_set $zto_auth_cookie $upstream_http_set_cookie;",
            ];
        case "endpoint":
        case "method":
        case "size":
            return allowlistCheckLines(check);
        case "rate":
            return [
                "",
                `limit_req zone=zto_requests burst=${check.burst} nodelay;`,
                `limit_conn zto_connections ${check.inFlight};`,
                `limit_req_status ${ROUTE_LIMIT_STATUS};`,
                `limit_conn_status ${ROUTE_LIMIT_STATUS};`,
                `error_page ${ROUTE_LIMIT_STATUS} =${check.refusal.status} ${errorUri(check.refusal.status)};`,
            ];
    }
    const unrendered: never = check;
    throw new NginxRenderError(`check ${JSON.stringify(unrendered)} has no nginx rendering`);
}

/** The identity oauth2-proxy answered the auth subrequest with (its X-Auth-Request-* headers). */
const upstreamIdentity = (source: "user" | "email" | "groups") => requestHeaderVariable(FORWARDED_IDENTITY_HEADERS[source]).replace("$http_", "$upstream_http_");

const stageLines = (policy: GatewayPolicy, spec: GatewaySpec, stage: GatewayCheck["stage"]) => checksOf(policy, stage).flatMap((c) => checkLines(c, spec));

/** One access log field: its JSON value, and whether it is a string; undefined when nginx has no such value. */
function logValue(field: LogField): readonly [string, boolean] | undefined {
    switch (field) {
        case "time":
            return ["$time_iso8601", true];
        case "requestId":
            return ["$request_id", true];
        case "remoteAddr":
            return ["$remote_addr", true];
        case "device":
            return ["$zto_device", true];
        case "user":
            return ["$zto_id_user", true];
        case "groups":
            return ["$zto_id_groups", true];
        case "method":
            return ["$request_method", true];
        case "path":
            return ["$zto_path", true];
        case "endpoint":
            return ["$zto_endpoint", true];
        case "status":
            return ["$status", false];
        case "bytesSent":
            return ["$bytes_sent", false];
        case "requestLength":
            return ["$request_length", false];
        case "requestTime":
            return ["$request_time", false];
        // Strings: several upstreams tried give "502, 200".
        case "upstreamStatus":
            return ["$upstream_status", true];
        case "upstreamResponseTime":
            return ["$upstream_response_time", true];
        case "terminationState":
            // haproxy's session end codes; nginx has no equivalent.
            return undefined;
        case "tlsProtocol":
            return ["$ssl_protocol", true];
    }
    const unrendered: never = field;
    throw new NginxRenderError(`log field ${JSON.stringify(unrendered)} has no nginx rendering`);
}

/** JSON access log: who, what, outcome, timings. Never bodies, cookies, Authorization or tokens. */
function logFormat(policy: GatewayPolicy): string[] {
    const json = policy.log
        .flatMap((field) => {
            const v = logValue(field);
            return v ? [`"${field}":${v[1] ? `"${v[0]}"` : v[0]}`] : [];
        })
        .join(",");
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

/** Maps on the raw request: path, endpoint id, method check, Origin, Host, device. */
function maps(spec: GatewaySpec, policy: GatewayPolicy): string[] {
    const identity = spec.identity.provider !== "none";
    const cors = policy.cors;
    const devices = spec.devices.map((d) => [d.fingerprintSha1, nginxString(d.name, `device ${d.name}`)] as const);
    const hosts = spec.acceptedHosts.map((h) => [nginxString(hostForNginx(h.toLowerCase()), "acceptedHosts"), "1"] as const);
    const sni = spec.acceptedHosts.filter((h) => !h.includes(":") && !/^\d+\.\d+\.\d+\.\d+$/.test(h)).map((h) => [nginxString(h.toLowerCase(), "acceptedHosts"), "1"] as const);
    const origins = cors.origins.map((o) => [nginxRegex(`^${escapeRegex(o)}$`), nginxString(o, "corsOrigins")] as const);
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
        ...mapBlock("$zto_cors_origin", "$zto_cors_expose", [['""', '""']], nginxString(cors.exposeHeaders, "cors.exposeHeaders")),
        ...mapBlock("$zto_preflight", "$zto_preflight_methods", [["1", "$zto_endpoint_methods"]]),
        ...mapBlock("$zto_preflight", "$zto_preflight_headers", [["1", nginxString(cors.allowHeaders, "cors.allowHeaders")]]),
        ...mapBlock("$zto_preflight", "$zto_preflight_max_age", [["1", `"${cors.maxAgeSeconds}"`]]),
        "",
        "# Headers that belong to one status only.",
        ...mapBlock("$status", "$zto_allow_header", [["405", "$zto_endpoint_methods"]]),
        "# The gateway's rate-limit Retry-After on its own 429s (no upstream answered; with no filter, Ollama's masked 429",
        "# too). A 429 from the filter keeps the filter's Retry-After, or none when the request can never fit.",
        ...mapBlock('"$status:$upstream_status"', "$zto_retry_after", [[spec.upstream.via === "ollama" ? nginxRegex("^429:") : '"429:"', `"${checkOf(policy, "rate").retryAfterSeconds}"`]]),
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

/**
 * The route stage's checks (allowlist, method, limits) and the proxy to the upstream: the body of
 * location / with identity none, of @zto_route (entered after auth_request) with an identity provider.
 */
function routeDirectives(spec: GatewaySpec, policy: GatewayPolicy): string[] {
    const identity = spec.identity.provider !== "none";
    return forwardingLocation(policy, {
        checks: stageLines(policy, spec, "route"),
        beforeProxy: [
            "",
            ...maskedUpstreamStatuses(spec.upstream.via).map(errorPage),
            "# Upstream error bodies may name hosts, paths or versions (and Ollama's 4xx echo its Go decoder): replace them.",
            "# The filter's 429 is its own JSON and passes (components/gateway/errors.ts maskedUpstreamStatuses).",
            "proxy_intercept_errors on;",
            "proxy_next_upstream off;",
            "",
        ],
        upstream: "http://zto_upstream",
        hostHeader: nginxString(spec.upstreamHost, "upstreamHost"),
        afterProxy: [
            "# Identity headers are set here only: client-sent ones never pass (request headers off).",
            ...policy.requestHeaders.identity.map((h) => `proxy_set_header ${h.name} ${headerValue(h.source, identity)};`),
        ],
        connectTimeoutSeconds: 5,
        readTimeoutSeconds: spec.limits.upstreamTimeoutSeconds,
        sendTimeoutSeconds: spec.limits.upstreamTimeoutSeconds,
    });
}

/** With an identity provider: the route runs after auth_request, in its own named location. */
function routeLocation(spec: GatewaySpec, policy: GatewayPolicy): string[] {
    if (spec.identity.provider === "none") return [];
    return ["location @zto_route {", indent(routeDirectives(spec, policy), 1), "}"];
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

function identityLocations(spec: GatewaySpec, policy: GatewayPolicy): string[] {
    if (spec.identity.provider === "none") return [];
    return [
        "# auth_request target: forwards only the session cookie and bearer token.",
        "location = /_zto_oauth2_auth {",
        indent(
            [
                "internal;",
                ...apiKeyAuthShortcut(spec),
                "proxy_pass http://zto_oauth2/oauth2/auth;",
                ...proxyCommon(policy, "$host"),
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
                ...stageLines(policy, spec, "connection"),
                `if ($zto_oauth2_allowed = "") { ${refuse(checkOf(policy, "endpoint").refusal)} }`,
                `limit_req zone=zto_signin burst=${Math.max(2, Math.ceil(spec.limits.authRatePerMinute / 2))} nodelay;`,
                "proxy_pass http://zto_oauth2$request_uri;",
                ...proxyCommon(policy, "$host", { passSetCookie: true }),
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
        indent([`if ($zto_is_api) { ${refuse(checkOf(policy, "signIn").refusal)} }`, "return 302 /oauth2/start?rd=$zto_signin_rd;"], 1),
        "}",
        "",
    ];
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
    if (spec.kind !== "nginx") throw new NginxRenderError(`gateway.kind is "${spec.kind}"; renderNginxConf renders only the nginx gateway`);
    const policy = deriveGatewayPolicy(spec, NginxRenderError);
    const l = spec.limits;
    const identity = spec.identity.provider !== "none";
    const run = spec.runtimeDir;
    const headerBufferKiB = identity ? 16 : 8; // oauth2-proxy session cookies can reach ~12 KiB
    const r = policy.responseHeaders;
    const serverHeaders: string[] = [
        ...r.always.map(([name, value]) => `add_header ${name} ${nginxString(value, `security header ${name}`)} always;`),
        `add_header ${r.requestId} $request_id always;`,
        "add_header Allow $zto_allow_header always;",
        "add_header Retry-After $zto_retry_after always;",
        ...(policy.cors.origins.length
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
                ...stageLines(policy, spec, "connection"),
                ...stageLines(policy, spec, "request"),
                ...stageLines(policy, spec, "identity"),
                ...(identity
                    ? ["# try_files runs after the access phase: limits in @zto_route see the signed-in user.", "try_files /.zto-no-static-files @zto_route;"]
                    : ["", ...routeDirectives(spec, policy)]),
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
                ...logFormat(policy),
                ...accessLogs(spec),
                "log_not_found off;",
                "",
                "# Request size and slow-client limits (slowloris).",
                `client_max_body_size ${checkOf(policy, "size").maxBodyKiB}k;`,
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
                `limit_req_zone $zto_rate_key zone=zto_requests:10m rate=${checkOf(policy, "rate").perMinute}r/m;`,
                `limit_req_zone $binary_remote_addr zone=zto_signin:1m rate=${l.authRatePerMinute}r/m;`,
                "limit_conn_zone $zto_rate_key zone=zto_connections:10m;",
                "limit_req_status 429;",
                "limit_conn_status 429;",
                "limit_req_log_level warn;",
                "limit_conn_log_level warn;",
                "",
                ...maps(spec, policy),
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
                        ...mutualTlsServer(spec.tls, policy.tls),
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
                        ...routeLocation(spec, policy),
                        "",
                        ...identityLocations(spec, policy),
                        ...errorLocations(),
                    ],
                    1,
                ),
                "}",
                ...nodePoolRouter(spec, policy),
            ],
            1,
        ),
        "}",
        "",
    ];
    return conf.join("\n");
}
