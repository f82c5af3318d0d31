/**
 * haproxy.cfg (plus its device maps) for the gateway, rendered from the same GatewaySpec and
 * GatewayPolicy as nginx.conf (pure: same spec, same files).
 *
 * Runs unchanged on haproxy 2.6 (Debian, used by the tests) and the pinned official image
 * (2.8): only keywords that exist in 2.6. The request pipeline, in rule order (the policy's checks):
 *
 *   TLS 1.3 + client cert verified against the CA (`verify required`: no cert, no HTTP at all)
 *   enrolled device (fingerprint map) -> origin-form only -> known Host and SNI -> API key
 *   (devices that have one) -> Origin, CORS preflight answered -> endpoint allowlist on the RAW
 *   request target -> method -> body size -> rate and concurrency per device
 *   -> only allowlisted client headers + identity headers
 *
 * Every decision is taken on haproxy's `url` (the request target exactly as sent; haproxy
 * normalises nothing unless told to), so percent-encoding, dot segments, double slashes, `;`
 * parameters, case and query tricks simply fail to match the allowlist; the same raw target
 * is what the upstream receives.
 *
 * The config reads its maps relative to its own directory (`default-path config`): write every
 * file of `renderHaproxyFiles` into one directory. haproxy cannot write log files, so the
 * access log always goes to stdout: the container runtime (or the sandbox) routes it on.
 */
import { endpointPathRegex, type Endpoint } from "./endpoints";
import { ERRORS_BY_STATUS, maskedUpstreamStatuses, REFUSALS, type GatewayError } from "./errors";
import { HaproxyRenderError, address, errorBody, haproxyLiteral, haproxyPath, indent, isIpLiteral, refuse, singleQuoted } from "./haproxy/syntax";
import { checkOf, deriveGatewayPolicy, methodList, type GatewayCheck, type GatewayPolicy, type HeaderSource, type LogField } from "./policy";
import type { GatewaySpec } from "./spec";
import { escapeRegex } from "./values";

export const HAPROXY_CONFIG_FILE = "haproxy.cfg";
/**
 * Maps keyed by the client certificate's SHA-1 (lowercase hex): device name, owner, groups, and
 * the MD5 digest (unpadded base64url) of the device's static API key, never the key itself.
 */
export const HAPROXY_DEVICE_MAPS = { name: "device-names.map", owner: "device-owners.map", groups: "device-groups.map", apiKeyDigest: "device-api-keys.map" } as const;

/**
 * Statuses haproxy's HTTP parser answers before any rule runs (malformed request line or
 * headers, oversized headers, a request not complete within timeout http-request). In 2.6 those
 * answers ignore `http-error` and `errorfile` content (a fixed HTML page without our headers;
 * haproxy issue 3032, changed in 3.2) and honour only an empty file: so the connection is closed
 * without an answer. Every HTTP response haproxy does send is then JSON with security headers.
 */
const SILENT_PARSER_STATUSES = [400, 408, 501];

/**
 * The other statuses haproxy itself can produce (`http-error` supports these in 2.6), as the
 * same JSON errors nginx answers with. Upstream answers with maskedUpstreamStatuses(via) are
 * replaced by these too, so no upstream body (host names, paths, versions) leaks.
 */
const HAPROXY_ERRORS: readonly GatewayError[] = [401, 403, 404, 405, 407, 410, 413, 425, 429, 500, 502, 503, 504].map((s) => ERRORS_BY_STATUS[s]);

/**
 * Rate limit as a sliding window: nginx's `rate=N r/m burst=B nodelay` admits B+1 requests at
 * once and then one every 60/N s. A window admitting B+1 requests per (B+1)*60/N s has the same
 * instant burst and the same sustained rate. haproxy estimates the window from the current and
 * the previous period, so after a full burst it recovers within one to two windows.
 */
