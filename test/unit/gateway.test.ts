/**
 * The Gateway component under Pulumi mocks: one published port on the right host address, the
 * rendered allowlist uploaded by the config writer, enrol and revoke replacing the writer only
 * (never the gateway container), key material secret.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkPublishAddress, GATEWAY_CONFIG_DIR, GATEWAY_CONFIG_FILE, GATEWAY_CONTAINER_PORT } from "../../components/gateway";
import { configWriterScript, gatewaySupervisorScript } from "../../components/gateway/reload";
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
    const writers = r.resources.filter((x) => x.type === CONTAINER && x.name === "gateway-config-writer");
    assert.equal(writers.length, 1, "exactly one config writer");
    assert.equal(writers[0].parent, component[0].urn, "the writer is the component's child");
    return { all: r.resources, container: containers[0], writer: writers[0] };
}

/** The generation id the writer puts in force (its command's argument). */
const generationOf = (writer: RecordedResource): string => writer.inputs.command[2];

/** The writer's upload of a file, by its path relative to the generation. */
const upload = (writer: RecordedResource, relative: string) => {
    const file = `${GATEWAY_CONFIG_DIR}/generations/${generationOf(writer)}/${relative}`;
    const u = (writer.inputs.uploads as { file: string; content: string; permissions?: string; owner?: string }[]).find((x) => x.file === file);
    assert.ok(u, `upload ${file} present`);
    return u;
};
const maskedUpload = (writer: RecordedResource, relative: string) =>
    (writer.maskedInputs.uploads as { file: string; content: string }[]).find((u) => u.file === `${GATEWAY_CONFIG_DIR}/generations/${generationOf(writer)}/${relative}`);

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
        assert.deepEqual(c.networksAdvanced.map((n: { name: string }) => n.name.replace(/^zto-[a-z]+-/, "")), ["edge", "to-filter"], "the filter (on by default) is Ollama's caller, so the gateway is never on Ollama's network");
        assert.match(c.healthcheck.tests.join(" "), /https:\/\/127\.0\.0\.1:8443\//);
        const image = all.find((x) => x.type === "docker:index/remoteImage:RemoteImage" && x.name === "gateway-image");
        assert.equal(image?.inputs.name, "nginx:1.28.0-alpine");
    });

    test("the gateway reads its config through the volume's current link, read-only, and reloads in place", async () => {
        const { container, writer } = await gatewayOf(stack());
        const c = container.inputs;
        assert.equal(c.uploads, undefined, "no uploads: a new config must not replace the gateway");
        assert.deepEqual(c.mounts, [{ type: "volume", source: "zto-mock-gateway-config", target: GATEWAY_CONFIG_DIR, readOnly: true }]);
        assert.deepEqual(c.entrypoints, ["/bin/sh", "-c"]);
        assert.equal(GATEWAY_CONFIG_FILE, `${GATEWAY_CONFIG_DIR}/current/nginx.conf`);
        assert.equal(
            c.command[0],
            gatewaySupervisorScript({
                kind: "nginx",
                link: `${GATEWAY_CONFIG_DIR}/current`,
                run: ["nginx", "-c", GATEWAY_CONFIG_FILE, "-e", "stderr", "-g", "daemon off;"],
                check: ["nginx", "-t", "-q", "-c", GATEWAY_CONFIG_FILE, "-e", "stderr"],
            }),
        );
        assert.ok(container.dependencies.includes(writer.urn), "the first generation is in place before the gateway starts");
    });

    test("the config writer: one shot, root without capabilities, no network, uploads the generation and flips the link", async () => {
        const { writer, container } = await gatewayOf(stack());
        const w = writer.inputs;
        const generation = generationOf(writer);
        assert.match(generation, /^[0-9a-f]{16}$/);
        assert.equal(w.name, `zto-mock-gateway-config-${generation}`, "named by generation: the next one is created before this one goes");
        assert.equal(w.image, container.inputs.image, "the gateway image: its shell and busybox only");
        assert.deepEqual(w.entrypoints, ["/bin/sh", "-c"]);
        assert.deepEqual(w.command, [configWriterScript(GATEWAY_CONFIG_DIR), "zto-config-writer", generation]);
        assert.equal(w.user, "0:0");
        assert.deepEqual(w.capabilities, { drops: ["ALL"] });
        assert.deepEqual(w.securityOpts, ["no-new-privileges:true"]);
        assert.equal(w.networkMode, "none");
        assert.equal(w.readOnly, true);
        assert.equal(w.restart, "no");
        assert.equal(w.mustRun, false, "an exited writer is done, not missing");
        assert.equal(w.attach, true, "pulumi up waits until the link is flipped");
        assert.equal(w.ports, undefined);
        assert.deepEqual(w.mounts, [{ type: "volume", source: "zto-mock-gateway-config", target: GATEWAY_CONFIG_DIR }]);
        assert.deepEqual(w.labels, [{ label: "zero-trust-ollama.role", value: "gateway-config" }]);
        const files = (w.uploads as { file: string }[]).map((u) => u.file.replace(`${GATEWAY_CONFIG_DIR}/generations/${generation}/`, "")).sort();
        assert.deepEqual(files, ["nginx.conf", "tls/device-ca.crt", "tls/server.crt", "tls/server.key", "tls/session-ticket.key"]);
        const conf = upload(writer, "nginx.conf").content;
        assert.match(conf, /ssl_certificate "\/etc\/nginx\/zto\/current\/tls\/server\.crt";/, "TLS files are read through the link too (renewals reload in place)");
        assert.match(conf, /worker_shutdown_timeout 120s;/, "gateway.reloadDrainSeconds bounds what old workers still serve");
    });

    test("enrol and revoke change only the writer: the gateway container's inputs are identical", async () => {
        const three = await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"] }));
        const two = await gatewayOf(stack({ devices: ["alice-laptop", "carol-phone"] }));
        const four = await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone", "dave-laptop"] }));
        for (const [what, other] of [["revoking bob", two], ["enrolling dave", four]] as const) {
            assert.deepEqual(other.container.inputs, three.container.inputs, `${what} leaves the gateway container's inputs as they were`);
            assert.notEqual(generationOf(other.writer), generationOf(three.writer), `${what} makes a new generation`);
            assert.notEqual(other.writer.inputs.name, three.writer.inputs.name, `${what} replaces the writer`);
        }
        const limits = await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"], gateway: "    listen: loopback\n    rateLimitPerMinute: 30" }));
        assert.deepEqual(limits.container.inputs, three.container.inputs, "a limits change reloads too");
        const again = await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"] }));
        assert.deepEqual(again.writer.inputs, three.writer.inputs, "the same config is the same generation: nothing is replaced");
    });

    test("the uploaded nginx.conf allowlists each device fingerprint and listens on 8443", async () => {
        const { writer } = await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"] }));
        const conf = upload(writer, "nginx.conf").content;
        assert.deepEqual([...allowlist(conf).values()].sort(), ["alice-laptop", "bob-laptop", "carol-phone"]);
        assert.match(conf, /listen 0\.0\.0\.0:8443 ssl default_server;/);
        assert.match(conf, /ssl_verify_client on;/);
    });

    test("the server key is uploaded as a secret, readable by nginx only; certificates are not secret", async () => {
        const { writer } = await gatewayOf(stack());
        assert.ok(writer.secretInputs.includes("uploads"), "uploads carry a secret");
        assert.equal(maskedUpload(writer, "tls/server.key")?.content, "[secret]");
        assert.notEqual(maskedUpload(writer, "tls/server.crt")?.content, "[secret]");
        const key = upload(writer, "tls/server.key");
        assert.equal(key.permissions, "0400");
        assert.equal(key.owner, "101");
        assert.match(key.content, /PRIVATE KEY/);
        assert.ok(!writer.secretInputs.includes("name") && !writer.secretInputs.includes("command"), "the generation id (a digest) is shown in plain text");
    });

    test("session ticket keys: new random bytes (a secret) for every generation, uploaded by its writer, never an output", async () => {
        const keysOf = (g: Awaited<ReturnType<typeof gatewayOf>>) => {
            const keys = g.all.filter((x) => x.type === "random:index/randomBytes:RandomBytes" && x.name === "gateway-session-ticket-keys");
            assert.equal(keys.length, 1, "one ticket key resource");
            return keys[0];
        };
        const two = await gatewayOf(stack());
        const one = await gatewayOf(stack({ devices: ["alice-laptop"] }));
        const keys = keysOf(two);
        assert.equal(keys.inputs.length, 80, "one AES-256 ticket key for nginx");
        assert.deepEqual(keys.inputs.keepers, { generation: generationOf(two.writer) }, "the generation is the keeper: a new generation replaces the keys");
        assert.notDeepEqual(keysOf(one).inputs.keepers, keys.inputs.keepers, "revoking a device rotates the ticket keys");
        assert.equal(keys.parent, two.all.find((x) => x.type === COMPONENT)!.urn);
        const file = `${GATEWAY_CONFIG_DIR}/generations/${generationOf(two.writer)}/tls/session-ticket.key`;
        const u = (two.writer.inputs.uploads as { file: string; contentBase64?: string; permissions?: string; owner?: string }[]).find((x) => x.file === file);
        assert.ok(u?.contentBase64, "uploaded as bytes");
        assert.equal(Buffer.from(u.contentBase64, "base64").length, 80);
        assert.equal(u.permissions, "0400");
        assert.equal(u.owner, "101");
        const masked = (two.writer.maskedInputs.uploads as { file: string; contentBase64?: string }[]).find((x) => x.file === file);
        assert.equal(masked?.contentBase64, "[secret]", "the key is a secret in state");
        const conf = upload(two.writer, "nginx.conf").content;
        assert.match(conf, /ssl_session_ticket_key "\/etc\/nginx\/zto\/current\/tls\/session-ticket\.key";/);
        assert.match(conf, /ssl_session_timeout 300s;/, "gateway.tlsTicketLifetimeSeconds, default 5 min");
    });

    test("tlsTicketLifetimeSeconds 0: no ticket keys, no resumption", async () => {
        const off = await gatewayOf(stack({ gateway: "    listen: loopback\n    tlsTicketLifetimeSeconds: 0" }));
        assert.equal(off.all.filter((x) => x.type === "random:index/randomBytes:RandomBytes" && x.name.includes("ticket")).length, 0);
        assert.ok(!(off.writer.inputs.uploads as { file: string }[]).some((x) => x.file.endsWith("session-ticket.key")));
        assert.match(upload(off.writer, "nginx.conf").content, /ssl_session_tickets off;/);
    });

    test("with API keys the uploaded config (it holds key digests) is a secret too; without, it stays reviewable", async () => {
        const keyed = parseStackFile(
            "config:\n  zero-trust-ollama:domain: ollama.example.internal\n  zero-trust-ollama:devices:\n    - name: ci-runner\n      owner: ci@example.com\n      apiKey: true\n",
            "keyed.yaml",
        );
        assert.equal(maskedUpload((await gatewayOf(keyed)).writer, "nginx.conf")?.content, "[secret]");
        assert.match(maskedUpload((await gatewayOf(stack())).writer, "nginx.conf")?.content ?? "", /ssl_verify_client on;/);
    });

    test("removing a device changes only its allowlist entry", async () => {
        const before = allowlist(upload((await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"] }))).writer, "nginx.conf").content);
        const afterConf = upload((await gatewayOf(stack({ devices: ["alice-laptop", "carol-phone"] }))).writer, "nginx.conf").content;
        const after = allowlist(afterConf);
        const bobFp = [...before].find(([, n]) => n === "bob-laptop")![0];
        assert.deepEqual([...after], [...before].filter(([fp]) => fp !== bobFp), "same fingerprints for the others, bob gone");
        assert.ok(!afterConf.includes(bobFp), "bob's fingerprint appears nowhere in the new config");
        const beforeConf = upload((await gatewayOf(stack({ devices: ["alice-laptop", "bob-laptop", "carol-phone"] }))).writer, "nginx.conf").content;
        const withoutBob = beforeConf.split("\n").filter((l) => !l.includes(bobFp)).join("\n");
        assert.equal(afterConf, withoutBob, "the new config is the old one minus bob's map lines");
    });

    test("the dev stack's gateway forwards to the filter, Ollama is never published", async () => {
        const r = await runProgramUnderMocks(readStackFile("Pulumi.dev.yaml"));
        assert.ok(r.ok);
        const published = r.resources.filter((x) => x.type === CONTAINER && (x.inputs.ports ?? []).length > 0);
        assert.deepEqual(published.map((x) => x.name), ["gateway-container"]);
        const writer = r.resources.find((x) => x.type === CONTAINER && x.name === "gateway-config-writer")!;
        assert.match(upload(writer, "nginx.conf").content, /server zto-mock-filter:\d+ max_fails=0;/);
    });
});
