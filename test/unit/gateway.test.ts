/**
 * The Gateway component under Pulumi mocks: one published port on the right host address, the
 * rendered allowlist uploaded, revocation touching only the allowlist, key material secret.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkPublishAddress, GATEWAY_CONFIG_FILE, GATEWAY_CONTAINER_PORT } from "../../components/gateway";
import { parseStackFile, readStackFile, type StackFile } from "../../components/stack-file";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";

const CONTAINER = "docker:index/container:Container";
const COMPONENT = "zero-trust-ollama:gateway:Gateway";

function stack(opts: { devices?: string[]; gateway?: string; tailscale?: string } = {}): StackFile {
    const devices = opts.devices ?? ["alice-laptop", "bob-laptop"];
    const deviceYaml = devices.map((d) => `    - name: ${d}\n      owner: ${d}@example.com\n      groups: [team-${d}]\n      tailscaleDeviceId: n${Buffer.from(d).toString("hex").slice(0, 12)}CNTRL\n`).join("");
    return parseStackFile(
        [
            "config:",
            "  zero-trust-ollama:domain: ollama.example.internal",
            `  zero-trust-ollama:devices:\n${deviceYaml || "    []\n"}`.trimEnd(),
            `  zero-trust-ollama:gateway:\n    port: 9443\n${opts.gateway ?? "    listen: loopback"}`,
            opts.tailscale ?? "",
        ].join("\n") + "\n",
        "gateway.yaml",
    );
}

async function gatewayOf(file: StackFile) {
    const r = await runProgramUnderMocks(file);
    if (!r.ok) throw new Error(`config rejected: ${JSON.stringify(r.problems)}`);
    const component = r.resources.filter((x) => x.type === COMPONENT);
    assert.equal(component.length, 1, "exactly one Gateway component");
    const containers = r.resources.filter((x) => x.type === CONTAINER && x.name === "gateway-container");
    assert.equal(containers.length, 1, "exactly one gateway container");
    assert.equal(containers[0].parent, component[0].urn, "the container is the component's child");
    return { all: r.resources, container: containers[0] };
}

const upload = (c: RecordedResource, file: string) => {
    const u = (c.inputs.uploads as { file: string; content: string; permissions?: string; owner?: string }[]).find((x) => x.file === file);
    assert.ok(u, `upload ${file} present`);
    return u;
};

/** The device allowlist map of a rendered nginx.conf: fingerprint -> device name. */
function allowlist(conf: string): Map<string, string> {
    const block = /map \$ssl_client_fingerprint \$zto_device \{([\s\S]*?)\}/.exec(conf);
    assert.ok(block, "device allowlist map rendered");
    return new Map([...block[1].matchAll(/^\s*([0-9a-f]{40}) "([^"]+)";$/gm)].map((m) => [m[1], m[2]]));
}

describe("Gateway container", () => {
    test("loopback: exactly one published port, on 127.0.0.1, container port 8443", async () => {
        const { container } = await gatewayOf(stack());
        assert.deepEqual(container.inputs.ports, [{ internal: GATEWAY_CONTAINER_PORT, external: 9443, ip: "127.0.0.1", protocol: "tcp" }]);
    });

    test("tailscale: the single port is bound to the server's Tailscale IP, never a wildcard", async () => {
        const { container } = await gatewayOf(stack({ gateway: "    listen: tailscale", tailscale: "  zero-trust-ollama:tailscale:\n    enabled: true\n    serverAddress: 100.101.102.103" }));
        assert.deepEqual(container.inputs.ports, [{ internal: GATEWAY_CONTAINER_PORT, external: 9443, ip: "100.101.102.103", protocol: "tcp" }]);
    });

    test("wildcard publish addresses are refused", () => {
        for (const a of ["0.0.0.0", "::", "[::]", ""]) assert.throws(() => checkPublishAddress(a), /every interface/);
        assert.equal(checkPublishAddress("127.0.0.1"), "127.0.0.1");
    });

    test("hardened: non-root, read-only root, no capabilities, both networks, healthcheck, pinned image", async () => {
        const { all, container } = await gatewayOf(stack());
        const c = container.inputs;
        assert.equal(c.user, "101:101");
        assert.equal(c.readOnly, true);
        assert.deepEqual(c.capabilities, { drops: ["ALL"] }, "nothing added back: 8443 needs no NET_BIND_SERVICE");
        assert.deepEqual(c.securityOpts, ["no-new-privileges:true"]);
        assert.ok(c.tmpfs["/tmp"], "tmpfs for nginx temp files");
        assert.equal(c.networksAdvanced.length, 2);
        assert.ok(c.networksAdvanced.some((n: { name: string }) => /-edge$/.test(n.name)) && c.networksAdvanced.some((n: { name: string }) => /-internal$/.test(n.name)));
        assert.deepEqual(c.command, ["-c", GATEWAY_CONFIG_FILE, "-e", "stderr", "-g", "daemon off;"]);
        assert.match(c.healthcheck.tests.join(" "), /https:\/\/127\.0\.0\.1:8443\//);
        const image = all.find((x) => x.type === "docker:index/remoteImage:RemoteImage" && x.name === "gateway-image");
        assert.equal(image?.inputs.name, "nginx:1.28.0-alpine");
    });

    test("the uploaded nginx.conf allowlists each device fingerprint and listens on 8443", async () => {
        const { container } = await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"] }));
        const conf = upload(container, GATEWAY_CONFIG_FILE).content;
        assert.deepEqual([...allowlist(conf).values()].sort(), ["alice-laptop", "bob-laptop", "carol-phone"]);
        assert.match(conf, /listen 0\.0\.0\.0:8443 ssl default_server;/);
        assert.match(conf, /ssl_verify_client on;/);
    });

    test("the server key is uploaded as a secret, readable by nginx only; certificates are not secret", async () => {
        const { container } = await gatewayOf(stack());
        assert.ok(container.secretInputs.includes("uploads"), "uploads carry a secret");
        const masked = container.maskedInputs.uploads as { file: string; content: string }[];
        assert.equal(masked.find((u) => u.file.endsWith("server.key"))?.content, "[secret]");
        assert.notEqual(masked.find((u) => u.file.endsWith("server.crt"))?.content, "[secret]");
        const key = upload(container, "/etc/nginx/zto/tls/server.key");
        assert.equal(key.permissions, "0400");
        assert.equal(key.owner, "101");
        assert.match(key.content, /PRIVATE KEY/);
    });

    test("with API keys the uploaded config (it holds key digests) is a secret too; without, it stays reviewable", async () => {
        const keyed = parseStackFile(
            "config:\n  zero-trust-ollama:domain: ollama.example.internal\n  zero-trust-ollama:devices:\n    - name: ci-runner\n      owner: ci@example.com\n      apiKey: true\n",
            "keyed.yaml",
        );
        const masked = (await gatewayOf(keyed)).container.maskedInputs.uploads as { file: string; content: string }[];
        assert.equal(masked.find((u) => u.file === GATEWAY_CONFIG_FILE)?.content, "[secret]");
        const plain = (await gatewayOf(stack())).container.maskedInputs.uploads as { file: string; content: string }[];
        assert.match(plain.find((u) => u.file === GATEWAY_CONFIG_FILE)?.content ?? "", /ssl_verify_client on;/);
    });

    test("removing a device changes only its allowlist entry", async () => {
        const before = allowlist(upload((await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"] }))).container, GATEWAY_CONFIG_FILE).content);
        const afterConf = upload((await gatewayOf(stack({ devices: ["alice-laptop", "carol-phone"] }))).container, GATEWAY_CONFIG_FILE).content;
        const after = allowlist(afterConf);
        const bobFp = [...before].find(([, n]) => n === "bob-laptop")![0];
        assert.deepEqual([...after], [...before].filter(([fp]) => fp !== bobFp), "same fingerprints for the others, bob gone");
        assert.ok(!afterConf.includes(bobFp), "bob's fingerprint appears nowhere in the new config");
        const beforeConf = upload((await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"] }))).container, GATEWAY_CONFIG_FILE).content;
        const withoutBob = beforeConf.split("\n").filter((l) => !l.includes(bobFp)).join("\n");
        assert.equal(afterConf, withoutBob, "the new config is the old one minus bob's map lines");
    });

    test("the dev stack's gateway forwards to the filter, Ollama is never published", async () => {
        const r = await runProgramUnderMocks(readStackFile("Pulumi.dev.yaml"));
        assert.ok(r.ok);
        const published = r.resources.filter((x) => x.type === CONTAINER && (x.inputs.ports ?? []).length > 0);
        assert.deepEqual(published.map((x) => x.name), ["gateway-container"]);
        const conf = upload(published[0], GATEWAY_CONFIG_FILE).content;
        assert.match(conf, /server zto-mock-filter:\d+ max_fails=0;/);
    });
});