export function rateWindow(ratePerMinute: number, burst: number): { readonly requests: number; readonly periodMs: number } {
    const requests = burst + 1;
    return { requests, periodMs: Math.max(1, Math.round((requests * 60_000) / ratePerMinute)) };
}

/** One access log field: its JSON name and log-format value; undefined when haproxy has no such value. */
function logField(field: LogField): readonly [string, string] | undefined {
    const str = (expr: string) => `%{+Q}[${expr},json(utf8s)]`;
    switch (field) {
        case "time":
            return [field, `"%[date,utime("%Y-%m-%dT%H:%M:%SZ")]"`];
        case "requestId":
            return [field, `"%ID"`];
        case "remoteAddr":
            return [field, `"%ci"`];
        case "device":
            return [field, str("var(txn.device)")];
        case "user":
            return [field, str("var(txn.user)")];
        case "groups":
            return [field, str("var(txn.groups)")];
        case "method":
            return [field, str("capture.req.method")];
        case "path":
            return [field, str("var(txn.path)")];
        case "endpoint":
            return [field, str("var(txn.endpoint)")];
        case "status":
            return [field, "%ST"];
        case "bytesSent":
            return [field, "%B"];
        case "requestLength":
            return [field, "%U"];
        // haproxy 2.6 has no sub-millisecond timers: integer milliseconds under their own names.
        case "requestTime":
            return ["requestTimeMs", "%Ta"];
        case "upstreamStatus":
            // After http-response rules the upstream's own status is gone; %ST and terminationState say what happened.
            return undefined;
        case "upstreamResponseTime":
            return ["upstreamResponseTimeMs", "%Tr"];
        case "terminationState":
            return [field, `"%tsc"`];
        case "tlsProtocol":
            return [field, `"%sslv"`];
    }
    const unrendered: never = field;
    throw new HaproxyRenderError(`log field ${JSON.stringify(unrendered)} has no haproxy rendering`);
}

/**
 * JSON access log with nginx's field names where the meaning is the same. Never bodies,
 * cookies, Authorization or query strings. Strings go through `json` escaping.
 */
function logFormat(policy: GatewayPolicy): string {
    const fields = policy.log.flatMap((f) => {
        const v = logField(f);
        return v ? [v] : [];
    });
    return singleQuoted(`{${fields.map(([k, v]) => `"${k}":${v}`).join(",")}}`, "log-format");
}

/**
 * What an enrol or revoke (a master-worker reload, SIGUSR2) does to connections opened before it.
 * The master starts a worker on the new config and soft-stops the old one, which closes its idle
 * keep-alive connections at once (close-spread-time 0s: none is spared for a spread window, so a
 * revoked device's next request arrives on a new connection and meets the new allowlist), ends each
 * active connection once its response is done, and is killed after hard-stop-after with whatever
 * is still streaming. haproxy's default is no hard stop at all: a revoked device could keep a
 * stream for as long as the upstream keeps talking. The old worker cannot tell a revoked device's
 * stream from anyone else's, so the one bound (gateway.reloadDrainSeconds, default 120 s) is both
 * a revoked device's longest tail and the longest anyone's generation survives a reload.
 */
function reloadDrain(seconds: number): string[] {
    return ["# After a reload the old worker closes idle connections at once and is stopped after this.", "close-spread-time 0s", `hard-stop-after ${seconds}s`];
}

function globalSection(spec: GatewaySpec): string[] {
    const s = spec.logging.syslog;
    return [
        "global",
        ...indent([
            ...(spec.logging.accessLog === "off" ? [] : ["log stdout len 8192 format raw local7 info"]),
            // tcp@ gets an implicit ring buffer in 2.6; the host must resolve when haproxy starts.
            ...(s ? [`log ${s.protocol}@${address({ host: s.host, port: s.port }, "logging.syslog")} len 8192 format rfc5424 local7 info`] : []),
            "log-tag zto_gateway",
            ...reloadDrain(spec.limits.reloadDrainSeconds),
            ...(spec.workerUser ? [`user ${spec.workerUser}`] : []),
            "# Maps are read from the config file's own directory.",
            "default-path config",
            "# No maxconn: haproxy derives it from the file descriptor limit (the container sets",
            "# nofile), so it also starts where that limit is low instead of refusing to.",
            "# No TLS session cache: a session is resumed only by a ticket (see the bind), as with nginx.",
            "tune.ssl.cachesize 0",
            ...(spec.tls.sessionTickets ? ["# A ticket expires after gateway.tlsTicketLifetimeSeconds.", `tune.ssl.lifetime ${spec.tls.sessionTickets.lifetimeSeconds}`] : []),
        ]),
    ];
}

