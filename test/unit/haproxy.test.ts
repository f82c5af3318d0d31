/**
 * The haproxy renderer: what the rendered config says, that the real haproxy 2.6 accepts every
 * variant (`haproxy -c`), and that unsafe spec values are refused with the field named.
 * Behaviour against real requests is proven in test/e2e/haproxy.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadStackConfig, parseStackConfig } from "../../components/config";
import { ENDPOINTS, endpointPathRegex } from "../../components/gateway/endpoints";
import { renderNginxConf } from "../../components/gateway/nginx/gateway";
import { HAPROXY_CONFIG_FILE, HAPROXY_DEVICE_MAPS, rateWindow, renderHaproxyCfg, renderHaproxyFiles } from "../../components/gateway/haproxy";
import { HaproxyRenderError, haproxyLiteral } from "../../components/gateway/haproxy/syntax";
import { deriveGatewaySpec, SECURITY_HEADERS, type GatewayPlacement, type GatewaySpec } from "../../components/gateway/spec";
import { apiKeyDigest } from "../../components/identity/api-keys";
import { GATEWAY_CONTAINER_PORT, HAPROXY_GATEWAY_CONFIG_DIR } from "../../components/gateway";
import { gatewaySupervisorScript } from "../../components/gateway/reload";
import { parseStackFile } from "../../components/stack-file";
import { sessionTicketKeyFile } from "../../components/gateway/tickets";
import { randomBytes } from "node:crypto";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";
import { ensureSandboxPki } from "../../scripts/sandbox/pki";

const dirs: string[] = [];
const freshDir = () => {
    const d = mkdtempSync(join(tmpdir(), "zto-haproxy-"));
    dirs.push(d);
    return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Real TLS files (haproxy -c loads them): the sandbox's PKI, server key beside the cert. */
const pkiDir = freshDir();
const pki = ensureSandboxPki(pkiDir, loadStackConfig({ domain: "ollama.test", pki: { keyAlgorithm: "ECDSA-P256" } }));
const serverPem = join(pkiDir, "server.pem");
writeFileSync(serverPem, readFileSync(pki.server.cert, "utf8") + readFileSync(pki.server.key, "utf8"), { mode: 0o600 });

/** A real ticket key file: haproxy -c reads it. */
const ticketKeys = join(pkiDir, "session-ticket.keys");
writeFileSync(ticketKeys, sessionTicketKeyFile("haproxy", randomBytes(240)));

const fingerprint = (i: number) => (i + 1).toString(16).padStart(40, "0");

function placement(over: Partial<GatewayPlacement> = {}): GatewayPlacement {
    return {
        listen: { host: "127.0.0.1", port: 18443 },
        tlsFiles: { cert: serverPem, key: serverPem, ca: pki.ca.cert },
        ollama: { host: "127.0.0.1", port: 11434 },
        filter: { host: "127.0.0.1", port: 18080 },
        runtimeDir: join(pkiDir, "run"),
        accessLog: "stdout",
        errorLog: "stderr",
        ...over,
    };
}

function specFor(raw: Record<string, unknown>, over: Partial<GatewayPlacement> = {}): GatewaySpec {
    const cfg = loadStackConfig({ domain: "ollama.test", ...raw, gateway: { kind: "haproxy", ...(raw.gateway as object) } });
    const certs = Object.fromEntries(cfg.devices.map((d, i) => [d.name, { fingerprintSha1: fingerprint(i), serial: String(i + 1), apiKeyDigest: d.apiKey ? apiKeyDigest(`key-of-${d.name}`) : undefined }]));
    return deriveGatewaySpec(cfg, certs, placement(over));
}

const devices = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `device-${i}`, owner: `owner${i}@example.com`, groups: i % 2 ? ["ml-eng", "analysts"] : [] }));

