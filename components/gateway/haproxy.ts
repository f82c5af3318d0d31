/**
 * haproxy.cfg (plus its device maps) for the gateway, rendered from the same GatewaySpec as
 * nginx.conf, enforcing the same policy (pure: same spec, same files).
 *
 * Runs unchanged on haproxy 2.6 (Debian, used by the tests) and the pinned official image
 * (2.8): only keywords that exist in 2.6. The request pipeline, in rule order:
 *
 *   TLS 1.3 + client cert verified against the CA (`verify required`: no cert, no HTTP at all)
 *   enrolled device (fingerprint map) -> origin-form only -> known Host and SNI -> API key
 *   (devices that have one) -> Origin
 *   CORS preflight -> endpoint allowlist on the RAW request target -> method -> body size
 *   -> rate and concurrency per device -> only allowlisted client headers + identity headers
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
import { FORWARDED_IDENTITY_HEADERS, type GatewaySpec, type Upstream } from "./spec";
import { endpointPathRegex, type Endpoint } from "./endpoints";
import { ERRORS_BY_STATUS, maskedUpstreamStatuses, REFUSALS, type GatewayError } from "./errors";
import { FORWARDED_CLIENT_HEADERS, retryAfterSeconds } from "./nginx";

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

/** Upstream response headers never shown to clients (the gateway owns these). */
const HIDDEN_UPSTREAM_HEADERS = ["Server", "X-Powered-By", "X-Request-Id", "Set-Cookie"];

/** Thrown when a spec value cannot be written into haproxy.cfg safely. */
export class HaproxyRenderError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "HaproxyRenderError";
    }
}

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * A double-quoted haproxy word taken literally: `\`, `"` and `$` (environment expansion) are
 * escaped; `%` is doubled because every place this is used parses a log-format string.
 */
export function haproxyLiteral(value: string, what: string): string {
    if (CONTROL_CHARS.test(value)) throw new HaproxyRenderError(`${what}: control characters are not allowed (got ${JSON.stringify(value)})`);
    return `"${value.replace(/%/g, "%%").replace(/[\\"$]/g, (c) => "\\" + c)}"`;
}

/** A single-quoted haproxy word: no escape or variable processing at all (regexes, JSON). */
function singleQuoted(value: string, what: string): string {
    if (value.includes("'") || CONTROL_CHARS.test(value)) throw new HaproxyRenderError(`${what}: ${JSON.stringify(value)} cannot be single-quoted for haproxy`);
    return `'${value}'`;
}

/** A filesystem path for haproxy; these come from placements, never from users. */
function haproxyPath(p: string, what: string): string {
    if (!/^\/[A-Za-z0-9._\/-]*$/.test(p)) throw new HaproxyRenderError(`${what}: ${JSON.stringify(p)} must be an absolute path of [A-Za-z0-9._/-]`);
    return p;
}

function address(u: Upstream, what: string): string {
    if (!/^[A-Za-z0-9._:-]+$/.test(u.host)) throw new HaproxyRenderError(`${what}: host ${JSON.stringify(u.host)} is not a plain host name or IP`);
    if (!Number.isInteger(u.port) || u.port < 1 || u.port > 65535) throw new HaproxyRenderError(`${what}: port ${u.port} is not a TCP port`);
    return u.host.includes(":") ? `ipv6@${u.host}:${u.port}` : `${u.host}:${u.port}`;
}