function defaultsSection(spec: GatewaySpec): string[] {
    const l = spec.limits;
    return [
        "defaults",
        ...indent([
            "mode http",
            "log global",
            "# Header names with anything but letters, digits and '-' are dropped (as nginx's",
            "# underscores_in_headers off): X_Device_Name can never alias X-Device-Name upstream.",
            "option http-restrict-req-hdr-names delete",
            "# Port probes (connections closed before the TLS handshake ends) are not logged;",
            "# failed handshakes (no, foreign or expired certificate) still are.",
            "option dontlognull",
            "# Slow clients (slowloris): headers, body gaps and reads each bounded.",
            `timeout http-request ${l.clientTimeoutSeconds}s`,
            `timeout client ${l.clientTimeoutSeconds}s`,
            "timeout http-keep-alive 60s",
            "timeout connect 5s",
            "timeout queue 5s",
            "# Long generations: the upstream may think for minutes between tokens.",
            `timeout server ${l.upstreamTimeoutSeconds}s`,
            `timeout tunnel ${l.upstreamTimeoutSeconds}s`,
            "# Errors haproxy produces itself are the same JSON errors nginx gives; the parser's own",
            "# errors close the connection without an answer (see SILENT_PARSER_STATUSES).",
            ...HAPROXY_ERRORS.map((e) => `http-error status ${e.status} content-type application/json lf-string ${errorBody(e)}`),
            ...SILENT_PARSER_STATUSES.map((s) => `errorfile ${s} /dev/null`),
        ]),
    ];
}

/** ACL-safe token for an endpoint id. */
const aclName = (e: Endpoint) => `zto_ep_${e.id.replace(/-/g, "_")}`;

/** Endpoint allowlist: id per raw target, then one 405 rule per distinct method set. */
function endpointRules(spec: GatewaySpec): { acls: string[]; rules: string[]; methodGroups: Map<string, Endpoint[]> } {
    const acls = spec.endpoints.map((e) => `acl ${aclName(e)} url -m reg ${singleQuoted(endpointPathRegex(e), `endpoint ${e.id}`)}`);
    const rules = spec.endpoints.map((e) => `http-request set-var(txn.endpoint) str(${e.id}) if !{ var(txn.endpoint) -m found } ${aclName(e)}`);
    const methodGroups = new Map<string, Endpoint[]>();
    for (const e of spec.endpoints) methodGroups.set(methodList(e.methods), [...(methodGroups.get(methodList(e.methods)) ?? []), e]);
    return { acls, rules, methodGroups };
}

/**
 * Static per-device API keys (devices[].apiKey), as nginx: a device with a key must send it as
 * `Authorization: Bearer <48 letters/digits>` on every request, and a key-shaped token that is
 * not the presenting device's own key is refused. haproxy hashes the presented token (MD5,
 * unpadded base64url) and compares it with the device's digest from the map: the config holds
 * digests only. The policy has this check only when some device has a key.
 */
