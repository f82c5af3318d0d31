/**
 * The one table of gateway kinds: every kind's renderer returns exactly the files it describes,
 * the commands the container, the sandbox and the benchmark run come from it, and a name that
 * is not a kind (or an Object.prototype key) is refused.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { GATEWAY_KINDS, isGatewayKind, type GatewayKind } from "../../components/gateway/kinds";
import { deriveGatewaySpec } from "../../components/gateway/spec";

const specOf = (kind: GatewayKind) =>
    deriveGatewaySpec(loadStackConfig({ domain: "ollama.test", gateway: { kind }, filter: { enabled: false } }), {}, {
        listen: { host: "127.0.0.1", port: 18443 },
        // haproxy loads the key from the certificate file or `<cert>.key`.
        tlsFiles: { cert: "/state/server.pem", key: "/state/server.pem", ca: "/state/ca.crt" },
        ollama: { host: "127.0.0.1", port: 11434 },
        runtimeDir: "/state/run",
        accessLog: "/state/access.log",
        errorLog: "/state/error.log",
    });

describe("gateway kinds", () => {
    for (const [kind, described] of Object.entries(GATEWAY_KINDS) as [GatewayKind, (typeof GATEWAY_KINDS)[GatewayKind]][]) {
        test(`${kind}: the renderer returns exactly the described files, the config file among them`, () => {
            const files = described.render(specOf(kind));
            assert.deepEqual(Object.keys(files).sort(), [...described.files].sort());
            assert.ok(described.files.includes(described.configFile));
            assert.ok(files[described.configFile].length > 0);
        });
        test(`${kind}: check and run name the binary and the config file`, () => {
            for (const argv of [described.check("/c/x.conf", { errorLog: "stderr" }), described.run("/c/x.conf", { errorLog: "stderr" })]) {
                assert.equal(argv[0], described.binary);
                assert.ok(argv.includes("/c/x.conf"));
            }
            assert.ok(described.files.every((f) => !f.startsWith("/")), "file names are relative to one directory");
        });
    }

    test("nginx: the prefix (with its trailing slash) and the pre-config error log reach both commands", () => {
        const at = { errorLog: "/s/error.log", prefix: "/s/run" };
        assert.deepEqual(GATEWAY_KINDS.nginx.check("/s/nginx.conf", at), ["nginx", "-t", "-q", "-c", "/s/nginx.conf", "-p", "/s/run/", "-e", "/s/error.log"]);
        assert.deepEqual(GATEWAY_KINDS.nginx.run("/s/nginx.conf", at), ["nginx", "-c", "/s/nginx.conf", "-p", "/s/run/", "-e", "/s/error.log", "-g", "daemon off;"]);
        assert.equal(GATEWAY_KINDS.nginx.pidFile("/s/run"), "/s/run/nginx.pid");
        assert.match(GATEWAY_KINDS.nginx.render(specOf("nginx"))["nginx.conf"], /^pid "\/state\/run\/nginx\.pid";$/m, "the pid file is the one the renderer writes");
    });

    test("haproxy: a master-worker in the foreground, writing its pid only where asked", () => {
        assert.deepEqual(GATEWAY_KINDS.haproxy.run("/s/haproxy.cfg", { errorLog: "stderr" }), ["haproxy", "-W", "-db", "-f", "/s/haproxy.cfg"]);
        assert.deepEqual(GATEWAY_KINDS.haproxy.run("/s/haproxy.cfg", { errorLog: "stderr", pidFile: "/s/run/haproxy.pid" }), ["haproxy", "-W", "-db", "-f", "/s/haproxy.cfg", "-p", "/s/run/haproxy.pid"]);
        assert.deepEqual(GATEWAY_KINDS.haproxy.check("/s/haproxy.cfg", { errorLog: "stderr" }), ["haproxy", "-c", "-q", "-f", "/s/haproxy.cfg"]);
        assert.equal(GATEWAY_KINDS.haproxy.tls.key, `${GATEWAY_KINDS.haproxy.tls.cert}.key`, "keyBesideCert: the container's key sits at <cert>.key");
    });

    test("isGatewayKind: only the described kinds", () => {
        assert.deepEqual(Object.keys(GATEWAY_KINDS).filter(isGatewayKind), ["nginx", "haproxy"]);
        for (const name of ["", "NGINX", "envoy", "constructor", "__proto__", "toString"]) assert.equal(isGatewayKind(name), false, name);
    });
});
