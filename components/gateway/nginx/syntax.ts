/**
 * nginx.conf syntax shared by the gateway (gateway.ts), its node-pool router (pool.ts) and the
 * node enclaves (../enclave.ts): quoting, paths, map blocks, the main context, mutual TLS, the
 * JSON error pages, and the one fragment every forwarding location is made of (allowlist,
 * then proxy_pass of the raw target with the policy's request and response headers).
 */
import { endpointPathRegex, type Endpoint } from "../endpoints";
import { ERRORS_BY_STATUS, MASKED_UPSTREAM_STATUSES, type GatewayError } from "../errors";
import { methodList, type GatewayCheck, type GatewayPolicy, type HeaderSource, type TlsPolicy } from "../policy";

/** The part of a policy every proxying location renders (the gateway's or a node's). */
interface ProxiedHeaders {
    readonly requestHeaders: GatewayPolicy["requestHeaders"];
    readonly responseHeaders: Pick<GatewayPolicy["responseHeaders"], "hidden">;
}
import type { GatewaySpec, Upstream } from "../spec";
import { checkAddress, checkNoControlCharacters, checkPath, RenderError } from "../values";

/** Thrown when a spec value cannot be written into nginx.conf safely. */
export class NginxRenderError extends RenderError {}

/**
 * A double-quoted nginx string whose content is taken literally. nginx has no `$` escape in
 * strings that interpolate variables, so `$` is written as `${zto_dollar}` (a geo constant).
 */
export function nginxString(value: string, what: string): string {
    checkNoControlCharacters(value, what, NginxRenderError);
    return `"${value.replace(/[\\"]/g, (c) => "\\" + c).replace(/\$/g, "${zto_dollar}")}"`;
}