function apiKeyRules(refusal: GatewayError): string[] {
    return [
        "# Static API keys: MD5(bearer token) against the presenting device's digest.",
        `http-request set-var(txn.api_key_digest) var(txn.fingerprint),map(${HAPROXY_DEVICE_MAPS.apiKeyDigest})`,
        "http-request set-var(txn.api_key_sent) req.fhdr(authorization,1),regsub(^[A-Za-z]+[[:blank:]]+,),digest(MD5),ub64enc if { req.fhdr(authorization,1) -m reg -i '^Bearer +[A-Za-z0-9]{48}$' }",
        refuse(refusal, "{ var(txn.api_key_sent) -m found } !{ var(txn.api_key_sent),strcmp(txn.api_key_digest) eq 0 }"),
        refuse(refusal, "{ var(txn.api_key_digest) -m found } !{ var(txn.api_key_sent) -m found }"),
    ];
}

/** CORS preflight for an allowlisted route from an allowed origin, answered here. */
function preflightRules(policy: GatewayPolicy, methodGroups: Map<string, Endpoint[]>): string[] {
    const cors = policy.cors;
    if (!cors.origins.length) return [];
    const ids = (eps: Endpoint[]) => eps.map((e) => e.id).join(" ");
    return [
        "# CORS preflight for an allowlisted route from an allowed origin, answered here.",
        ...[...methodGroups].map(
            ([methods, eps]) =>
                `http-request return status 204 hdr Access-Control-Allow-Methods ${haproxyLiteral(methods, "methods")} hdr Access-Control-Allow-Headers ${haproxyLiteral(cors.allowHeaders, "cors.allowHeaders")} hdr Access-Control-Max-Age ${cors.maxAgeSeconds} if METH_OPTIONS { var(txn.cors_origin) -m found } { var(txn.endpoint) -m str ${ids(eps)} }`,
        ),
    ];
}

function afterResponseRules(policy: GatewayPolicy): string[] {
    const r = policy.responseHeaders;
    const cors = policy.cors;
    return [
        "# On every response, haproxy's own refusals and errors included.",
        ...r.always.map(([name, value]) => `http-after-response set-header ${name} ${haproxyLiteral(value, `security header ${name}`)}`),
        `http-after-response set-header ${r.requestId} %[unique-id]`,
        ...(cors.origins.length
            ? [
                  "http-after-response set-header Access-Control-Allow-Origin %[var(txn.cors_origin)] if { var(txn.cors_origin) -m found }",
                  "http-after-response set-header Access-Control-Allow-Credentials true if { var(txn.cors_origin) -m found }",
                  `http-after-response set-header Access-Control-Expose-Headers ${haproxyLiteral(cors.exposeHeaders, "cors.exposeHeaders")} if { var(txn.cors_origin) -m found }`,
                  "http-after-response set-header Vary Origin",
              ]
            : []),
    ];
}

/**
 * What haproxy sends for each header the gateway sets itself (every source must have an entry).
 * identity.provider none, the only one haproxy renders: the device owner is the user and the email.
 */
const HEADER_VALUES: Readonly<Record<HeaderSource, string>> = {
    clientAddress: "%[src]",
    scheme: "https",
    requestId: "%[unique-id]",
    user: "%[var(txn.user)]",
    email: "%[var(txn.user)]",
    groups: "%[var(txn.groups)] if { var(txn.groups) -m found }",
    device: "%[var(txn.device)]",
};

/**
 * The bind's ticket option and the comment above it. A resumed session keeps the certificate it
 * was verified with, so ssl_c_sha1, and with it the allowlist, is the same on every request; the
 * keys are this generation's own, so a reload ends every earlier ticket.
 */
function ticketOption(tickets: GatewaySpec["tls"]["sessionTickets"]): { readonly comment: string; readonly option: string } {
    return tickets
        ? { comment: "# Resumption only by a ticket sealed with this generation's keys (new at every reload).", option: `tls-ticket-keys ${haproxyPath(tickets.keyFile, "tls.sessionTickets.keyFile")}` }
        : { comment: "# No tickets: every connection is a full handshake with certificate verification.", option: "no-tls-tickets" };
}

