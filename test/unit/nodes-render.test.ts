/**
 * The node pool as rendered nginx: the enclave proxy (renderEnclaveConf over a NodeSpec) and the
 * gateway's pool router, both accepted by the real `nginx -t`, with their rules checked in the text.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadStackConfig, nodePoolSettings } from "../../components/config";
import { renderEnclaveConf } from "../../components/gateway/enclave";
import { ENDPOINTS } from "../../components/gateway/endpoints";
import { renderNginxConf } from "../../components/gateway/nginx/gateway";
import { MODEL_ROUTING_HEADER, nodePools } from "../../components/gateway/nginx/pool";
import { NginxRenderError } from "../../components/gateway/nginx/syntax";
import { deriveNodePool, deriveNodeSpec, NODE_TLS_NAME } from "../../components/gateway/node-spec";
import { deriveGatewaySpec } from "../../components/gateway/spec";
import { readStackFile } from "../../components/stack-file";
import { renderTailnetPolicy } from "../../components/tailnet/acl";
import { createCa, issueCert } from "../../scripts/sandbox/pki";
import { tempDir } from "../e2e/harness";
import { nginxSyntaxProblems } from "./nginx-check";

const dir = tempDir("zto-nodes-unit-");
const tls = { cert: join(dir, "server.crt"), key: join(dir, "server.key"), ca: join(dir, "ca.crt") };
createCa({ cert: tls.ca, key: join(dir, "ca.key") }, "unit CA", 30);
issueCert({ cert: tls.ca, key: join(dir, "ca.key") }, { cert: tls.cert, key: tls.key }, { commonName: "n", usage: "server", dnsNames: [NODE_TLS_NAME], notAfter: new Date(Date.now() + 86_400_000) });
const GATEWAY_FP = "c".repeat(40);

const nginxT = (conf: string) => nginxSyntaxProblems(conf, dir);

const placement = { listen: { host: "127.0.0.1", port: 21443 }, tlsFiles: tls, ollama: { host: "127.0.0.1", port: 21434 }, runtimeDir: join(dir, "run"), accessLog: join(dir, "access.log"), errorLog: join(dir, "error.log") };

describe("enclave proxy (renderEnclaveConf)", () => {
    const conf = renderEnclaveConf(deriveNodeSpec("gpu-a", { maxBodyKiB: 1024, upstreamTimeoutSeconds: 600 }, GATEWAY_FP.toUpperCase(), placement));

    test("nginx -t accepts it", () => assert.equal(nginxT(conf), ""));

    test("binds only the given address, requires a client certificate and admits only the gateway's", () => {
        assert.match(conf, /^\s+listen 127\.0\.0\.1:21443 ssl;$/m);
        assert.equal((conf.match(/^\s+listen /gm) ?? []).length, 1);
        assert.match(conf, /^\s+ssl_verify_client on;$/m);
        assert.match(conf, new RegExp(`map \\$ssl_client_fingerprint \\$zto_gateway \\{\\n\\s+default "";\\n\\s+${GATEWAY_FP} "gateway";\\n\\s+\\}`));
        assert.match(conf, /if \(\$zto_gateway = ""\) \{ return 403 /);
    });

    test("forwards only the endpoint table, on the raw target, to its own Ollama", () => {
        for (const e of ENDPOINTS) assert.ok(conf.includes(` ${e.id};\n`), `endpoint ${e.id} in the allowlist map`);
        assert.match(conf, /map \$request_uri \$zto_endpoint/);
        assert.match(conf, /proxy_pass http:\/\/zto_ollama\$request_uri;/);
        assert.match(conf, /server 127\.0\.0\.1:21434 max_fails=0;/);
        assert.match(conf, /proxy_pass_request_headers off;/);
        assert.match(conf, /proxy_buffering off;/);
    });

    test("refuses unsafe specs", () => {
        assert.throws(() => renderEnclaveConf(deriveNodeSpec("gpu-a", { maxBodyKiB: 1024, upstreamTimeoutSeconds: 600 }, "not-hex", placement)), NginxRenderError);
        assert.throws(() => renderEnclaveConf(deriveNodeSpec("gpu-a", { maxBodyKiB: 1024, upstreamTimeoutSeconds: 600 }, GATEWAY_FP, { ...placement, listen: { host: "0.0.0.0 ssl; listen 80", port: 1 } })), NginxRenderError);
    });
});

describe("gateway node pool (renderNginxConf with nodePool)", () => {
    const cfg = loadStackConfig(readStackFile("test/fixtures/Pulumi.nodes.yaml").raw);
    const settings = nodePoolSettings(cfg)!;
    const enclaves = { "gpu-a": { host: "100.101.1.1", port: 11443 }, "gpu-b": { host: "100.101.1.2", port: 11443 }, "gpu-c": { host: "100.101.1.3", port: 11443 } };
    const router = { host: "127.0.0.1", port: 21480 };
    const pool = deriveNodePool(settings, enclaves, tls, router);
    const spec = deriveGatewaySpec(cfg, { "alice-laptop": { fingerprintSha1: "a".repeat(40), serial: "01" } }, {
        ...placement,
        listen: { host: "127.0.0.1", port: 21444 },
        ollama: router,
        filter: { host: "127.0.0.1", port: 21081 },
        nodePool: pool,
    });
    const conf = renderNginxConf(spec);

    test("nginx -t accepts it", () => assert.equal(nginxT(conf), ""));

    test("one upstream per set of nodes serving a model, least connections, passive health", () => {
        const p = nodePools(pool);
        assert.deepEqual(Object.fromEntries([...p.members].map(([k, v]) => [k, v.map((n) => n.name)])), {
            zto_pool_0: ["gpu-a", "gpu-b", "gpu-c"],
            zto_pool_1: ["gpu-a", "gpu-b"],
            zto_pool_2: ["gpu-a"],
            zto_pool_3: ["gpu-c"],
        });
        assert.deepEqual(Object.fromEntries(p.byModel), { "llama3.2:3b": "zto_pool_1", "qwen2.5-coder:7b": "zto_pool_2", "llama3.1:70b": "zto_pool_3" });
        assert.equal(p.fallback, "zto_pool_1", "inference without a model goes to the default model's nodes");
        assert.equal(p.all, "zto_pool_0", "metadata without a model may go to any node");
        assert.match(conf, /upstream zto_pool_3 \{\n\s+# [^\n]+\n\s+zone zto_pool_3 64k;\n\s+least_conn;\n\s+server 100\.101\.1\.3:11443 max_fails=1 fail_timeout=30s; # gpu-c\n/);
        assert.match(conf, new RegExp(`map \\$http_${MODEL_ROUTING_HEADER.toLowerCase().replace(/-/g, "_")} \\$zto_pool \\{\\n\\s+default \\$zto_fallback_pool;`));
    });

    test("the router talks mTLS to enclaves with the gateway's certificate and verifies them", () => {
        const router = conf.slice(conf.indexOf("# Router:"));
        assert.match(router, /listen 127\.0\.0\.1:21480;/);
        assert.match(router, /proxy_pass https:\/\/\$zto_pool\$request_uri;/);
        assert.match(router, /proxy_ssl_certificate "[^"]+server\.crt";/);
        assert.match(router, /proxy_ssl_verify on;/);
        assert.match(router, new RegExp(`proxy_ssl_name ${NODE_TLS_NAME.replace(/\./g, "\\.")};`));
    });

    test("metadata is retried on another node; inference moves on only before any answer, never after a timeout", () => {
        const router = conf.slice(conf.indexOf("# Router:"));
        const start = router.indexOf("location = /api/tags {");
        const tags = router.slice(start, router.indexOf("location ", start + 1));
        assert.match(tags, /proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;/);
        const inference = router.slice(router.indexOf("location / {"));
        const directive = /proxy_next_upstream ([^;]*);/.exec(inference)![1].split(" ");
        assert.deepEqual(directive.sort(), ["error", "http_502", "http_503", "non_idempotent"]);
        assert.ok(!directive.includes("timeout") && !directive.includes("http_504"), "a slow generation is never replayed on another node");
    });

    test("a single-node spec renders no pool at all", () => {
        const single = renderNginxConf({ ...spec, nodePool: undefined });
        assert.doesNotMatch(single, /zto_pool|# Router:|proxy_ssl_certificate/);
    });
});

describe("tailnet policy with a node pool (renderTailnetPolicy)", () => {
    const base = { serverTag: "tag:ai-server", clientTag: "tag:ai-client", gatewayPort: 443, allowedUsers: ["carol@example.com"], tagOwners: ["autogroup:admin"] };

    test("without nodes the policy is exactly the single-server one", () => {
        const plain = renderTailnetPolicy(base);
        assert.equal(JSON.stringify(plain).includes("ai-node"), false);
        assert.deepEqual(renderTailnetPolicy({ ...base, nodes: undefined }), plain);
    });

    test("only the server tag may open the enclave port on nodes; every client source is tested denied", () => {
        const p = renderTailnetPolicy({ ...base, nodes: { tag: "tag:ai-node", enclavePort: 11443 } });
        const toNodes = p.grants.filter((gr) => gr.dst.includes("tag:ai-node"));
        assert.deepEqual(toNodes, [{ src: ["tag:ai-server"], dst: ["tag:ai-node"], ip: ["tcp:11443"] }]);
        assert.deepEqual(p.tests.find((t) => t.src === "tag:ai-server"), { src: "tag:ai-server", accept: ["tag:ai-node:11443"], deny: ["tag:ai-node:22", "tag:ai-node:11434", "tag:ai-node:11444"] });
        for (const src of ["tag:ai-client", "carol@example.com"]) {
            const t = p.tests.find((x) => x.src === src)!;
            assert.ok(t.deny.includes("tag:ai-node:11443"), `${src} is tested denied on the enclave port`);
            assert.deepEqual(t.accept, ["tag:ai-server:443"]);
        }
    });
});
