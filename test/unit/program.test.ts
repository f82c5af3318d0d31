import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { StackConfig } from "../../components/config";
import { ENCRYPTED_STORE_LABEL, ROLE_LABEL } from "../../components/hardening";
import { parseStackFile, readStackFile, type StackFile } from "../../components/stack-file";
import { outputOf, runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";

type Graph = { config: StackConfig; resources: RecordedResource[]; outputs: Awaited<ReturnType<typeof runOk>>["outputs"] };

async function runOk(file: StackFile, calls?: Parameters<typeof runProgramUnderMocks>[1]) {
    const r = await runProgramUnderMocks(file, calls);
    if (!r.ok) throw new Error(`config rejected: ${JSON.stringify(r.problems)}`);
    return r;
}

function stackWith(extra: string, devices: string[] = ["alice-laptop", "bob-laptop"]): StackFile {
    const deviceYaml = devices.map((d) => `    - name: ${d}\n      owner: ${d}@example.com\n      groups: [ml-eng]\n`).join("");
    return parseStackFile(
        `config:\n  zero-trust-ollama:domain: ollama.example.internal\n  zero-trust-ollama:devices:\n${deviceYaml || "    []\n"}${extra}`,
        "inline.yaml",
    );
}

const byTypeName = (g: { resources: RecordedResource[] }, type: string, name: string) => {
    const r = g.resources.find((x) => x.type === type && x.name === name);
    assert.ok(r, `no ${type} named ${name}; have ${g.resources.map((x) => x.name).join(", ")}`);
    return r;
};
const ofType = (g: { resources: RecordedResource[] }, type: string) => g.resources.filter((x) => x.type === type);
const labelsOf = (r: RecordedResource) => Object.fromEntries(((r.inputs.labels ?? []) as { label: string; value: string }[]).map((l) => [l.label, l.value]));
const ollamaContainer = (g: { resources: RecordedResource[] }) => {
    const found = ofType(g, "docker:index/container:Container").filter((c) => labelsOf(c)[ROLE_LABEL] === "ollama");
    assert.equal(found.length, 1, "exactly one Ollama container");
    return found[0];
};

describe("OllamaRuntime", () => {
    test("has no ports and sits only on its network to the filter, which is internal with no host address", async () => {
        const g = await runOk(readStackFile("Pulumi.dev.yaml"));
        const c = ollamaContainer(g);
        assert.equal(c.inputs.ports, undefined);
        assert.notEqual(c.inputs.publishAllPorts, true);
        assert.equal(c.inputs.networkMode, undefined);
        const nets = (c.inputs.networksAdvanced as { name: string }[]).map((n) => n.name);
        const toOllama = byTypeName(g, "docker:index/network:Network", "network-to-ollama");
        assert.deepEqual(nets, [toOllama.inputs.name]);
        assert.equal(toOllama.inputs.internal, true);
        assert.equal(toOllama.inputs.options["com.docker.network.bridge.inhibit_ipv4"], "true");
    });

    test("is hardened, cloud forwarding off, models on the labelled encrypted mount", async () => {
        const g = await runOk(readStackFile("Pulumi.dev.yaml"));
        const c = ollamaContainer(g);
        assert.ok((c.inputs.envs as string[]).includes("OLLAMA_NO_CLOUD=1"));
        assert.deepEqual(c.inputs.securityOpts, ["no-new-privileges:true"]);
        assert.deepEqual(c.inputs.capabilities, { drops: ["ALL"] });
        assert.equal(c.inputs.privileged, false);
        assert.equal(c.inputs.readOnly, true);
        assert.equal(c.inputs.restart, "unless-stopped");
        assert.ok(c.inputs.healthcheck?.tests?.length);
        assert.ok(c.inputs.memory > 0);
        assert.deepEqual(c.inputs.mounts, [{ type: "bind", source: g.config.ollama.modelsPath, target: "/root/.ollama", readOnly: false }]);
        assert.equal(labelsOf(c)[ENCRYPTED_STORE_LABEL], "/root/.ollama");
    });

    test("GPU request follows ollama.gpus", async () => {
        const gpusOf = async (gpus: string) => ollamaContainer(await runOk(stackWith(`  zero-trust-ollama:ollama:\n    gpus: ${gpus}\n`))).inputs.gpus;
        assert.equal(await gpusOf("all"), "all");
        assert.equal(await gpusOf("2"), "2");
        assert.equal(await gpusOf("none"), undefined);
    });

    test("logs go to the SIEM via syslog when configured", async () => {
        const g = await runOk(stackWith("  zero-trust-ollama:siem:\n    syslogAddress: udp://siem.example.internal:514\n"));
        const c = ollamaContainer(g);
        assert.equal(c.inputs.logDriver, "syslog");
        assert.equal(c.inputs.logOpts["syslog-address"], "udp://siem.example.internal:514");
    });
});

describe("Network", () => {
    test("one network per hop: each callee shares a network with its single caller only", async () => {
        const joined = (g: Awaited<ReturnType<typeof runOk>>, container: string) =>
            (byTypeName(g, "docker:index/container:Container", container).inputs.networksAdvanced as { name: string }[]).map((n) => n.name);
        const dev = await runOk(readStackFile("Pulumi.dev.yaml"));
        assert.deepEqual(joined(dev, "ollama-container"), ["zto-mock-to-ollama"]);
        assert.deepEqual(joined(dev, "filter-container"), ["zto-mock-to-filter", "zto-mock-to-ollama"]);
        assert.deepEqual(joined(dev, "gateway-container"), ["zto-mock-edge", "zto-mock-to-filter"]);
        assert.equal(dev.resources.some((r) => r.name === "network-egress" || r.name === "network-to-oauth2-proxy" || r.name === "network-to-session-store"), false);
        const prod = await runOk(readStackFile("Pulumi.prod.yaml"));
        assert.deepEqual(joined(prod, "oauth2-proxy-container"), ["zto-mock-to-oauth2-proxy", "zto-mock-egress", "zto-mock-to-session-store"]);
        // The session store's one caller is oauth2-proxy.
        assert.deepEqual(joined(prod, "session-store-container"), ["zto-mock-to-session-store"]);
        assert.deepEqual(joined(prod, "gateway-container"), ["zto-mock-edge", "zto-mock-to-filter", "zto-mock-to-oauth2-proxy"]);
        // Without the filter the gateway is Ollama's caller.
        const noFilter = await runOk(stackWith("  zero-trust-ollama:filter:\n    enabled: false\n"));
        assert.deepEqual(joined(noFilter, "gateway-container"), ["zto-mock-edge", "zto-mock-to-ollama"]);
    });

    test("hop networks are internal with no host address; edge and egress keep theirs (publishing, NAT)", async () => {
        const prod = await runOk(readStackFile("Pulumi.prod.yaml"));
        for (const hop of ["network-to-ollama", "network-to-filter", "network-to-oauth2-proxy", "network-to-session-store"]) {
            const n = byTypeName(prod, "docker:index/network:Network", hop).inputs;
            assert.equal(n.internal, true, hop);
            assert.equal(n.options["com.docker.network.bridge.inhibit_ipv4"], "true", hop);
        }
        for (const open of ["network-edge", "network-egress"]) {
            const n = byTypeName(prod, "docker:index/network:Network", open).inputs;
            assert.equal(n.internal, false, open);
            assert.equal(n.options?.["com.docker.network.bridge.inhibit_ipv4"], undefined, open);
        }
    });

    test("the Docker provider targets docker.host", async () => {
        const prod = await runOk(readStackFile("Pulumi.prod.yaml"));
        assert.equal(byTypeName(prod, "pulumi:providers:docker", "docker").inputs.host, "ssh://deploy@gpu-01.corp.example.com");
    });
});

describe("Pki", () => {
    test("CA signs only certificates; server cert is server-auth only with the domain SAN; device certs client-auth only", async () => {
        const g = await runOk(readStackFile("Pulumi.dev.yaml"));
        const ca = byTypeName(g, "tls:index/selfSignedCert:SelfSignedCert", "pki-ca");
        assert.equal(ca.inputs.isCaCertificate, true);
        assert.deepEqual(ca.inputs.allowedUses, ["cert_signing", "crl_signing"]);
        const server = byTypeName(g, "tls:index/locallySignedCert:LocallySignedCert", "pki-server-cert");
        assert.deepEqual(server.inputs.allowedUses, ["digital_signature", "server_auth"]);
        assert.ok(byTypeName(g, "tls:index/certRequest:CertRequest", "pki-server-csr").inputs.dnsNames.includes("ollama.localhost"));
        for (const d of g.config.devices) {
            const cert = byTypeName(g, "tls:index/locallySignedCert:LocallySignedCert", `pki-device-${d.name}-cert`);
            assert.deepEqual(cert.inputs.allowedUses, ["digital_signature", "client_auth"]);
            assert.equal(cert.inputs.validityPeriodHours, 90 * 24);
            const csr = byTypeName(g, "tls:index/certRequest:CertRequest", `pki-device-${d.name}-csr`);
            assert.equal(csr.inputs.subject.commonName, d.name);
            assert.equal(csr.inputs.subject.emailAddress, d.owner);
        }
    });

    test("ECDSA P-384 by default, configurable", async () => {
        const keys = (g: { resources: RecordedResource[] }) => ofType(g, "tls:index/privateKey:PrivateKey").filter((k) => k.name.startsWith("pki-"));
        for (const k of keys(await runOk(readStackFile("Pulumi.dev.yaml")))) assert.deepEqual([k.inputs.algorithm, k.inputs.ecdsaCurve], ["ECDSA", "P384"]);
        for (const k of keys(await runOk(stackWith("  zero-trust-ollama:pki:\n    keyAlgorithm: RSA-3072\n")))) assert.deepEqual([k.inputs.algorithm, k.inputs.rsaBits], ["RSA", 3072]);
    });

    test("every private key and bundle is secret; fingerprints and the CA are public", async () => {
        const g = await runOk(readStackFile("Pulumi.dev.yaml"));
        for (const r of g.resources.filter((x) => x.inputs.privateKeyPem !== undefined || x.inputs.caPrivateKeyPem !== undefined)) {
            assert.ok(r.secretInputs.includes("privateKeyPem") || r.secretInputs.includes("caPrivateKeyPem"), `${r.name} carries a key in plain text`);
        }
        const bundles = await outputOf(g.outputs.deviceBundles);
        assert.equal(bundles.secret, true);
        assert.deepEqual(Object.keys(bundles.value).sort(), ["alice-laptop", "bob-workstation"]);
        const devices = await outputOf(g.outputs.devices);
        assert.equal(devices.secret, false);
        assert.match(devices.value["alice-laptop"].fingerprintSha256, /^[0-9a-f]{64}$/);
        assert.notEqual(devices.value["alice-laptop"].fingerprintSha256, devices.value["bob-workstation"].fingerprintSha256);
        assert.equal((await outputOf(g.outputs.caCertPem)).secret, false);
    });
});

describe("whole program", () => {
    test("Pulumi.dev.yaml and Pulumi.prod.yaml build, every child parented to a component", async () => {
        for (const f of ["Pulumi.dev.yaml", "Pulumi.prod.yaml"]) {
            const g = await runOk(readStackFile(f));
            const components = new Set(g.resources.filter((r) => !r.custom).map((r) => r.urn));
            for (const r of g.resources.filter((x) => x.custom && !x.type.startsWith("pulumi:providers:"))) {
                assert.ok(r.parent && components.has(r.parent), `${f}: ${r.type} ${r.name} is not parented to a component`);
            }
            const urns = g.resources.map((r) => r.urn);
            assert.equal(new Set(urns).size, urns.length, `${f}: duplicate URNs`);
            assert.equal(await outputOf(g.outputs.gatewayUrl).then((o) => o.value), `https://${g.config.domain}:${g.config.gateway.port}`);
        }
    });

    test("index.ts runs under mocks and exports the documented outputs", async () => {
        const r = await runProgramUnderMocks(readStackFile("Pulumi.dev.yaml"), { viaIndex: true });
        assert.ok(r.ok);
        const exports = r.outputs as unknown as Record<string, unknown>;
        for (const k of ["gatewayUrl", "caCertPem", "devices", "deviceBundles"]) assert.ok(k in exports, `missing export ${k}`);
        assert.equal((await outputOf(r.outputs.deviceBundles)).secret, true);
    });
});

describe("revocation by config edit", () => {
    test("removing device b deletes exactly b's resources; a's and c's are identical", async () => {
        const before: Graph = await runOk(stackWith("", ["a", "b", "c"]));
        const after: Graph = await runOk(stackWith("", ["a", "c"]));
        const afterByUrn = new Map(after.resources.map((r) => [r.urn, r]));
        const beforeUrns = new Set(before.resources.map((r) => r.urn));
        const namedForB = (n: string) => /(^|-)b(-|$)/.test(n);

        const gone = before.resources.filter((r) => !afterByUrn.has(r.urn)).map((r) => r.name);
        for (const n of ["pki-device-b-key", "pki-device-b-csr", "pki-device-b-cert"]) assert.ok(gone.includes(n), `${n} must be deleted`);
        assert.deepEqual(gone.filter((n) => !namedForB(n)), [], "only b's resources are deleted");
        assert.deepEqual(after.resources.filter((r) => !beforeUrns.has(r.urn)).map((r) => r.name), [], "nothing new appears");

        // Only the gateway's config writer lists every device (it carries the allowlist); everything
        // else, the gateway and filter containers and a's and c's certificates included, is identical.
        const aggregates = new Set(["gateway-config"]);
        for (const r of before.resources) {
            const same = afterByUrn.get(r.urn);
            // Component args are not provider state; only custom resources can be replaced or updated.
            if (!same || !r.custom) continue;
            if (aggregates.has(labelsOf(r)[ROLE_LABEL])) continue;
            // The TLS session ticket keys belong to the config generation: a revoke must rotate them.
            if (r.name === "gateway-session-ticket-keys") {
                assert.notDeepEqual(same.inputs.keepers, r.inputs.keepers, "the revoke rotates the session ticket keys");
                continue;
            }
            assert.deepEqual(same.inputs, r.inputs, `${r.name} changed`);
        }
    });
});