/** What every check and header rule reads: the request's facts, set before any rule refuses. */
interface Facts {
    readonly window: ReturnType<typeof rateWindow>;
    readonly methodGroups: Map<string, Endpoint[]>;
    readonly sniNames: readonly string[];
}

/** One check of the policy as haproxy rules, in pipeline order. */
function checkRules(check: GatewayCheck, policy: GatewayPolicy, facts: Facts): string[] {
    switch (check.id) {
        case "protocol":
            // haproxy's parser refuses HTTP/0.9 before any rule runs, with a silent 400 (SILENT_PARSER_STATUSES).
            return [];
        case "device":
            return ["# Identity: the device certificate. A CA-signed certificate that is not enrolled", "# (a device removed from config) is refused.", refuse(check.refusal, "!{ var(txn.device) -m found }"), ""];
        case "absoluteForm":
            return ["# Absolute-form targets (`GET https://host/path`) are for proxies, never for us.", refuse(check.refusal, "!{ url_beg / }")];
        case "host":
            return [
                "# Host (and SNI when sent) must be one of the server certificate's names. fhdr: whole",
                "# header values (hdr would split at commas and judge only the last part).",
                refuse(check.refusal, "!zto_host_ok or { req.fhdr_cnt(host) gt 1 }"),
                refuse(check.refusal, facts.sniNames.length ? "{ ssl_fc_sni -m found } !zto_sni_ok" : "{ ssl_fc_sni -m found }"),
            ];
        case "apiKey":
            return apiKeyRules(check.refusal);
        case "origin":
            return [
                "# CORS: exact, case-sensitive origin matches; any other Origin is refused.",
                refuse(check.refusal, policy.cors.origins.length ? "{ req.fhdr_cnt(origin) gt 0 } !{ var(txn.cors_origin) -m found }" : "{ req.fhdr_cnt(origin) gt 0 }"),
                ...preflightRules(policy, facts.methodGroups),
            ];
        case "signIn":
            // validateGatewaySpec refuses an identity provider for haproxy before any policy exists.
            throw new HaproxyRenderError("the haproxy gateway has no sign-in subrequest (auth_request)");
        case "endpoint":
            return ["", refuse(check.refusal, "!{ var(txn.endpoint) -m found }")];
        case "method":
            return [...facts.methodGroups].map(([methods, eps]) =>
                refuse(check.refusal, `{ var(txn.endpoint) -m str ${eps.map((e) => e.id).join(" ")} } !{ method ${methods.replace(/,/g, "")} }`, [["Allow", haproxyLiteral(methods, "methods")]]),
            );
        case "size":
            return [
                "",
                "# Body cap from Content-Length, before anything is forwarded. A chunked body cannot be",
                "# measured without buffering it whole, so chunked request bodies are refused.",
                refuse(REFUSALS.lengthRequired, "{ req.hdr_cnt(transfer-encoding) gt 0 }"),
                refuse(check.refusal, `{ req.hdr_val(content-length) gt ${check.maxBodyKiB * 1024} }`),
            ];
        case "rate": {
            const retryAfter = ["Retry-After", String(check.retryAfterSeconds)] as const;
            return [
                "",
                "# Rate per device: checked before tracking, so refused requests do not count (as nginx).",
                "# Retry-After goes on the gateway's own 429s only: a 429 from the filter keeps the filter's.",
                refuse(check.refusal, `{ var(txn.fingerprint),table_http_req_rate(zto_gateway) ge ${facts.window.requests} }`, [retryAfter]),
                "http-request track-sc0 var(txn.fingerprint)",
                refuse(check.refusal, `{ sc_conn_cur(0) gt ${check.inFlight} }`, [retryAfter]),
            ];
        }
    }
    const unrendered: never = check;
    throw new HaproxyRenderError(`check ${JSON.stringify(unrendered)} has no haproxy rendering`);
}