/** Stacks shaped like the dev and prod examples, but with the haproxy gateway. */
const VARIANTS: Record<string, () => GatewaySpec> = {
    "dev-like (loopback, filter on)": () => specFor({ devices: [{ name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] }, { name: "bob-workstation", owner: "bob@example.com", groups: ["analysts"] }] }),
    "prod-like (identity none, tailscale, CORS, TLS 1.2, syslog udp, no filter, container DNS names)": () =>
        specFor(
            {
                devices: devices(3).map((d, i) => ({ ...d, tailscaleDeviceId: `nA1b2C3d4E${i}CNTRL` })),
                gateway: { listen: "tailscale", port: 443, rateLimitPerMinute: 60, burst: 10, maxBodyKiB: 2048, corsOrigins: ["https://chat.corp.example.com"], upstreamTimeoutSeconds: 900, tlsMinVersion: "1.2" },
                tailscale: { enabled: true, serverAddress: "100.101.102.103", serverHostname: "gpu-01" },
                filter: { enabled: false },
                // haproxy resolves syslog names at start; the test host only knows loopback.
                siem: { syslogAddress: "udp://127.0.0.1:514" },
            },
            { listen: { host: "127.0.0.1", port: 443 }, ollama: { host: "zto-prod-ollama", port: 11434 }, filter: undefined },
        ),
    "syslog over tcp": () => specFor({ devices: devices(1), siem: { syslogAddress: "tcp://127.0.0.1:6514" } }),
    "zero devices": () => specFor({ devices: [] }),
    "API keys": () => specFor({ devices: [{ name: "ci-runner", owner: "ci@example.com", apiKey: true }, ...devices(1)] }),
    "200 devices": () => specFor({ devices: devices(200) }),
    "IPv6 listen": () => specFor({ devices: devices(1) }, { listen: { host: "::1", port: 18443 } }),
    "session tickets": () => specFor({ devices: devices(1), gateway: { tlsTicketLifetimeSeconds: 120 } }, { sessionTicketKeys: ticketKeys }),
};

function writeFiles(spec: GatewaySpec): string {
    const dir = freshDir();
    for (const [name, text] of Object.entries(renderHaproxyFiles(spec))) writeFileSync(join(dir, name), text);
    return join(dir, HAPROXY_CONFIG_FILE);
}