const isIpLiteral = (h: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.includes(":");
const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
/** ACL-safe token for an endpoint id. */
const aclName = (e: Endpoint) => `zto_ep_${e.id.replace(/-/g, "_")}`;

/** `{"error":{...}}` as a single-quoted log-format string with the request id. */
function errorBody(e: GatewayError): string {
    return singleQuoted(`{"error":{"code":"${e.code}","message":"${e.message}","requestId":"%[unique-id]"}}`, `error ${e.code}`);
}

/** An `http-request return` answering with the JSON error (plus extra headers) when `cond` holds. */
function refuse(e: GatewayError, cond: string, headers: readonly (readonly [string, string])[] = []): string {
    const hdrs = headers.map(([n, v]) => ` hdr ${n} ${v}`).join("");
    return `http-request return status ${e.status} content-type application/json lf-string ${errorBody(e)}${hdrs} if ${cond}`;
}

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

function validateSpec(spec: GatewaySpec): void {
    if (spec.kind !== "haproxy") throw new HaproxyRenderError(`gateway.kind is "${spec.kind}"; renderHaproxyCfg renders only the haproxy gateway`);
    if (spec.identity.provider !== "none") {
        throw new HaproxyRenderError(`identity.provider is "${spec.identity.provider}": the haproxy gateway has no auth_request; use gateway.kind nginx, or identity.provider none`);
    }
    if (spec.tls.key !== spec.tls.cert && spec.tls.key !== `${spec.tls.cert}.key`) {
        // haproxy 2.6 has no separate key directive: it reads the key from the cert file or <cert>.key.
        throw new HaproxyRenderError(`tls.key must be the certificate file itself or "${spec.tls.cert}.key" (haproxy loads the key from there); got ${JSON.stringify(spec.tls.key)}`);
    }
    const seen = new Set<string>();
    for (const d of spec.devices) {
        if (!/^[0-9a-f]{40}$/.test(d.fingerprintSha1)) throw new HaproxyRenderError(`device "${d.name}": fingerprintSha1 must be 40 lowercase hex characters (SHA-1 of the certificate DER)`);
        if (seen.has(d.fingerprintSha1)) throw new HaproxyRenderError(`device "${d.name}": the same certificate is enrolled twice (fingerprint ${d.fingerprintSha1})`);
        seen.add(d.fingerprintSha1);
        if (d.apiKeyDigest !== undefined && !/^[A-Za-z0-9_-]{22}$/.test(d.apiKeyDigest)) throw new HaproxyRenderError(`device "${d.name}": apiKeyDigest must be an MD5 digest in unpadded base64url (22 characters)`);
        // Map values are the rest of the line: whitespace would be kept, a newline would add an entry.
        for (const [field, value] of [["name", d.name], ["owner", d.owner], ...d.groups.map((g) => ["group", g])] as const) {
            if (!/^[^\s,]+$/.test(value)) throw new HaproxyRenderError(`device "${d.name}": ${field} ${JSON.stringify(value)} must be non-empty without whitespace or commas`);
        }
    }
    for (const o of spec.corsOrigins) {
        if (!/^https:\/\/[a-z0-9.-]+(:\d{1,5})?$/.test(o)) throw new HaproxyRenderError(`gateway.corsOrigins: ${JSON.stringify(o)} is not an exact https origin`);
    }
    for (const h of spec.acceptedHosts) {
        if (!/^[A-Za-z0-9.:-]+$/.test(h)) throw new HaproxyRenderError(`acceptedHosts: ${JSON.stringify(h)} is not a host name or IP address`);
    }
    for (const [name, value] of spec.securityHeaders) {
        if (!/^[A-Za-z0-9-]+$/.test(name)) throw new HaproxyRenderError(`security header name ${JSON.stringify(name)} is not a token`);
        haproxyLiteral(value, `security header ${name}`);
    }
    const l = spec.limits;
    for (const [k, v] of Object.entries(l)) if (!Number.isInteger(v) || v < 0) throw new HaproxyRenderError(`limits.${k} must be a non-negative integer (got ${v})`);
    for (const k of ["ratePerMinute", "connectionsPerClient", "maxBodyKiB", "clientTimeoutSeconds", "upstreamTimeoutSeconds", "reloadDrainSeconds"] as const) {
        if (l[k] < 1) throw new HaproxyRenderError(`limits.${k} must be at least 1 (got ${l[k]})`);
    }
    const tickets = spec.tls.sessionTickets;
    if (tickets && (!Number.isInteger(tickets.lifetimeSeconds) || tickets.lifetimeSeconds < 1)) throw new HaproxyRenderError(`tls.sessionTickets.lifetimeSeconds must be a positive whole number of seconds (got ${tickets.lifetimeSeconds})`);
    const log = spec.logging.accessLog;
    if (log !== "stdout" && log !== "off" && !log.startsWith("/")) throw new HaproxyRenderError(`logging.accessLog must be "stdout", "off" or an absolute path the runner sends haproxy's stdout to (got ${JSON.stringify(log)})`);
}

/**
 * JSON access log with nginx's field names where the meaning is the same. haproxy 2.6 has no
 * sub-millisecond timers, so durations are integer milliseconds under their own names.
 * Never bodies, cookies, Authorization or query strings. Strings go through `json` escaping.
 */
function logFormat(): string {
    const str = (expr: string) => `%{+Q}[${expr},json(utf8s)]`;
    const fields: [string, string][] = [
        ["time", `"%[date,utime("%Y-%m-%dT%H:%M:%SZ")]"`],
        ["requestId", `"%ID"`],
        ["remoteAddr", `"%ci"`],
        ["device", str("var(txn.device)")],
        ["user", str("var(txn.user)")],
        ["groups", str("var(txn.groups)")],
        ["method", str("capture.req.method")],
        ["path", str("var(txn.path)")],
        ["endpoint", str("var(txn.endpoint)")],
        ["status", "%ST"],
        ["bytesSent", "%B"],
        ["requestLength", "%U"],
        ["requestTimeMs", "%Ta"],
        ["upstreamResponseTimeMs", "%Tr"],
        ["terminationState", `"%tsc"`],
        ["tlsProtocol", `"%sslv"`],
    ];
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

/** Endpoint allowlist: id per raw target, then one 405 rule per distinct method set. */
function endpointRules(spec: GatewaySpec): { acls: string[]; rules: string[]; methodGroups: Map<string, Endpoint[]> } {
    const acls = spec.endpoints.map((e) => `acl ${aclName(e)} url -m reg ${singleQuoted(endpointPathRegex(e), `endpoint ${e.id}`)}`);
    const rules = spec.endpoints.map((e) => `http-request set-var(txn.endpoint) str(${e.id}) if !{ var(txn.endpoint) -m found } ${aclName(e)}`);
    const methodGroups = new Map<string, Endpoint[]>();
    for (const e of spec.endpoints) methodGroups.set(e.methods.join(", "), [...(methodGroups.get(e.methods.join(", ")) ?? []), e]);
    return { acls, rules, methodGroups };
}

/**
 * Static per-device API keys (devices[].apiKey), as nginx: a device with a key must send it as
 * `Authorization: Bearer <48 letters/digits>` on every request, and a key-shaped token that is
 * not the presenting device's own key is refused. haproxy hashes the presented token (MD5,
 * unpadded base64url) and compares it with the device's digest from the map: the config holds
 * digests only. Nothing is rendered unless some device has a key.
 */
function apiKeyRules(spec: GatewaySpec): string[] {
    if (!spec.devices.some((d) => d.apiKeyDigest !== undefined)) return [];
    return [
        "# Static API keys: MD5(bearer token) against the presenting device's digest.",
        `http-request set-var(txn.api_key_digest) var(txn.fingerprint),map(${HAPROXY_DEVICE_MAPS.apiKeyDigest})`,
        "http-request set-var(txn.api_key_sent) req.fhdr(authorization,1),regsub(^[A-Za-z]+[[:blank:]]+,),digest(MD5),ub64enc if { req.fhdr(authorization,1) -m reg -i '^Bearer +[A-Za-z0-9]{48}$' }",
        refuse(REFUSALS.apiKeyInvalid, "{ var(txn.api_key_sent) -m found } !{ var(txn.api_key_sent),strcmp(txn.api_key_digest) eq 0 }"),
        refuse(REFUSALS.apiKeyInvalid, "{ var(txn.api_key_digest) -m found } !{ var(txn.api_key_sent) -m found }"),
    ];
}

function corsRules(spec: GatewaySpec, methodGroups: Map<string, Endpoint[]>): string[] {
    if (!spec.corsOrigins.length) return [];
    const ids = (eps: Endpoint[]) => eps.map((e) => e.id).join(" ");
    return [
        "# CORS preflight for an allowlisted route from an allowed origin, answered here.",
        ...[...methodGroups].map(
            ([methods, eps]) =>
                `http-request return status 204 hdr Access-Control-Allow-Methods ${haproxyLiteral(methods, "methods")} hdr Access-Control-Allow-Headers "Authorization, Content-Type, Accept" hdr Access-Control-Max-Age 600 if METH_OPTIONS { var(txn.cors_origin) -m found } { var(txn.endpoint) -m str ${ids(eps)} }`,
        ),
    ];
}

function afterResponseRules(spec: GatewaySpec): string[] {
    return [
        "# On every response, haproxy's own refusals and errors included.",
        ...spec.securityHeaders.map(([name, value]) => `http-after-response set-header ${name} ${haproxyLiteral(value, `security header ${name}`)}`),
        `http-after-response set-header ${FORWARDED_IDENTITY_HEADERS.requestId} %[unique-id]`,
        ...(spec.corsOrigins.length
            ? [
                  "http-after-response set-header Access-Control-Allow-Origin %[var(txn.cors_origin)] if { var(txn.cors_origin) -m found }",
                  "http-after-response set-header Access-Control-Allow-Credentials true if { var(txn.cors_origin) -m found }",
                  'http-after-response set-header Access-Control-Expose-Headers "X-Request-Id, Retry-After" if { var(txn.cors_origin) -m found }',
                  "http-after-response set-header Vary Origin",
              ]
            : []),
    ];
}

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

function frontendSection(spec: GatewaySpec): string[] {
    const l = spec.limits;
    const tls = spec.tls;
    const h = FORWARDED_IDENTITY_HEADERS;
    const window = rateWindow(l.ratePerMinute, l.burst);
    const retryAfter = ["Retry-After", String(retryAfterSeconds(l.ratePerMinute))] as const;
    const { acls, rules: endpointIdRules, methodGroups } = endpointRules(spec);
    const names = spec.acceptedHosts.map((x) => x.toLowerCase());
    const hostRegex = `^(${names.map((n) => escapeRegex(n.includes(":") ? `[${n}]` : n)).join("|")})(:[0-9]{1,5})?$`;
    const sniNames = names.filter((n) => !isIpLiteral(n));
    // Framing headers stay (haproxy rewrites them anyway); Expect too, or a client sending
    // `Expect: 100-continue` would wait for a 100 that never comes (haproxy leaves it to upstream).
    const keptHeaders = ["content-length", "expect", ...FORWARDED_CLIENT_HEADERS.map((x) => x.toLowerCase())];
    const tlsOptions =
        tls.minVersion === "1.2"
            ? "ssl-min-ver TLSv1.2 ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
            : "ssl-min-ver TLSv1.3";
    const maps = HAPROXY_DEVICE_MAPS;
    const tickets = ticketOption(tls.sessionTickets);
    return [
        "frontend zto_gateway",
        ...indent([
            "# Mutual TLS: a connection without a certificate issued by the CA never reaches HTTP.",
            "# HTTP/1.1 only: `proto h1` stops haproxy from switching to HTTP/2 when a client sends the",
            "# h2 preface without ALPN (h2 bodies need no Content-Length, which the body cap relies on).",
            tickets.comment,
            `bind ${address(spec.listen, "listen")} ssl crt ${haproxyPath(tls.cert, "tls.cert")} ca-file ${haproxyPath(tls.ca, "tls.ca")} verify required ${tlsOptions} ${tickets.option} alpn http/1.1 proto h1`,
            "unique-id-format %[uuid()]",
            `log-format ${logFormat()}`,
            "# Per-device request rate (sliding window, see rateWindow) and requests in flight.",
            `stick-table type string len 40 size 100k expire ${Math.max(window.periodMs * 2, 60_000)}ms store http_req_rate(${window.periodMs}ms),conn_cur`,
            "",
            ...acls,
            `acl zto_host_ok req.fhdr(host),lower -m reg ${singleQuoted(hostRegex, "acceptedHosts")}`,
            ...(sniNames.length ? [`acl zto_sni_ok ssl_fc_sni,lower -m str ${sniNames.join(" ")}`] : []),
            ...(spec.corsOrigins.length ? [`acl zto_origin_ok req.fhdr(origin) -m str ${spec.corsOrigins.join(" ")}`] : []),
            "",
            "# Identity: the device certificate. A CA-signed certificate that is not enrolled",
            "# (a device removed from config) is refused.",
            "http-request set-var(txn.path) path",
            ...(spec.corsOrigins.length ? ["http-request set-var(txn.cors_origin) req.fhdr(origin) if zto_origin_ok { req.fhdr_cnt(origin) eq 1 }"] : []),
            "http-request set-var(txn.fingerprint) ssl_c_sha1,hex,lower",
            `http-request set-var(txn.device) var(txn.fingerprint),map(${maps.name})`,
            refuse(REFUSALS.deviceNotEnrolled, "!{ var(txn.device) -m found }"),
            `http-request set-var(txn.user) var(txn.fingerprint),map(${maps.owner})`,
            `http-request set-var(txn.groups) var(txn.fingerprint),map(${maps.groups})`,
            "",
            "# Absolute-form targets (`GET https://host/path`) are for proxies, never for us.",
            refuse(REFUSALS.absoluteForm, "!{ url_beg / }"),
            "# Host (and SNI when sent) must be one of the server certificate's names. fhdr: whole",
            "# header values (hdr would split at commas and judge only the last part).",
            refuse(REFUSALS.unknownHost, "!zto_host_ok or { req.fhdr_cnt(host) gt 1 }"),
            refuse(REFUSALS.unknownHost, sniNames.length ? "{ ssl_fc_sni -m found } !zto_sni_ok" : "{ ssl_fc_sni -m found }"),
            ...apiKeyRules(spec),
            "# CORS: exact, case-sensitive origin matches; any other Origin is refused.",
            refuse(REFUSALS.originNotAllowed, spec.corsOrigins.length ? "{ req.fhdr_cnt(origin) gt 0 } !{ var(txn.cors_origin) -m found }" : "{ req.fhdr_cnt(origin) gt 0 }"),
            "",
            "# Endpoint allowlist (DESIGN.md section 6) on the raw target: exact path, no query.",
            ...endpointIdRules,
            ...corsRules(spec, methodGroups),
            refuse(REFUSALS.routeNotAllowed, "!{ var(txn.endpoint) -m found }"),
            ...[...methodGroups].map(([methods, eps]) =>
                refuse(REFUSALS.methodNotAllowed, `{ var(txn.endpoint) -m str ${eps.map((e) => e.id).join(" ")} } !{ method ${methods.replace(/,/g, "")} }`, [["Allow", haproxyLiteral(methods, "methods")]]),
            ),
            "",
            "# Body cap from Content-Length, before anything is forwarded. A chunked body cannot be",
            "# measured without buffering it whole, so chunked request bodies are refused.",
            refuse(REFUSALS.lengthRequired, "{ req.hdr_cnt(transfer-encoding) gt 0 }"),
            refuse(REFUSALS.bodyTooLarge, `{ req.hdr_val(content-length) gt ${l.maxBodyKiB * 1024} }`),
            "",
            "# Rate per device: checked before tracking, so refused requests do not count (as nginx).",
            "# Retry-After goes on the gateway's own 429s only: a 429 from the filter keeps the filter's.",
            refuse(REFUSALS.rateLimited, `{ var(txn.fingerprint),table_http_req_rate(zto_gateway) ge ${window.requests} }`, [retryAfter]),
            "http-request track-sc0 var(txn.fingerprint)",
            refuse(REFUSALS.rateLimited, `{ sc_conn_cur(0) gt ${l.connectionsPerClient} }`, [retryAfter]),
            "",
            "# Upstream sees only allowlisted client headers plus the gateway's identity headers.",
            `http-request del-header ${singleQuoted(`^(?!(${keptHeaders.map(escapeRegex).join("|")})$)`, "kept headers")} -m reg`,
            `http-request set-header Host ${haproxyLiteral(spec.upstreamHost, "upstreamHost")}`,
            "http-request set-header X-Forwarded-For %[src]",
            "http-request set-header X-Forwarded-Proto https",
            `http-request set-header ${h.requestId} %[unique-id]`,
            `http-request set-header ${h.user} %[var(txn.user)]`,
            `http-request set-header ${h.email} %[var(txn.user)]`,
            `http-request set-header ${h.groups} %[var(txn.groups)] if { var(txn.groups) -m found }`,
            `http-request set-header ${h.device} %[var(txn.device)]`,
            "",
            "# Upstream errors may name hosts, paths or versions (and Ollama's 4xx echo its Go decoder): replace them.",
            "# The filter's 429 is its own JSON and passes (components/gateway/errors.ts maskedUpstreamStatuses).",
            ...maskedUpstreamStatuses(spec.upstream.via).map(
                (s) => `http-response return status ${s} content-type application/json lf-string ${errorBody(ERRORS_BY_STATUS[s]!)}${s === 429 ? ` hdr ${retryAfter.join(" ")}` : ""} if { status ${s} }`,
            ),
            ...HIDDEN_UPSTREAM_HEADERS.map((x) => `http-response del-header ${x}`),
            "http-response del-header ^access-control- -m reg",
            ...afterResponseRules(spec),
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

function indent(lines: readonly string[]): string[] {
    return lines.map((l) => (l === "" ? "" : "    " + l));
}

/** Render haproxy.cfg for the spec. Throws HaproxyRenderError naming the offending spec field. */
export function renderHaproxyCfg(spec: GatewaySpec): string {
    validateSpec(spec);
    return [
        "# Rendered by zero-trust-ollama from the stack config. Do not edit: edit the stack and redeploy.",
        ...globalSection(spec),
        "",
        ...defaultsSection(spec),
        "",
        ...frontendSection(spec),
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
