/**
 * renderNginxConf: the rendered text for each kind of stack, checked line by line where a rule is
 * structural (add_header inheritance, what is logged, what is forwarded), and every variant
 * accepted by the real `nginx -t` (1.22 here: no directive newer than the oldest supported nginx).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { DENIED_ROUTES, ENDPOINTS, FILTER_ENDPOINTS } from "../../components/gateway/endpoints";
import { OAUTH2_PROXY_BUFFER_KIB, ROUTE_LIMIT_STATUS, renderNginxConf } from "../../components/gateway/nginx/gateway";
import { NginxRenderError, nginxString } from "../../components/gateway/nginx/syntax";
import { retryAfterSeconds } from "../../components/gateway/policy";
import { deriveGatewaySpec, FORWARDED_IDENTITY_HEADERS, SECURITY_HEADERS, type GatewaySpec } from "../../components/gateway/spec";
import { sessionTicketKeyFile } from "../../components/gateway/tickets";
import { createCa, issueCert } from "../../scripts/sandbox/pki";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { tempDir } from "../e2e/harness";
import { nginxSyntaxProblems } from "./nginx-check";

const dir = tempDir("zto-nginx-unit-");
const tls = { cert: join(dir, "server.crt"), key: join(dir, "server.key"), ca: join(dir, "ca.crt") };
createCa({ cert: tls.ca, key: join(dir, "ca.key") }, "unit CA", 30);
issueCert({ cert: tls.ca, key: join(dir, "ca.key") }, { cert: tls.cert, key: tls.key }, { commonName: "gw", usage: "server", dnsNames: ["ollama.test"], notAfter: new Date(Date.now() + 86_400_000) });

const FP = { alice: "a".repeat(40), bob: "b".repeat(40) };
/** A real ticket key file: nginx -t reads it. */
const ticketKeys = join(dir, "session-ticket.key");
writeFileSync(ticketKeys, sessionTicketKeyFile("nginx", randomBytes(80)));

function specFor(raw: Record<string, unknown> = {}, extra: Partial<GatewaySpec> = {}): GatewaySpec {
    const cfg = loadStackConfig({
        domain: "ollama.test",
        devices: [
            { name: "alice", owner: "alice@example.com", groups: ["ml-eng"] },
            { name: "bob", owner: "bob@example.com", groups: ["analysts", "ml-eng"] },
        ],
        ...raw,
    });
    const spec = deriveGatewaySpec(
        cfg,
        { alice: { fingerprintSha1: FP.alice, serial: "01" }, bob: { fingerprintSha1: FP.bob, serial: "02" } },
        {
            listen: { host: "127.0.0.1", port: 18443 },
            tlsFiles: tls,
            ollama: { host: "127.0.0.1", port: 11434 },
            filter: { host: "127.0.0.1", port: 18080 },
            oauth2Proxy: { host: "127.0.0.1", port: 14180 },
            runtimeDir: join(dir, "run"),
            accessLog: join(dir, "access.log"),
            errorLog: join(dir, "error.log"),
        },
    );
    return { ...spec, ...extra };
}

const OIDC = { identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedEmailDomains: ["example.com"] }, oidcClientSecret: "x" };
const ENTRA = { identity: { provider: "entra", tenantId: "00000000-1111-2222-3333-444444444444", allowedEmailDomains: ["example.com"] } };

const nginxT = (conf: string) => nginxSyntaxProblems(conf, dir);

/** The body of the `name { ... }` block that starts on a line of its own (one nesting level deep). */
function block(conf: string, opener: string): string {
    const start = conf.indexOf(opener + " {");
    assert.ok(start >= 0, `block ${opener} rendered`);
    let depth = 0;
    for (let i = conf.indexOf("{", start); i < conf.length; i++) {
        if (conf[i] === "{") depth++;
        if (conf[i] === "}" && --depth === 0) return conf.slice(start, i + 1);
    }
    throw new Error(`unterminated block ${opener}`);
}

/** Where the route (allowlist, limits, proxy) lives: location / itself, or @zto_route after auth. */
const routeBlock = (conf: string) => block(conf, conf.includes("location @zto_route {") ? "location @zto_route" : "location /");