/** `haproxy -c`: exit 0 and no warnings (a warning means haproxy ignored or changed something). */
function haproxyCheck(cfgFile: string): string {
    return execFileSync("haproxy", ["-c", "-f", cfgFile], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("haproxy -c accepts every rendered config", () => {
    for (const [name, make] of Object.entries(VARIANTS)) {
        test(name, () => {
            const out = haproxyCheck(writeFiles(make()));
            assert.match(out, /Configuration file is valid/);
            assert.doesNotMatch(out, /WARNING/);
        });
    }

    test("and rejects a config whose device map is missing (the check is real)", () => {
        const cfgFile = writeFiles(VARIANTS["dev-like (loopback, filter on)"]());
        rmSync(join(cfgFile, "..", HAPROXY_DEVICE_MAPS.name));
        assert.throws(() => haproxyCheck(cfgFile), /device-names\.map/);
    });
});

describe("renderHaproxyCfg", () => {
    const dev = VARIANTS["dev-like (loopback, filter on)"]();
    const cfg = renderHaproxyCfg(dev);

    test("mutual TLS 1.3 against the CA, no resumption, HTTP/1.1 only", () => {
        assert.match(cfg, new RegExp(`bind 127\\.0\\.0\\.1:18443 ssl crt ${serverPem} ca-file ${pki.ca.cert} verify required ssl-min-ver TLSv1\\.3 no-tls-tickets alpn http/1\\.1 proto h1\\n`));
        assert.match(cfg, /tune\.ssl\.cachesize 0/);
        assert.doesNotMatch(cfg, /crt-ignore-err|ca-ignore-err|verify (none|optional)/);
    });

    test("session tickets: this generation's key file on the bind, the configured lifetime, still no session cache", () => {
        const withTickets = renderHaproxyCfg(VARIANTS["session tickets"]());
        assert.match(withTickets, new RegExp(`verify required ssl-min-ver TLSv1\\.3 tls-ticket-keys ${ticketKeys} alpn http/1\\.1 proto h1\\n`));
        assert.doesNotMatch(withTickets, /no-tls-tickets/);
        assert.match(withTickets, /tune\.ssl\.lifetime 120\n/);
        assert.match(withTickets, /tune\.ssl\.cachesize 0/);
        assert.doesNotMatch(renderHaproxyCfg(specFor({ devices: devices(1), gateway: { tlsTicketLifetimeSeconds: 0 } }, { sessionTicketKeys: ticketKeys })), /tls-ticket-keys|tune\.ssl\.lifetime/, "0 turns resumption off");
        const spec = VARIANTS["session tickets"]();
        assert.throws(() => renderHaproxyCfg({ ...spec, tls: { ...spec.tls, sessionTickets: { keyFile: ticketKeys, lifetimeSeconds: 0.5 } } }), /tls\.sessionTickets\.lifetimeSeconds must be a positive/);
        assert.throws(() => haproxyCheck(writeFiles(specFor({ devices: devices(1) }, { sessionTicketKeys: join(pkiDir, "missing.keys") }))), /missing\.keys/, "haproxy -c reads the key file");
    });

    test("TLS 1.2 only when configured, with AEAD ECDHE ciphers", () => {
        const prod = renderHaproxyCfg(VARIANTS["prod-like (identity none, tailscale, CORS, TLS 1.2, syslog udp, no filter, container DNS names)"]());
        assert.match(prod, /ssl-min-ver TLSv1\.2 ciphers (ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305):?){6} /);
    });

    test("device allowlist: fingerprint map lookup, unenrolled certificate refused first", () => {
        const files = renderHaproxyFiles(dev);
        assert.equal(files[HAPROXY_DEVICE_MAPS.name], `${fingerprint(0)} alice-laptop\n${fingerprint(1)} bob-workstation\n`);
        assert.equal(files[HAPROXY_DEVICE_MAPS.owner], `${fingerprint(0)} alice@example.com\n${fingerprint(1)} bob@example.com\n`);
        assert.equal(files[HAPROXY_DEVICE_MAPS.groups], `${fingerprint(0)} ml-eng\n${fingerprint(1)} analysts\n`);
        const rules = cfg.split("\n").filter((l) => /^\s+http-request (return|track|set-header|del-header)/.test(l));
        assert.match(rules[0], /status 403 .*device_not_enrolled.* if !\{ var\(txn\.device\) -m found \}$/);
        assert.match(cfg, /set-var\(txn\.fingerprint\) ssl_c_sha1,hex,lower\n/);
    });

    test("zero devices: empty maps, every request refused as not enrolled", () => {
        const files = renderHaproxyFiles(VARIANTS["zero devices"]());
        assert.equal(files[HAPROXY_DEVICE_MAPS.name], "");
        assert.match(files[HAPROXY_CONFIG_FILE], /device_not_enrolled/);
    });

    test("every endpoint of the table, on the raw target, with its methods", () => {
        for (const e of ENDPOINTS) {
            assert.ok(cfg.includes(`url -m reg '${endpointPathRegex(e)}'`), `endpoint ${e.id}`);
            const group = cfg.split("\n").find((l) => l.includes("status 405") && new RegExp(`-m str [a-z0-9 -]*\\b${e.id}\\b`).test(l));
            assert.ok(group, `405 rule for ${e.id}`);
            assert.ok(group.includes(`!{ method ${e.methods.join(" ")} }`), `${e.id} methods`);
            assert.ok(group.includes(`hdr Allow "${e.methods.join(", ")}"`), `${e.id} Allow header`);
        }
        assert.match(cfg, /status 403 .*route_not_allowed.* if !\{ var\(txn\.endpoint\) -m found \}/);
        // Nothing in the config normalises the target before the allowlist sees it.
        assert.doesNotMatch(cfg, /normalize-uri|set-path|set-uri|\bpath_beg\b|url_dec/);
    });

    test("refusal order: device, absolute-form, Host, SNI, Origin, route, method, body, rate", () => {
        const codes = [...cfg.matchAll(/http-request return status \d+ .*?"code":"([a-z_]+)"/g)].map((m) => m[1]);
        const order = ["device_not_enrolled", "absolute_form_not_allowed", "unknown_host", "origin_not_allowed", "route_not_allowed", "method_not_allowed", "length_required", "request_too_large", "rate_limited"];
        assert.deepEqual([...new Set(codes)], order);
    });

    test("body cap from Content-Length in bytes; chunked request bodies refused", () => {
        assert.match(cfg, /status 413 .* if \{ req\.hdr_val\(content-length\) gt 1048576 \}/);
        assert.match(cfg, /status 411 .* if \{ req\.hdr_cnt\(transfer-encoding\) gt 0 \}/);
        assert.doesNotMatch(cfg, /option http-buffer-request|wait-for-body/);
    });

    test("rate per device: window from rate and burst, checked before tracking; concurrency cap", () => {
        assert.deepEqual(rateWindow(120, 20), { requests: 21, periodMs: 10_500 });
        assert.deepEqual(rateWindow(60, 0), { requests: 1, periodMs: 1000 });
        assert.deepEqual(rateWindow(100_000, 0), { requests: 1, periodMs: 1 });
        assert.match(cfg, /stick-table type string len 40 size 100k expire 60000ms store http_req_rate\(10500ms\),conn_cur/);
        const check = cfg.indexOf("table_http_req_rate(zto_gateway) ge 21");
        const track = cfg.indexOf("http-request track-sc0 var(txn.fingerprint)");
        const conn = cfg.indexOf("{ sc_conn_cur(0) gt 20 }");
        assert.ok(check > 0 && check < track && track < conn);
        // Retry-After on the gateway's own 429s only: a 429 from the filter keeps the filter's (or none).
        const lineAt = (i: number) => cfg.slice(cfg.lastIndexOf("\n", i) + 1, cfg.indexOf("\n", i));
        for (const rule of [check, conn]) assert.match(lineAt(rule), /^\s+http-request return status 429 content-type application\/json lf-string '[^']*rate_limited[^']*' hdr Retry-After 1 if /);
        assert.doesNotMatch(cfg, /http-after-response set-header Retry-After/);
    });

    test("upstream sees only allowlisted client headers, then the gateway's identity headers", () => {
        const del = cfg.indexOf("http-request del-header '^(?!(content-length|expect|content-type|accept|user-agent)$)' -m reg");
        assert.ok(del > 0);
        for (const line of [
            'http-request set-header Host "127.0.0.1:18080"',
            "http-request set-header X-Request-Id %[unique-id]",
            "http-request set-header X-Auth-Request-User %[var(txn.user)]",
            "http-request set-header X-Auth-Request-Groups %[var(txn.groups)] if { var(txn.groups) -m found }",
            "http-request set-header X-Device-Name %[var(txn.device)]",
        ]) {
            const at = cfg.indexOf(line);
            assert.ok(at > del, line);
        }
        assert.match(cfg, /option http-restrict-req-hdr-names delete/);
    });

    test("filter enabled: forwards to the filter; disabled: to Ollama", () => {
        assert.match(cfg, /server filter 127\.0\.0\.1:18080\n/);
        const prod = renderHaproxyCfg(VARIANTS["prod-like (identity none, tailscale, CORS, TLS 1.2, syslog udp, no filter, container DNS names)"]());
        assert.match(prod, /server ollama zto-prod-ollama:11434 resolvers zto_dns init-addr last,libc,none\n/);
        assert.match(prod, /set-header Host "zto-prod-ollama:11434"/);
        assert.doesNotMatch(cfg + prod, /\bcheck\b/, "no health checks: the stub must see only client requests");
    });

    test("security headers and the request id on every response, errors JSON with the request id", () => {
        for (const [name, value] of SECURITY_HEADERS) assert.ok(cfg.includes(`http-after-response set-header ${name} ${haproxyLiteral(value, name)}`), name);
        // The parser's own errors (before any rule) close the connection instead of an HTML page.
        for (const s of [400, 408, 501]) assert.match(cfg, new RegExp(`errorfile ${s} /dev/null\n`));
        for (const s of [403, 404, 405, 413, 429, 500, 502, 503, 504]) {
            assert.match(cfg, new RegExp(`http-error status ${s} content-type application/json lf-string '\\{"error":\\{"code":"[a-z_]+","message":"[a-z -]+","requestId":"%\\[unique-id\\]"\\}\\}'`));
        }
        for (const s of [413, 500, 502, 503, 504]) assert.match(cfg, new RegExp(`http-response return status ${s} .* if \\{ status ${s} \\}`));
        // The filter's 429 is its own JSON with the budget's Retry-After: it passes. Ollama's is masked, with the rate limit's Retry-After.
        assert.doesNotMatch(cfg, /http-response return status 429/);
        const noFilter = renderHaproxyCfg(VARIANTS["prod-like (identity none, tailscale, CORS, TLS 1.2, syslog udp, no filter, container DNS names)"]());
        assert.match(noFilter, /http-response return status 429 content-type application\/json lf-string '[^']*rate_limited[^']*' hdr Retry-After 1 if \{ status 429 \}/);
        assert.match(cfg, /http-response del-header \^access-control- -m reg/);
    });

    test("timeouts: slow clients bounded, long generations allowed, no buffering", () => {
        assert.match(cfg, /timeout http-request 10s\n\s+timeout client 10s\n/);
        assert.match(cfg, /timeout server 600s\n\s+timeout tunnel 600s\n/);
        assert.doesNotMatch(cfg, /compression|option http-buffer-request/);
    });

    test("JSON access log to stdout and syslog; no bodies, cookies, tokens or query strings", () => {
        assert.match(cfg, /log stdout len 8192 format raw local7 info/);
        assert.doesNotMatch(cfg, /log udp@|log tcp@/);
        const format = /log-format '(.*)'/.exec(cfg)![1];
        for (const f of ["time", "requestId", "device", "user", "groups", "method", "path", "endpoint", "status", "bytesSent", "requestTimeMs"]) assert.ok(format.includes(`"${f}":`), f);
        assert.doesNotMatch(format, /cookie|authorization|req\.body|%HU|%r\b|capture\.req\.uri|query/i);
        assert.match(renderHaproxyCfg(VARIANTS["syslog over tcp"]()), /log tcp@127\.0\.0\.1:6514 len 8192 format rfc5424 local7 info/);
    });

    test("CORS only for configured origins; without origins every Origin is refused", () => {
        assert.match(cfg, /status 403 .*origin_not_allowed.* if \{ req\.fhdr_cnt\(origin\) gt 0 \}$/m);
        assert.doesNotMatch(cfg, /Access-Control-Allow-Origin/);
        const prod = renderHaproxyCfg(VARIANTS["prod-like (identity none, tailscale, CORS, TLS 1.2, syslog udp, no filter, container DNS names)"]());
        assert.match(prod, /acl zto_origin_ok req\.fhdr\(origin\) -m str https:\/\/chat\.corp\.example\.com\n/);
        assert.match(prod, /http-request return status 204 .* if METH_OPTIONS \{ var\(txn\.cors_origin\) -m found \}/);
        assert.match(prod, /acl zto_host_ok .*100\\\.101\\\.102\\\.103/);
    });

    test("API keys: digests (never keys) in their own map, checked only when some device has one", () => {
        const files = renderHaproxyFiles(VARIANTS["API keys"]());
        assert.equal(files[HAPROXY_DEVICE_MAPS.apiKeyDigest], `${fingerprint(0)} ${apiKeyDigest("key-of-ci-runner")}\n`);
        assert.ok(!Object.values(files).some((f) => f.includes("key-of-ci-runner")));
        const keyed = files[HAPROXY_CONFIG_FILE];
        assert.match(keyed, /digest\(MD5\),ub64enc if \{ req\.fhdr\(authorization,1\) -m reg -i '\^Bearer \+\[A-Za-z0-9\]\{48\}\$' \}/);
        assert.match(keyed, /status 401 .*api_key_invalid.* if \{ var\(txn\.api_key_digest\) -m found \} !\{ var\(txn\.api_key_sent\) -m found \}/);
        assert.ok(keyed.indexOf("api_key_invalid") > keyed.indexOf("unknown_host") && keyed.indexOf("api_key_invalid") < keyed.indexOf("origin_not_allowed"));
        assert.doesNotMatch(cfg, /api_key/);
    });

    test("its JSON errors use nginx's codes and messages (one vocabulary for clients and the SIEM)", () => {
        const pairs = (text: string) => [...text.matchAll(/"code":"([a-z_]+)","message":"([^"]+)"/g)].map((m) => [m[1], m[2]] as const);
        const nginxMessages = new Map<string, Set<string>>();
        // nginx with sign-in renders its whole vocabulary (401 included).
        const nginx = renderNginxConf({ ...dev, kind: "nginx", identity: { provider: "oidc", oauth2Proxy: { host: "127.0.0.1", port: 4180 } } });
        for (const [code, message] of pairs(nginx)) nginxMessages.set(code, (nginxMessages.get(code) ?? new Set()).add(message));
        const ours = pairs(cfg);
        assert.ok(ours.length > 20);
        // 425 exists only in haproxy (TLS early data); everything else must match nginx exactly.
        for (const [code, message] of ours.filter(([c]) => c !== "too_early")) {
            assert.ok(nginxMessages.get(code)?.has(message), `${code} "${message}" is not what nginx answers (${[...(nginxMessages.get(code) ?? [])].join(" | ") || "unknown code"})`);
        }
    });

    test("pure: same spec, same text", () => {
        assert.equal(renderHaproxyCfg(dev), cfg);
    });
});

describe("unsafe or unsupported specs are refused, naming the field", () => {
    const dev = VARIANTS["dev-like (loopback, filter on)"]();
    const cases: [string, GatewaySpec, RegExp][] = [
        ["nginx kind", { ...dev, kind: "nginx" }, /gateway\.kind is "nginx"/],
        ["identity provider", { ...dev, identity: { provider: "oidc", oauth2Proxy: { host: "127.0.0.1", port: 4180 } } }, /identity\.provider is "oidc".*no auth_request/],
        ["key not beside the cert", { ...dev, tls: { ...dev.tls, key: "/etc/ssl/other.key" } }, /tls\.key must be the certificate file itself or ".*\.key"/],
        ["bad fingerprint", { ...dev, devices: [{ ...dev.devices[0], fingerprintSha1: "AB:CD" }] }, /device "alice-laptop": fingerprintSha1/],
        ["duplicate certificate", { ...dev, devices: [dev.devices[0], { ...dev.devices[1], fingerprintSha1: dev.devices[0].fingerprintSha1 }] }, /enrolled twice/],
        ["owner with a newline (map injection)", { ...dev, devices: [{ ...dev.devices[0], owner: "a@b.c\n0000 evil" }] }, /owner .* without whitespace/],
        ["header value with a newline", { ...dev, securityHeaders: [["X-Test", "a\nb"]] }, /security header X-Test: control characters/],
        ["header name injection", { ...dev, securityHeaders: [["X-Test if", "a"]] }, /security header name/],
        ["wildcard origin", { ...dev, corsOrigins: ["*"] }, /gateway\.corsOrigins: "\*"/],
        ["path with a space", { ...dev, tls: { ...dev.tls, ca: "/tmp/a b/ca.crt" } }, /tls\.ca: .* must be an absolute path/],
        ["zero rate", { ...dev, limits: { ...dev.limits, ratePerMinute: 0 } }, /limits\.ratePerMinute must be at least 1/],
        ["relative access log", { ...dev, logging: { ...dev.logging, accessLog: "access.log" } }, /logging\.accessLog/],
    ];
    for (const [name, spec, message] of cases) {
        test(name, () => assert.throws(() => renderHaproxyCfg(spec), (e: Error) => e instanceof HaproxyRenderError && message.test(e.message)));
    }

    test("literal values cannot break out of their quotes", () => {
        assert.equal(haproxyLiteral(`a"b\\c$HOME 100%`, "x"), `"a\\"b\\\\c\\$HOME 100%%"`);
    });
});

describe("config: what the haproxy gateway cannot honour is a config error", () => {
    for (const provider of ["entra", "oidc"] as const) {
        test(`identity.provider ${provider} with gateway.kind haproxy`, () => {
            const identity =
                provider === "entra"
                    ? { provider, tenantId: "00000000-1111-2222-3333-444444444444", allowedEmailDomains: ["example.com"] }
                    : { provider, issuerUrl: "https://login.example.com/realms/main", clientId: "zto", allowedEmailDomains: ["example.com"] };
            const r = parseStackConfig({ domain: "ollama.test", gateway: { kind: "haproxy" }, identity, ...(provider === "oidc" ? { oidcClientSecret: "s" } : {}) });
            assert.equal(r.ok, false);
            const problem = !r.ok && r.problems.find((p) => p.path === "zero-trust-ollama:identity.provider");
            assert.ok(problem, JSON.stringify(!r.ok && r.problems));
            assert.match(problem.message, /needs the nginx gateway .*use gateway\.kind: nginx, or identity\.provider: none/);
        });
    }

    test("the same stack with identity none is accepted", () => {
        assert.equal(parseStackConfig({ domain: "ollama.test", gateway: { kind: "haproxy" }, siem: { syslogAddress: "tcp://10.0.0.5:6514" } }).ok, true);
    });
});

describe("Gateway component with gateway.kind haproxy (Pulumi mocks)", () => {
    const CONTAINER = "docker:index/container:Container";
    const stack = (devices: string[], gateway = "    listen: loopback", extra = "") =>
        parseStackFile(
            [
                "config:",
                "  zero-trust-ollama:domain: ollama.example.internal",
                "  zero-trust-ollama:devices:",
                ...devices.map((d) => `    - name: ${d}\n      owner: ${d}@example.com\n      groups: [team-${d}]\n      tailscaleDeviceId: n${Buffer.from(d).toString("hex").slice(0, 12)}CNTRL`),
                `  zero-trust-ollama:gateway:\n    kind: haproxy\n    port: 9443\n${gateway}`,
                extra,
            ].join("\n") + "\n",
            "haproxy.yaml",
        );
    async function gatewayOf(file: ReturnType<typeof stack>) {
        const r = await runProgramUnderMocks(file);
        if (!r.ok) throw new Error(`config rejected: ${JSON.stringify(r.problems)}`);
        const published = r.resources.filter((x) => x.type === CONTAINER && (x.inputs.ports ?? []).length > 0);
        assert.deepEqual(published.map((x) => x.name), ["gateway-container"], "the gateway is the only published container");
        const writer = r.resources.find((x) => x.type === CONTAINER && x.name === "gateway-config-writer");
        assert.ok(writer, "the config writer");
        return { all: r.resources, container: published[0], writer };
    }
    /** The writer's upload of a file, by its path relative to the generation (the writer's argument). */
    const upload = (w: RecordedResource, name: string) => {
        const u = (w.inputs.uploads as { file: string; content: string; permissions: string; owner: string }[]).find((x) => x.file === `${HAPROXY_GATEWAY_CONFIG_DIR}/generations/${w.inputs.command[2]}/${name}`);
        assert.ok(u, `upload ${name}`);
        return u;
    };
    const deviceMap = (c: RecordedResource) => new Map(upload(c, HAPROXY_DEVICE_MAPS.name).content.trim().split("\n").map((l) => l.split(" ") as [string, string]));

    test("pinned haproxy image, one port on 127.0.0.1 (or the Tailscale IP), hardened, non-root", async () => {
        const { all, container } = await gatewayOf(stack(["alice-laptop"]));
        const c = container.inputs;
        assert.equal(all.find((x) => x.type === "docker:index/remoteImage:RemoteImage" && x.name === "gateway-image")?.inputs.name, "haproxy:2.8.15-alpine");
        assert.deepEqual(c.ports, [{ internal: GATEWAY_CONTAINER_PORT, external: 9443, ip: "127.0.0.1", protocol: "tcp" }]);
        assert.equal(c.user, "99:99");
        assert.equal(c.readOnly, true);
        assert.deepEqual(c.capabilities, { drops: ["ALL"] });
        assert.equal(c.uploads, undefined, "the config comes through the volume, so a new one replaces nothing");
        assert.deepEqual(c.entrypoints, ["/bin/sh", "-c"]);
        const cfgPath = `${HAPROXY_GATEWAY_CONFIG_DIR}/current/haproxy.cfg`;
        assert.deepEqual(c.command, [
            gatewaySupervisorScript({ kind: "haproxy", link: `${HAPROXY_GATEWAY_CONFIG_DIR}/current`, run: ["haproxy", "-W", "-db", "-f", cfgPath], check: ["haproxy", "-c", "-q", "-f", cfgPath] }),
            "zto-gateway",
        ]);
        assert.match(c.healthcheck.tests.join(" "), /127\.0\.0\.1 8443/);
        const ts = await gatewayOf(stack(["alice-laptop"], "    listen: tailscale", "  zero-trust-ollama:tailscale:\n    enabled: true\n    serverAddress: 100.101.102.103"));
        assert.deepEqual(ts.container.inputs.ports, [{ internal: GATEWAY_CONTAINER_PORT, external: 9443, ip: "100.101.102.103", protocol: "tcp" }]);
    });

    test("uploads the rendered haproxy.cfg and device maps; the key sits at <cert>.key, secret, 0400", async () => {
        const { writer: container } = await gatewayOf(stack(["alice-laptop", "bob-laptop"]));
        const cfg = upload(container, "haproxy.cfg").content;
        const tls = `${HAPROXY_GATEWAY_CONFIG_DIR}/current/tls`;
        assert.match(cfg, new RegExp(`bind 0\\.0\\.0\\.0:8443 ssl crt ${tls}/server\\.pem ca-file ${tls}/device-ca\\.crt verify required`));
        assert.match(cfg, /hard-stop-after 120s/, "a reload's old worker is stopped after gateway.reloadDrainSeconds");
        assert.match(cfg, /server filter zto-mock-filter:\d+ resolvers zto_dns/);
        assert.deepEqual([...deviceMap(container).values()].sort(), ["alice-laptop", "bob-laptop"]);
        const key = upload(container, "tls/server.pem.key");
        assert.equal(key.permissions, "0400");
        assert.equal(key.owner, "99");
        const masked = container.maskedInputs.uploads as { file: string; content: string }[];
        assert.equal(masked.find((u) => u.file.endsWith("server.pem.key"))?.content, "[secret]");
        assert.notEqual(masked.find((u) => u.file.endsWith("haproxy.cfg"))?.content, "[secret]");
    });

    test("removing a device changes only its map lines", async () => {
        const three = await gatewayOf(stack(["alice-laptop", "bob-laptop", "carol-phone"]));
        const two = await gatewayOf(stack(["alice-laptop", "carol-phone"]));
        assert.deepEqual(two.container.inputs, three.container.inputs, "the gateway container is not touched: the writer carries the change");
        const [before, after] = [three.writer, two.writer];
        const bobFp = [...deviceMap(before)].find(([, n]) => n === "bob-laptop")![0];
        assert.equal(upload(after, "haproxy.cfg").content, upload(before, "haproxy.cfg").content, "the config itself is unchanged");
        for (const map of Object.values(HAPROXY_DEVICE_MAPS)) {
            const withoutBob = upload(before, map).content.split("\n").filter((l) => !l.startsWith(bobFp)).join("\n");
            assert.equal(upload(after, map).content, withoutBob, map);
        }
    });
});