function frontendSection(spec: GatewaySpec, policy: GatewayPolicy): string[] {
    const tls = spec.tls;
    const rate = checkOf(policy, "rate");
    const window = rateWindow(rate.perMinute, rate.burst);
    const retryAfter = ["Retry-After", String(rate.retryAfterSeconds)] as const;
    const { acls, rules: endpointIdRules, methodGroups } = endpointRules(spec);
    const names = spec.acceptedHosts.map((x) => x.toLowerCase());
    const hostRegex = `^(${names.map((n) => escapeRegex(n.includes(":") ? `[${n}]` : n)).join("|")})(:[0-9]{1,5})?$`;
    const sniNames = names.filter((n) => !isIpLiteral(n));
    const origins = policy.cors.origins;
    const req = policy.requestHeaders;
    const res = policy.responseHeaders;
    // Framing headers stay (haproxy rewrites them anyway); Expect too, or a client sending
    // `Expect: 100-continue` would wait for a 100 that never comes (haproxy leaves it to upstream).
    const keptHeaders = ["content-length", "expect", ...req.kept.map((x) => x.toLowerCase())];
    const tlsOptions = [`ssl-min-ver ${policy.tls.protocols[0]}`, ...(policy.tls.tls12Ciphers.length ? [`ciphers ${policy.tls.tls12Ciphers.join(":")}`] : [])].join(" ");
    const maps = HAPROXY_DEVICE_MAPS;
    const tickets = ticketOption(tls.sessionTickets);
    const facts: Facts = { window, methodGroups, sniNames };
    return [
        "frontend zto_gateway",
        ...indent([
            "# Mutual TLS: a connection without a certificate issued by the CA never reaches HTTP.",
            "# HTTP/1.1 only: `proto h1` stops haproxy from switching to HTTP/2 when a client sends the",
            "# h2 preface without ALPN (h2 bodies need no Content-Length, which the body cap relies on).",
            tickets.comment,
            `bind ${address(spec.listen, "listen")} ssl crt ${haproxyPath(tls.cert, "tls.cert")} ca-file ${haproxyPath(tls.ca, "tls.ca")} verify required ${tlsOptions} ${tickets.option} alpn http/1.1 proto h1`,
            "unique-id-format %[uuid()]",
            `log-format ${logFormat(policy)}`,
            "# Per-device request rate (sliding window, see rateWindow) and requests in flight.",
            `stick-table type string len 40 size 100k expire ${Math.max(window.periodMs * 2, 60_000)}ms store http_req_rate(${window.periodMs}ms),conn_cur`,
            "",
            ...acls,
            `acl zto_host_ok req.fhdr(host),lower -m reg ${singleQuoted(hostRegex, "acceptedHosts")}`,
            ...(sniNames.length ? [`acl zto_sni_ok ssl_fc_sni,lower -m str ${sniNames.join(" ")}`] : []),
            ...(origins.length ? [`acl zto_origin_ok req.fhdr(origin) -m str ${origins.join(" ")}`] : []),
            "",
            "# The request's facts: nothing below refuses before every one is set.",
            "http-request set-var(txn.path) path",
            ...(origins.length ? ["http-request set-var(txn.cors_origin) req.fhdr(origin) if zto_origin_ok { req.fhdr_cnt(origin) eq 1 }"] : []),
            "http-request set-var(txn.fingerprint) ssl_c_sha1,hex,lower",
            `http-request set-var(txn.device) var(txn.fingerprint),map(${maps.name})`,
            `http-request set-var(txn.user) var(txn.fingerprint),map(${maps.owner})`,
            `http-request set-var(txn.groups) var(txn.fingerprint),map(${maps.groups})`,
            "# Endpoint allowlist (DESIGN.md section 6) on the raw target: exact path, no query.",
            ...endpointIdRules,
            "",
            ...policy.checks.flatMap((c) => checkRules(c, policy, facts)),
            "",
            "# Upstream sees only allowlisted client headers plus the gateway's identity headers.",
            `http-request del-header ${singleQuoted(`^(?!(${keptHeaders.map(escapeRegex).join("|")})$)`, "kept headers")} -m reg`,
            `http-request set-header Host ${haproxyLiteral(spec.upstreamHost, "upstreamHost")}`,
            ...[...req.forwarded, ...req.identity].map((x) => `http-request set-header ${x.name} ${HEADER_VALUES[x.source]}`),
            "",
            "# Upstream errors may name hosts, paths or versions (and Ollama's 4xx echo its Go decoder): replace them.",
            "# The filter's 429 is its own JSON and passes (components/gateway/errors.ts maskedUpstreamStatuses).",
            ...maskedUpstreamStatuses(spec.upstream.via).map(
                (s) => `http-response return status ${s} content-type application/json lf-string ${errorBody(ERRORS_BY_STATUS[s]!)}${s === 429 ? ` hdr ${retryAfter.join(" ")}` : ""} if { status ${s} }`,
            ),
            ...res.hidden.filter((x) => !x.startsWith(res.hiddenPrefix)).map((x) => `http-response del-header ${x}`),
            `http-response del-header ^${escapeRegex(res.hiddenPrefix.toLowerCase())} -m reg`,
            ...afterResponseRules(policy),
            "",
            "default_backend zto_upstream",
        ]),
    ];
}