/** Map entries `key value;` of `map <source> <target> {`. */
function mapEntries(conf: string, source: string, target: string): [string, string][] {
    return [...block(conf, `map ${source} ${target}`).matchAll(/^\s+("[^"]*"|\S+) (.+);$/gm)].map((m) => [m[1], m[2]]);
}

/** nginx's unescaping of a quoted regex key, then the JS RegExp (the patterns are PCRE/JS compatible). */
function regexOf(key: string): RegExp {
    const body = key.replace(/^"~\*?/, "").replace(/"$/, "").replace(/\\\\/g, "\\");
    return new RegExp(body);
}

const VARIANTS: Record<string, GatewaySpec> = {
    "identity none, TLS 1.3": specFor(),
    "identity oidc": specFor(OIDC),
    "identity entra, TLS 1.2, CORS, udp syslog": specFor({ ...ENTRA, gateway: { tlsMinVersion: "1.2", corsOrigins: ["https://chat.example.com"] }, siem: { syslogAddress: "udp://127.0.0.1:5514" } }),
    "tcp syslog, no devices": { ...specFor({ siem: { syslogAddress: "tcp://siem.example.com:6514" } }), devices: [] },
    "IPv6 listen, worker user": specFor({}, { listen: { host: "::1", port: 18443 }, workerUser: "root" }),
    "session tickets": specFor({}, { tls: { ...specFor().tls, sessionTickets: { keyFile: ticketKeys, lifetimeSeconds: 300 } } }),
};

describe("renderNginxConf: nginx 1.22 accepts every variant", () => {
    for (const [name, spec] of Object.entries(VARIANTS)) {
        test(name, () => assert.equal(nginxT(renderNginxConf(spec)), ""));
    }
    test("nginx -t does reject a broken config (the check above can fail)", () => {
        assert.match(nginxT(renderNginxConf(specFor()).replace("ssl_verify_client on;", "ssl_verify_client sometimes;")), /invalid value "sometimes"/);
    });
    test("no directive that newer nginx deprecates or 1.22 lacks", () => {
        for (const conf of Object.values(VARIANTS).map(renderNginxConf)) {
            assert.doesNotMatch(conf, /\bhttp2\b|\bhttp3\b|\bquic\b|ssl_certificate_cache|ssl_object_cache|ssl_key_log|proxy_pass_trailers/);
            assert.equal((conf.match(/proxy_pass /g) ?? []).length, (conf.match(/proxy_http_version 1\.1;/g) ?? []).length, "every proxy_pass location sets HTTP/1.1 explicitly");
        }
    });
    test("deterministic: the same spec renders the same text", () => assert.equal(renderNginxConf(specFor(OIDC)), renderNginxConf(specFor(OIDC))));
});

describe("renderNginxConf: TLS and the device allowlist", () => {
    const conf = renderNginxConf(specFor());
    test("TLS 1.3 only by default; mTLS against the CA, direct issuance only, no resumption", () => {
        assert.match(conf, /ssl_protocols TLSv1\.3;/);
        assert.doesNotMatch(conf, /TLSv1\.2|ssl_ciphers/);
        for (const d of ["ssl_verify_client on;", "ssl_verify_depth 1;", "ssl_session_tickets off;", "ssl_session_cache off;", `ssl_client_certificate "${tls.ca}";`]) assert.ok(conf.includes(d), d);
    });
    test("session tickets: this generation's key file and the configured lifetime, never a session cache", () => {
        const withTickets = renderNginxConf(VARIANTS["session tickets"]);
        for (const d of ["ssl_session_tickets on;", `ssl_session_ticket_key "${ticketKeys}";`, "ssl_session_timeout 300s;", "ssl_session_cache off;"]) assert.ok(withTickets.includes(d), d);
        assert.doesNotMatch(withTickets, /ssl_session_tickets off/);
        assert.equal(nginxT(renderNginxConf(specFor({}, { tls: { ...specFor().tls, sessionTickets: { keyFile: join(dir, "missing.key"), lifetimeSeconds: 300 } } }))).includes("missing.key"), true, "nginx -t reads the key file (the variant check is real)");
        assert.throws(() => renderNginxConf(specFor({}, { tls: { ...specFor().tls, sessionTickets: { keyFile: ticketKeys, lifetimeSeconds: 0 } } })), /tls\.sessionTickets\.lifetimeSeconds must be a positive/);
        assert.throws(() => renderNginxConf(specFor({}, { tls: { ...specFor().tls, sessionTickets: { keyFile: "relative.key", lifetimeSeconds: 300 } } })), /tls\.sessionTickets\.keyFile/);
    });
    test("tickets only with a key file from the placement and a lifetime above 0", () => {
        const placed = (lifetime: number) => deriveGatewaySpec(loadStackConfig({ domain: "ollama.test", gateway: { tlsTicketLifetimeSeconds: lifetime }, filter: { enabled: false } }), {}, { listen: { host: "127.0.0.1", port: 1 }, tlsFiles: tls, sessionTicketKeys: ticketKeys, ollama: { host: "127.0.0.1", port: 2 }, runtimeDir: dir, accessLog: "off", errorLog: "stderr" }).tls.sessionTickets;
        assert.deepEqual(placed(120), { keyFile: ticketKeys, lifetimeSeconds: 120 });
        assert.equal(placed(0), undefined, "0 turns resumption off");
        assert.equal(specFor().tls.sessionTickets, undefined, "no key file in the placement: no tickets");
    });
    test("TLS 1.2 only when configured, with AEAD ECDHE ciphers", () => {
        const c12 = renderNginxConf(specFor({ gateway: { tlsMinVersion: "1.2" } }));
        assert.match(c12, /ssl_protocols TLSv1\.2 TLSv1\.3;/);
        assert.match(c12, /ssl_ciphers (ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305):?)+;/);
    });
    test("exactly the configured fingerprints map to device names; everything else is refused first", () => {
        assert.deepEqual(mapEntries(conf, "$ssl_client_fingerprint", "$zto_device"), [["default", '""'], [FP.alice, '"alice"'], [FP.bob, '"bob"']]);
        const main = block(conf, "location /");
        // Only HTTP/0.9 goes before it: nginx could answer it only without headers, so it is closed unanswered.
        assert.match(main.split("\n")[1], /if \(\$zto_http09\) \{ return 444; \}/);
        assert.match(main.split("\n")[2], /if \(\$zto_device = ""\) \{ return 403 .*device_not_enrolled/);
    });
    test("removing a device removes only its lines", () => {
        const without = renderNginxConf({ ...specFor(), devices: specFor().devices.filter((d) => d.name !== "bob") });
        assert.equal(without, conf.split("\n").filter((l) => !l.includes(FP.bob)).join("\n"));
    });
    test("Host and SNI must be the certificate's names", () => {
        assert.deepEqual(mapEntries(conf, "$host", "$zto_host_ok").map(([k]) => k), ["default", '"ollama.test"', '"localhost"', '"127.0.0.1"', '"[::1]"']);
        assert.deepEqual(mapEntries(conf, "$ssl_server_name", "$zto_sni_ok").map(([k]) => k), ["default", '""', '"ollama.test"', '"localhost"']);
    });
});

/** With the filter on (the default) the gateway also allowlists what the filter answers itself. */
const GATEWAY_TABLE = [...ENDPOINTS, ...FILTER_ENDPOINTS];

describe("renderNginxConf: endpoint allowlist", () => {
    const conf = renderNginxConf(specFor());
    const allow = mapEntries(conf, "$request_uri", "$zto_endpoint").filter(([k]) => k !== "default");
    test("one anchored regex per endpoint, matched against the raw request target", () => {
        assert.deepEqual(allow.map(([, id]) => id), GATEWAY_TABLE.map((e) => e.id));
        for (const [key] of allow) assert.match(key, /^"~\^.*\$"$/, "anchored both ends: no prefix, no query string");
    });
    test("every allowlisted path matches its own entry only; no denied route or spelling trick matches any", () => {
        const matching = (path: string) => allow.filter(([k]) => regexOf(k).test(path)).map(([, id]) => id);
        for (const e of GATEWAY_TABLE) assert.deepEqual(matching(e.modelParam ? `${e.path}llama3.2:3b` : e.path), [e.id]);
        const tricks = ["/api/%70ull", "/api//version", "/api/version/", "/API/VERSION", "/api/version;x", "/api/version?x=1", "/api/generate/../pull", "/v1/models/..", "/v1/models/a/../../api/pull", "/v1/models/%2e%2e", "/v1/models/a//b", "/api\\version", "//api/version"];
        for (const p of [...DENIED_ROUTES.map((r) => r.path), ...tricks]) assert.deepEqual(matching(p), [], p);
    });
    test("GET /v1/budget (answered by the filter) is allowlisted only when the filter is on", () => {
        const ids = (c: string) => mapEntries(c, "$request_uri", "$zto_endpoint").map(([, id]) => id);
        assert.ok(ids(conf).includes("v1-budget"));
        assert.ok(!ids(renderNginxConf(specFor({ filter: { enabled: false } }))).includes("v1-budget"));
    });
    test("identity none: the route is in location / (no internal redirect); with identity it follows auth_request", () => {
        assert.doesNotMatch(conf, /try_files|@zto_route/);
        const oidc = renderNginxConf(specFor(OIDC));
        const main = block(oidc, "location /");
        assert.ok(main.indexOf("auth_request /_zto_oauth2_auth;") < main.indexOf("try_files /.zto-no-static-files @zto_route;"));
        assert.match(block(oidc, "location @zto_route"), /limit_req zone=zto_requests/);
        assert.doesNotMatch(main, /limit_req|proxy_pass/, "nothing is limited or proxied before the user is known");
    });
    test("methods per endpoint, and the refusals happen before proxy_pass", () => {
        const methods = mapEntries(conf, '"$zto_endpoint $request_method"', "$zto_method_ok").filter(([k]) => k !== "default").map(([k]) => k.replace(/"/g, ""));
        assert.deepEqual(methods.sort(), GATEWAY_TABLE.flatMap((e) => e.methods.map((m) => `${e.id} ${m}`)).sort());
        const route = routeBlock(conf);
        assert.ok(route.indexOf("route_not_allowed") < route.indexOf("proxy_pass"));
        assert.ok(route.indexOf("method_not_allowed") < route.indexOf("proxy_pass"));
        assert.match(route, /proxy_pass http:\/\/zto_upstream\$request_uri;/, "the exact allowlisted target is what goes upstream");
        assert.match(conf, /add_header Allow \$zto_allow_header always;/);
        assert.deepEqual(mapEntries(conf, "$status", "$zto_allow_header"), [["default", '""'], ["405", "$zto_endpoint_methods"]]);
    });
});

describe("renderNginxConf: headers in and out", () => {
    test("security headers, X-Request-Id and CORS are added once at server level, always (never in a location)", () => {
        const conf = renderNginxConf(specFor({ gateway: { corsOrigins: ["https://chat.example.com"] } }));
        const addHeaders = conf.split("\n").filter((l) => /^\s*add_header /.test(l));
        for (const l of addHeaders) {
            assert.match(l, /^ {8}add_header /, `server level only (a location-level add_header would drop the rest): ${l}`);
            assert.match(l, / always;$/, `also on errors: ${l}`);
        }
        for (const [name, value] of SECURITY_HEADERS) assert.ok(addHeaders.some((l) => l.includes(`add_header ${name} ${nginxString(value, name)} always;`)), name);
        assert.ok(addHeaders.some((l) => l.includes("add_header X-Request-Id $request_id always;")));
        assert.match(conf, /server_tokens off;/);
        assert.doesNotMatch(conf, /Access-Control-Allow-Origin "\*"|\$http_origin always/, "never * and never a reflected Origin");
        assert.deepEqual(mapEntries(conf, "$http_origin", "$zto_cors_origin"), [["default", '""'], ['"~^https:\\\\/\\\\/chat\\\\.example\\\\.com$"', '"https://chat.example.com"']]);
    });
    test("no CORS headers at all without corsOrigins, and any Origin is refused", () => {
        const conf = renderNginxConf(specFor());
        assert.doesNotMatch(conf, /add_header Access-Control/);
        assert.deepEqual(mapEntries(conf, "$http_origin", "$zto_origin_refused"), [["default", "1"], ['""', '""']]);
    });
    test("upstream gets only allowlisted client headers plus the gateway's identity headers", () => {
        for (const [mode, spec] of [["none", specFor()], ["oidc", specFor(OIDC)]] as const) {
            const route = routeBlock(renderNginxConf(spec));
            assert.match(route, /proxy_pass_request_headers off;/, mode);
            const set = [...route.matchAll(/proxy_set_header (\S+) (.+);/g)].map((m) => [m[1], m[2]]);
            const names = set.map(([n]) => n);
            for (const h of Object.values(FORWARDED_IDENTITY_HEADERS)) assert.ok(names.includes(h), `${mode}: ${h} set by the gateway`);
            assert.ok(!names.includes("Cookie") && !names.includes("Authorization"), `${mode}: no cookie or token upstream`);
            assert.deepEqual(set.find(([n]) => n === "Host"), ["Host", '"127.0.0.1:18080"'], `${mode}: Host is the upstream's own (the filter here)`);
            assert.deepEqual(set.find(([n]) => n === FORWARDED_IDENTITY_HEADERS.user), [FORWARDED_IDENTITY_HEADERS.user, "$zto_id_user"]);
        }
        const oidc = renderNginxConf(specFor(OIDC));
        assert.match(block(oidc, "location /"), /auth_request_set \$zto_id_user \$upstream_http_x_auth_request_user;/);
        const none = renderNginxConf(specFor());
        assert.deepEqual(mapEntries(none, "$ssl_client_fingerprint", "$zto_id_groups"), [["default", '""'], [FP.alice, '"ml-eng"'], [FP.bob, '"analysts,ml-eng"']]);
    });
    test("streaming and upstream control", () => {
        const route = routeBlock(renderNginxConf(specFor()));
        for (const d of ["proxy_buffering off;", "proxy_request_buffering on;", 'proxy_set_header Connection "";', "proxy_intercept_errors on;", "proxy_read_timeout 600s;"]) assert.ok(route.includes(d), d);
        assert.match(route, /proxy_ignore_headers [^;]*X-Accel-Redirect[^;]*X-Accel-Buffering/);
        assert.match(renderNginxConf(specFor()), /gzip off;/);
        assert.match(block(renderNginxConf(specFor()), "upstream zto_upstream"), /keepalive \d+;/);
    });
    test("identity: auth_request, 401 JSON for API paths, sign-in redirect otherwise, Set-Cookie passed back", () => {
        const conf = renderNginxConf(specFor(ENTRA));
        assert.match(block(conf, "location /"), /auth_request \/_zto_oauth2_auth;/);
        assert.match(block(conf, "location = /_zto_oauth2_auth"), /internal;[\s\S]*proxy_pass http:\/\/zto_oauth2\/oauth2\/auth;[\s\S]*proxy_pass_request_body off;/);
        const unauth = block(conf, "location @zto_unauthenticated");
        assert.match(unauth, /if \(\$zto_is_api\) \{ return 401 /);
        assert.match(unauth, /return 302 \/oauth2\/start\?rd=\$zto_signin_rd;/);
        assert.match(conf, /add_header Set-Cookie \$zto_auth_cookie always;/);
        const rd = regexOf(mapEntries(conf, "$zto_path", "$zto_signin_rd")[1][0]);
        assert.ok(rd.test("/chat") && !rd.test("//evil.example") && !rd.test("/a?x") && !rd.test("/\\evil"), "rd is a local path only");
    });
    test("both oauth2-proxy locations: answer buffers for large Set-Cookie and group headers, X-Real-IP for the audit log; no other location gets them", () => {
        const conf = renderNginxConf(specFor(ENTRA));
        for (const name of ["location = /_zto_oauth2_auth", "location ^~ /oauth2/"]) {
            const b = block(conf, name);
            for (const d of [`proxy_buffer_size ${OAUTH2_PROXY_BUFFER_KIB}k;`, `proxy_buffers 4 ${OAUTH2_PROXY_BUFFER_KIB}k;`, `proxy_busy_buffers_size ${OAUTH2_PROXY_BUFFER_KIB * 2}k;`, "proxy_set_header X-Real-IP $remote_addr;"]) assert.ok(b.includes(d), `${name}: ${d}`);
        }
        assert.ok(OAUTH2_PROXY_BUFFER_KIB >= 16, "room for 4 x 4 KB session cookies or 200 Entra group ids");
        assert.doesNotMatch(block(conf, "location @zto_route"), /proxy_buffer_size|X-Real-IP/);
        assert.doesNotMatch(renderNginxConf(specFor()), /proxy_buffer_size|X-Real-IP/);
    });
});

describe("renderNginxConf: limits and logging", () => {
    test("limits come from the spec", () => {
        const conf = renderNginxConf(specFor({ gateway: { rateLimitPerMinute: 30, burst: 7, maxBodyKiB: 512, clientTimeoutSeconds: 4, upstreamTimeoutSeconds: 900, maxConnectionsPerClient: 9, authRateLimitPerMinute: 5 } }));
        for (const d of ["rate=30r/m;", "burst=7 nodelay;", "limit_conn zto_connections 9;", "client_max_body_size 512k;", "client_header_timeout 4s;", "client_body_timeout 4s;", "send_timeout 4s;", "proxy_read_timeout 900s;", "zone=zto_signin:1m rate=5r/m;", "limit_req_status 429;"]) {
            assert.ok(conf.includes(d), d);
        }
        assert.equal(retryAfterSeconds(120), 1);
        assert.equal(retryAfterSeconds(7), 9);
    });
    test("the route's limits answer the gateway's own 429; the filter's 429 passes with its Retry-After, Ollama's is masked", () => {
        const viaFilter = specFor({ gateway: { rateLimitPerMinute: 30 } });
        const viaOllama = specFor({ gateway: { rateLimitPerMinute: 30 }, filter: { enabled: false } });
        assert.deepEqual([viaFilter.upstream.via, viaOllama.upstream.via], ["filter", "ollama"]);
        for (const spec of [viaFilter, specFor({ ...OIDC, gateway: { rateLimitPerMinute: 30 } }), viaOllama]) {
            const conf = renderNginxConf(spec);
            const route = spec.identity.provider === "none" ? block(conf, "location /") : block(conf, "location @zto_route");
            for (const d of [`limit_req_status ${ROUTE_LIMIT_STATUS};`, `limit_conn_status ${ROUTE_LIMIT_STATUS};`, `error_page ${ROUTE_LIMIT_STATUS} =429 /_zto_error/429;`]) assert.ok(route.includes(d), d);
            assert.ok(conf.includes("location = /_zto_error/429 { internal; return 429 "), "the gateway's rate_limited JSON");
            // nginx intercepts exactly the upstream statuses that have an error page in the route.
            assert.equal(/error_page 429 /.test(route), spec.upstream.via === "ollama", `upstream 429 masked only without the filter (${spec.upstream.via})`);
            assert.match(route, /proxy_intercept_errors on;/);
            for (const s of [500, 502, 503, 504]) assert.match(route, new RegExp(`error_page ${s} /_zto_error/${s};`));
        }
        // Retry-After at the rate limit's pace on the gateway's own 429s (no upstream answered), never added to the filter's.
        assert.deepEqual(mapEntries(renderNginxConf(viaFilter), '"$status:$upstream_status"', "$zto_retry_after"), [["default", '""'], ['"429:"', '"2"']]);
        assert.deepEqual(mapEntries(renderNginxConf(viaOllama), '"$status:$upstream_status"', "$zto_retry_after"), [["default", '""'], ['"~^429:"', '"2"']]);
    });
    test("the access log is JSON and never holds bodies, cookies, tokens or the query string", () => {
        const conf = renderNginxConf(specFor(OIDC));
        const format = /log_format zto_json escape=json '(.*)';/.exec(conf);
        assert.ok(format);
        const sample = JSON.parse(format[1].replace(/\$[a-z_0-9]+/g, "0"));
        assert.deepEqual(Object.keys(sample), ["time", "requestId", "remoteAddr", "device", "user", "groups", "method", "path", "endpoint", "status", "bytesSent", "requestLength", "requestTime", "upstreamStatus", "upstreamResponseTime", "tlsProtocol"]);
        assert.doesNotMatch(format[1], /\$request_body|\$http_cookie|\$http_authorization|\$cookie_|\$request_uri|\$args|\$query_string|\$request\b/);
    });
    test("syslog: udp is rendered; tcp is documented as carried by the container log driver", () => {
        assert.match(renderNginxConf(specFor({ siem: { syslogAddress: "udp://siem.example.com:514" } })), /access_log syslog:server=siem\.example\.com:514,[^ ]* zto_json;/);
        const tcp = renderNginxConf(specFor({ siem: { syslogAddress: "tcp://siem.example.com:6514" } }));
        assert.doesNotMatch(tcp, /access_log syslog:/);
        assert.match(tcp, /# syslog tcp:\/\/siem\.example\.com:6514: nginx has no TCP syslog/);
    });
    test("masked errors: every status nginx produces has a JSON page; upstream 5xx are intercepted", () => {
        const conf = renderNginxConf(specFor());
        const pages = [...conf.matchAll(/error_page (\d+) (\S+);/g)];
        for (const [, , uri] of pages) assert.ok(conf.includes(`location = ${uri} { internal; return `), uri);
        for (const s of [400, 403, 404, 405, 408, 413, 414, 429, 494, 495, 496, 500, 502, 503, 504]) assert.ok(pages.some(([, code]) => Number(code) === s), `error_page ${s}`);
        assert.match(routeBlock(conf), /error_page 502 \/_zto_error\/502;[\s\S]*proxy_intercept_errors on;/);
        const routePages = [...routeBlock(conf).matchAll(/error_page (\d+) /g)].map((m) => Number(m[1]));
        assert.deepEqual(routePages.filter((s) => s >= 400 && s < 413), [], "upstream 4xx answers (e.g. model not found) pass through unmasked");
    });
});

describe("renderNginxConf: refuses specs it cannot render safely", () => {
    const base = specFor();
    const cases: [string, GatewaySpec, RegExp][] = [
        ["haproxy spec", { ...base, kind: "haproxy" }, /renders only the nginx gateway/],
        ["bad fingerprint", { ...base, devices: [{ ...base.devices[0], fingerprintSha1: "AA:BB" }] }, /device "alice": fingerprintSha1 must be 40 lowercase hex/],
        ["same cert twice", { ...base, devices: [base.devices[0], { ...base.devices[1], fingerprintSha1: FP.alice }] }, /device "bob": the same certificate is enrolled twice/],
        ["comma in group", { ...base, devices: [{ ...base.devices[0], groups: ["a,b"] }] }, /device "alice": group "a,b" contains a comma/],
        ["upstream host with a space", { ...base, upstream: { host: "evil host", port: 1, via: "ollama" } }, /upstream: host "evil host" is not a plain host name or IP/],
        ["wildcard origin", { ...base, corsOrigins: ["*"] }, /gateway\.corsOrigins: "\*" is not an exact https origin/],
        ["newline in a header value", { ...base, securityHeaders: [["X-Test", "a\r\nSet-Cookie: x"]] }, /security header X-Test: control characters are not allowed/],
        ["relative runtime dir", { ...base, runtimeDir: "run" }, /runtimeDir: "run\/nginx.pid" must be an absolute path/],
        ["zero rate", { ...base, limits: { ...base.limits, ratePerMinute: 0 } }, /limits\.ratePerMinute must be at least 1/],
        ["identity without oauth2-proxy", { ...specFor(OIDC), identity: { provider: "oidc" } }, /identity\.provider is oidc but the spec has no oauth2-proxy address/],
    ];
    for (const [name, spec, message] of cases) {
        test(name, () => assert.throws(() => renderNginxConf(spec), (e: unknown) => e instanceof NginxRenderError && message.test((e as Error).message)));
    }
    test("owner strings are quoted literally: $ cannot inject a variable, quotes cannot break out", () => {
        assert.equal(nginxString('a"b\\c$host', "x"), '"a\\"b\\\\c${zto_dollar}host"');
        const conf = renderNginxConf({ ...base, devices: [{ ...base.devices[0], owner: "we$ird\"o@example.com" }] });
        assert.ok(conf.includes('"we${zto_dollar}ird\\"o@example.com"'));
        assert.equal(nginxT(conf), "");
    });
});