/** A regex for nginx, double-quoted; the regex itself must not contain `"` or `{`-ambiguity. */
export function nginxRegex(source: string, caseInsensitive = false): string {
    if (/["\u0000-\u001f]/.test(source)) throw new NginxRenderError(`regex ${source} cannot be quoted for nginx`);
    return `"~${caseInsensitive ? "*" : ""}${source.replace(/\\/g, "\\\\")}"`;
}

export function address(u: Upstream, what: string): string {
    checkAddress(u, what, NginxRenderError);
    return u.host.includes(":") ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;
}

/** A filesystem path for nginx (quoted); these come from placements, never from users. */
export function nginxPath(p: string, what: string): string {
    checkPath(p, what, NginxRenderError);
    return `"${p}"`;
}

/** `$http_<name>`: nginx's variable for a request header. */
export const requestHeaderVariable = (name: string) => `$http_${name.toLowerCase().replace(/-/g, "_")}`;

/** `{"error":{...}}` as a single-quoted nginx string; codes/messages are fixed identifiers. */
function errorBody(e: GatewayError): string {
    return `'{"error":{"code":"${e.code}","message":"${e.message}","requestId":"$request_id"}}'`;
}

export const refuse = (e: GatewayError) => `return ${e.status} ${errorBody(e)};`;

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

export function logTarget(target: string, what: string, format: string): string {
    if (target === "stdout") return `access_log /dev/stdout ${format};`;
    if (target === "off") return "access_log off;";
    return `access_log ${nginxPath(target, what)} ${format};`;
}

function errorLogTarget(target: string): string {
    return `error_log ${target === "stderr" ? "stderr" : nginxPath(target, "logging.errorLog")} warn;`;
}

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
export function mutualTlsServer(files: Pick<GatewaySpec["tls"], "cert" | "key" | "ca" | "sessionTickets">, policy: TlsPolicy): string[] {
    return [
        `ssl_certificate ${nginxPath(files.cert, "tls.cert")};`,
        `ssl_certificate_key ${nginxPath(files.key, "tls.key")};`,
        `ssl_protocols ${policy.protocols.join(" ")};`,
        ...(policy.tls12Ciphers.length ? [`ssl_ciphers ${policy.tls12Ciphers.join(":")};`] : []),
        "ssl_prefer_server_ciphers off;",
        "# Mutual TLS: every connection presents a device certificate issued directly by the CA.",
        `ssl_client_certificate ${nginxPath(files.ca, "tls.ca")};`,
        "ssl_verify_client on;",
        "ssl_verify_depth 1;",
        "ssl_session_cache off;",
        ...sessionResumption(files.sessionTickets),
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
        `ssl_session_timeout ${tickets.lifetimeSeconds}s;`,
    ];
}

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

/** Error pages are internal URIs: a named location cannot serve requests whose URI did not parse. */
export const errorUri = (nginxStatus: number) => `/_zto_error/${nginxStatus}`;
export const errorPage = (nginxStatus: number) => `error_page ${nginxStatus} ${errorUri(nginxStatus)};`;

export function errorLocations(): string[] {
    return NGINX_ERRORS.map((e) => `location = ${errorUri(e.nginxStatus)} { internal; ${refuse(e)} }`);
}

/**
 * The endpoint allowlist as maps on the RAW request target: `$zto_endpoint` (endpoint id or ""),
 * `$zto_method_ok` and `$zto_endpoint_methods`. Shared by the gateway and the node enclaves.
 */
export function endpointMaps(endpoints: readonly Endpoint[]): string[] {
    const endpointEntries = endpoints.map((e) => [nginxRegex(endpointPathRegex(e)), e.id] as const);
    const methodEntries = endpoints.flatMap((e) => e.methods.map((m) => [`"${e.id} ${m}"`, "1"] as const));
    const methods = endpoints.map((e) => [e.id, `"${methodList(e.methods)}"`] as const);
    return [
        "# Endpoint allowlist (DESIGN.md section 6) on the RAW request target: exact path, no query.",
        ...mapBlock("$request_uri", "$zto_endpoint", endpointEntries),
        ...mapBlock('"$zto_endpoint $request_method"', "$zto_method_ok", methodEntries),
        ...mapBlock("$zto_endpoint", "$zto_endpoint_methods", methods),
    ];
}

/** The allowlist checks on the maps of endpointMaps. */
export const endpointRefusal = (refusal: GatewayError) => `if ($zto_endpoint = "") { ${refuse(refusal)} }`;
export const methodRefusal = (refusal: GatewayError) => `if ($zto_method_ok = "") { ${refuse(refusal)} }`;

/** The checks the gateway's route and a node's enclave render alike. */
export function allowlistCheckLines(check: Extract<GatewayCheck, { id: "endpoint" | "method" | "size" }>): string[] {
    switch (check.id) {
        case "endpoint":
            return [endpointRefusal(check.refusal)];
        case "method":
            return [methodRefusal(check.refusal)];
        case "size":
            // client_max_body_size (http level) applies as soon as nginx picks the location, for
            // every location; its error page answers the refusal (NGINX_ERRORS 413).
            return [];
    }
    const unrendered: never = check;
    throw new NginxRenderError(`check ${JSON.stringify(unrendered)} has no nginx rendering`);
}

export function upstreamBlock(name: string, u: Upstream, what: string, keepalive: number): string[] {
    // keepalive_timeout stays below the Node/Go servers' idle timeouts, so nginx never reuses a
    // connection the upstream is closing (that race surfaces as a 502).
    return [`upstream ${name} {`, `    server ${address(u, what)} max_fails=0;`, `    keepalive ${keepalive};`, "    keepalive_timeout 4s;", "}"];
}

/**
 * Upstream control headers nginx would otherwise obey: X-Accel-Redirect would let an upstream
 * redirect internally (e.g. into the auth location), X-Accel-Buffering could re-enable buffering.
 */
const IGNORED_UPSTREAM_HEADERS = ["X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate", "X-Accel-Buffering", "X-Accel-Charset", "Expires", "Cache-Control", "Set-Cookie", "Vary"];

/** What nginx sends for a header the gateway sets itself; identity values are the gateway's variables. */
export function headerValue(source: HeaderSource, identityProvider: boolean): string {
    switch (source) {
        case "clientAddress":
            return "$remote_addr";
        case "scheme":
            return "https";
        case "requestId":
            return "$request_id";
        case "user":
            return "$zto_id_user";
        case "email":
            return identityProvider ? "$zto_id_email" : "$zto_id_user";
        case "groups":
            return "$zto_id_groups";
        case "device":
            return "$zto_device";
    }
    const unrendered: never = source;
    throw new NginxRenderError(`header source ${JSON.stringify(unrendered)} has no nginx rendering`);
}

/**
 * Directives shared by every location that proxies (upstream connection, headers in and out).
 * Only oauth2-proxy's sign-in locations may set cookies on the client.
 */
export function proxyCommon(policy: ProxiedHeaders, hostHeader: string, opts: { passSetCookie: boolean } = { passSetCookie: false }): string[] {
    const hidden = policy.responseHeaders.hidden.filter((h) => !(opts.passSetCookie && h === "Set-Cookie"));
    const ignored = IGNORED_UPSTREAM_HEADERS.filter((h) => !(opts.passSetCookie && h === "Set-Cookie"));
    const r = policy.requestHeaders;
    return [
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        `proxy_set_header Host ${hostHeader};`,
        "proxy_pass_request_headers off;",
        ...r.kept.map((h) => `proxy_set_header ${h} ${requestHeaderVariable(h)};`),
        ...r.forwarded.map((h) => `proxy_set_header ${h.name} ${headerValue(h.source, false)};`),
        ...hidden.map((h) => `proxy_hide_header ${h};`),
        `proxy_ignore_headers ${ignored.join(" ")};`,
        "proxy_redirect off;",
    ];
}

/** One location that forwards allowlisted requests: the gateway's route, a pool location, an enclave. */
export interface ForwardingLocation {
    /** Refusals first: at least the endpoint and method checks. */
    readonly checks: readonly string[];
    /** Between the checks and proxy_pass: limits, error masking, retry rules. */
    readonly beforeProxy: readonly string[];
    /** `http://<upstream block>` (or https); the raw request target is appended. */
    readonly upstream: string;
    readonly hostHeader: string;
    /** After the shared proxy headers: identity headers, upstream TLS. */
    readonly afterProxy: readonly string[];
    readonly connectTimeoutSeconds: number;
    readonly readTimeoutSeconds: number;
    /** Absent: nginx's default send timeout. */
    readonly sendTimeoutSeconds?: number;
}

/** The allowlist + proxy fragment every forwarding location is made of. */
export function forwardingLocation(policy: ProxiedHeaders, f: ForwardingLocation): string[] {
    return [
        ...f.checks,
        ...f.beforeProxy,
        "# Exactly the allowlisted path (the whole raw target matched the allowlist).",
        `proxy_pass ${f.upstream}$request_uri;`,
        ...proxyCommon(policy, f.hostHeader),
        ...f.afterProxy,
        "",
        "# Streaming: NDJSON and SSE tokens go out as they arrive. Request bodies are read",
        "# completely first, so an oversized chunked body is refused before upstream sees it.",
        "proxy_buffering off;",
        "proxy_cache off;",
        "proxy_request_buffering on;",
        `proxy_connect_timeout ${f.connectTimeoutSeconds}s;`,
        `proxy_read_timeout ${f.readTimeoutSeconds}s;`,
        ...(f.sendTimeoutSeconds === undefined ? [] : [`proxy_send_timeout ${f.sendTimeoutSeconds}s;`]),
    ];
}
