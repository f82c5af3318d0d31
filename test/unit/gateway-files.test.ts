/**
 * gatewayFiles, called directly (no Pulumi): which files one config generation holds, who owns
 * them, which are secrets, and what the rendered config says about the devices, the neighbours
 * and the paths inside the container. The component under mocks is test/unit/gateway.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadStackConfig, nodePoolSettings } from "../../components/config";
import { gatewayFileLayout, gatewayFiles, NODE_ROUTER_PORT, type GatewayFile, type GatewayFileArgs } from "../../components/gateway/files";
import { HAPROXY_DEVICE_MAPS } from "../../components/gateway/haproxy";

const fingerprint = (n: number) => n.toString(16).padStart(2, "0").repeat(20);
const DEVICES = { alice: { fingerprintSha1: fingerprint(1), serial: "01" }, bob: { fingerprintSha1: fingerprint(2), serial: "02" } };
const PEMS = { caCertPem: "CA PEM", serverCertPem: "SERVER CERT PEM", serverKeyPem: "SERVER KEY PEM" };

function argsFor(raw: Record<string, unknown>, over: Partial<GatewayFileArgs> = {}): GatewayFileArgs {
    const config = loadStackConfig({
        domain: "ollama.test",
        devices: [
            { name: "alice", owner: "alice@example.com", groups: ["ml"] },
            { name: "bob", owner: "bob@example.com" },
        ],
        ...raw,
    });
    return { config, ollama: { host: "zto-ollama", port: 11434 }, filter: config.filter.enabled ? { host: "zto-filter", port: 8088 } : undefined, ...PEMS, ...over };
}

const byName = (files: readonly GatewayFile[]) => Object.fromEntries(files.map((f) => [f.relative, f]));
const layoutOf = (files: readonly GatewayFile[]) => files.map(({ content: _content, ...layout }) => layout);

describe("gatewayFiles", () => {
    test("nginx: the config and the TLS files, owned by the nginx user; only the key is private and secret", () => {
        const files = gatewayFiles(argsFor({}), DEVICES);
        assert.deepEqual(
            files.map((f) => [f.relative, f.owner, f.group, f.permissions, f.secret]),
            [
                ["nginx.conf", "101", "101", "0444", false],
                ["tls/server.crt", "101", "101", "0444", false],
                ["tls/device-ca.crt", "101", "101", "0444", false],
                ["tls/server.key", "101", "101", "0400", true],
            ],
        );
        const f = byName(files);
        assert.equal(f["tls/server.crt"].content, PEMS.serverCertPem);
        assert.equal(f["tls/device-ca.crt"].content, PEMS.caCertPem);
        assert.equal(f["tls/server.key"].content, PEMS.serverKeyPem);
        assert.ok(!f["nginx.conf"].content.includes(PEMS.serverKeyPem), "the key is never in the config");
    });

    test("nginx: the config reads its TLS files and ticket keys through the current link and listens on the container port", () => {
        const conf = byName(gatewayFiles(argsFor({}), DEVICES))["nginx.conf"].content;
        assert.match(conf, /ssl_certificate "\/etc\/nginx\/zto\/current\/tls\/server\.crt";/);
        assert.match(conf, /ssl_certificate_key "\/etc\/nginx\/zto\/current\/tls\/server\.key";/);
        assert.match(conf, /ssl_client_certificate "\/etc\/nginx\/zto\/current\/tls\/device-ca\.crt";/);
        assert.match(conf, /ssl_session_ticket_key "\/etc\/nginx\/zto\/current\/tls\/session-ticket\.key";/);
        assert.match(conf, /listen 0\.0\.0\.0:8443 ssl/);
        assert.match(conf, /server zto-filter:8088/, "allowed requests go to the filter");
        const noTickets = byName(gatewayFiles(argsFor({ gateway: { tlsTicketLifetimeSeconds: 0 } }), DEVICES))["nginx.conf"].content;
        assert.doesNotMatch(noTickets, /ssl_session_ticket_key/);
    });

    test("the allowlist is the enrolled devices: a revoked device's fingerprint is gone, every other file unchanged", () => {
        const both = byName(gatewayFiles(argsFor({}), DEVICES));
        for (const d of Object.values(DEVICES)) assert.ok(both["nginx.conf"].content.includes(d.fingerprintSha1));
        const revoked = argsFor({ devices: [{ name: "alice", owner: "alice@example.com", groups: ["ml"] }] });
        const aliceOnly = byName(gatewayFiles(revoked, { alice: DEVICES.alice }));
        assert.ok(aliceOnly["nginx.conf"].content.includes(DEVICES.alice.fingerprintSha1));
        assert.ok(!aliceOnly["nginx.conf"].content.includes(DEVICES.bob.fingerprintSha1), "bob is no longer admitted");
        for (const name of ["tls/server.crt", "tls/device-ca.crt", "tls/server.key"]) assert.deepEqual(aliceOnly[name], both[name], name);
    });

    test("a configured device without certificate facts is refused, not skipped", () => {
        assert.throws(() => gatewayFiles(argsFor({}), { alice: DEVICES.alice }), /no certificate for device "bob"/);
    });

    test("with an API key device the config holds key digests: it is uploaded as a secret", () => {
        const args = argsFor({ devices: [{ name: "alice", owner: "alice@example.com", apiKey: true }] });
        const conf = byName(gatewayFiles(args, { alice: { ...DEVICES.alice, apiKeyDigest: "d".repeat(22) } }))["nginx.conf"];
        assert.equal(conf.secret, true);
        assert.equal(conf.permissions, "0444", "still readable by the gateway user");
        assert.ok(conf.content.includes("d".repeat(22)));
    });

    test("haproxy: the config, its device maps and the key beside the certificate, owned by the haproxy user", () => {
        const files = gatewayFiles(argsFor({ gateway: { kind: "haproxy" } }), DEVICES);
        assert.deepEqual(
            files.map((f) => [f.relative, f.owner, f.permissions, f.secret]),
            [
                ["haproxy.cfg", "99", "0444", false],
                ...Object.values(HAPROXY_DEVICE_MAPS).map((m) => [m, "99", "0444", false]),
                ["tls/server.pem", "99", "0444", false],
                ["tls/device-ca.crt", "99", "0444", false],
                ["tls/server.pem.key", "99", "0400", true],
            ],
        );
        const f = byName(files);
        assert.match(f["haproxy.cfg"].content, /crt \/usr\/local\/etc\/haproxy\/zto\/current\/tls\/server\.pem /);
        assert.equal(f[HAPROXY_DEVICE_MAPS.name].content, `${fingerprint(1)} alice\n${fingerprint(2)} bob\n`);
    });

    test("node pool: the gateway's client certificate towards the enclaves, the router on loopback, each node on its Tailscale address", () => {
        const config = loadStackConfig({
            domain: "ollama.test",
            devices: [{ name: "alice", owner: "alice@example.com", tailscaleDeviceId: "nAlice0001" }],
            tailscale: { enabled: true },
            filter: { enabled: false },
            ollama: { nodes: [{ name: "gpu-1", dockerHost: "ssh://ops@gpu-1", tailscaleAddress: "100.64.0.7", models: ["llama3.2:3b"] }] },
        });
        const args: GatewayFileArgs = { config, ollama: { host: "unused", port: 1 }, ...PEMS, nodePool: { settings: nodePoolSettings(config)!, clientCertPem: "CLIENT CERT", clientKeyPem: "CLIENT KEY" } };
        const files = gatewayFiles(args, { alice: DEVICES.alice });
        const f = byName(files);
        assert.deepEqual([f["tls/node-client.crt"].content, f["tls/node-client.crt"].secret], ["CLIENT CERT", false]);
        assert.deepEqual([f["tls/node-client.key"].content, f["tls/node-client.key"].permissions, f["tls/node-client.key"].secret], ["CLIENT KEY", "0400", true]);
        const conf = f["nginx.conf"].content;
        assert.match(conf, new RegExp(`server 127\\.0\\.0\\.1:${NODE_ROUTER_PORT} `), "the gateway's hop is its own pool router");
        assert.match(conf, /server 100\.64\.0\.7:11443 .*# gpu-1/);
        assert.match(conf, /proxy_ssl_certificate "\/etc\/nginx\/zto\/current\/tls\/node-client\.crt";/);
        assert.ok(!conf.includes("unused:1"), "the single-node Ollama address is not used with a pool");
    });

    test("the layout is what gatewayFiles fills in, known from plain config alone", () => {
        for (const raw of [{}, { gateway: { kind: "haproxy" } }, { devices: [{ name: "alice", owner: "alice@example.com", apiKey: true }] }]) {
            const args = argsFor(raw);
            const devices = Object.fromEntries(args.config.devices.map((d) => [d.name, { ...DEVICES[d.name as keyof typeof DEVICES], apiKeyDigest: d.apiKey ? "e".repeat(22) : undefined }]));
            assert.deepEqual(layoutOf(gatewayFiles(args, devices)), gatewayFileLayout(args.config, false));
        }
    });
});