function backendSection(spec: GatewaySpec): string[] {
    const u = spec.upstream;
    // Container names resolve through Docker's DNS, possibly only after the upstream starts.
    const resolve = isIpLiteral(u.host) ? "" : " resolvers zto_dns init-addr last,libc,none";
    return [
        ...(resolve ? ["resolvers zto_dns", ...indent(["parse-resolv-conf", "hold valid 10s"]), ""] : []),
        "backend zto_upstream",
        ...indent([
            "# Streaming: haproxy forwards response data as it arrives (no response buffering and",
            "# no http-buffer-request), so NDJSON and SSE tokens are never held back.",
            "# No health checks: the upstream sees nothing but the requests clients make.",
            `server ${u.via} ${address(u, "upstream")}${resolve}`,
        ]),
    ];
}

/** Render haproxy.cfg for the spec. Throws HaproxyRenderError naming the offending spec field. */
export function renderHaproxyCfg(spec: GatewaySpec): string {
    if (spec.kind !== "haproxy") throw new HaproxyRenderError(`gateway.kind is "${spec.kind}"; renderHaproxyCfg renders only the haproxy gateway`);
    const policy = deriveGatewayPolicy(spec, HaproxyRenderError);
    return [
        "# Rendered by zero-trust-ollama from the stack config. Do not edit: edit the stack and redeploy.",
        ...globalSection(spec),
        "",
        ...defaultsSection(spec),
        "",
        ...frontendSection(spec, policy),
        "",
        ...backendSection(spec),
        "",
    ].join("\n");
}

/** One map line per enrolled device that has a value for `field`. */
function deviceMap(spec: GatewaySpec, value: (d: GatewaySpec["devices"][number]) => string): string {
    return spec.devices.map((d) => [d.fingerprintSha1, value(d)] as const).filter(([, v]) => v !== "").map(([k, v]) => `${k} ${v}\n`).join("");
}

/** Every file the haproxy gateway needs, by file name; write them into one directory. */
export function renderHaproxyFiles(spec: GatewaySpec): Record<string, string> {
    const config = renderHaproxyCfg(spec);
    return {
        [HAPROXY_CONFIG_FILE]: config,
        [HAPROXY_DEVICE_MAPS.name]: deviceMap(spec, (d) => d.name),
        [HAPROXY_DEVICE_MAPS.owner]: deviceMap(spec, (d) => d.owner),
        [HAPROXY_DEVICE_MAPS.groups]: deviceMap(spec, (d) => d.groups.join(",")),
        [HAPROXY_DEVICE_MAPS.apiKeyDigest]: deviceMap(spec, (d) => d.apiKeyDigest ?? ""),
    };
}
