/**
 * The model-store check in the program graph (under mocks): Ollama waits for the check and takes
 * its mount source from the verdict; a refused store registers no Ollama; the opt-out is warned
 * about, labelled and flagged by the pack; provisioning keeps its key a secret.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { PROBE_STORE_DIR } from "../../components/model-store";
import { parseStackFile } from "../../components/stack-file";
import { POLICIES } from "../../policies/all";
import { checkedRun, type CheckedRunReport } from "../../scripts/lib/checked-run";
import { MOCK_LUKS_PROBE_OUTPUT } from "../../scripts/lib/mock-outputs";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";
import { evaluatePolicies } from "../../scripts/lib/plan-eval";
import { graphFromMockRun, resolvePolicyConfig } from "../../scripts/lib/policy-eval";

const CONTAINER = "docker:index/container:Container";

async function devGraph(edit: (doc: any) => void = () => {}) {
    const doc = parse(readFileSync("Pulumi.dev.yaml", "utf8"));
    edit(doc);
    return runProgramUnderMocks(parseStackFile(stringify(doc), "Pulumi.dev.yaml"), { stack: "dev" });
}
const named = (rs: readonly RecordedResource[], name: string) => rs.find((r) => r.type === CONTAINER && r.name === name);
const label = (r: RecordedResource | undefined, key: string) => (r?.inputs.labels as { label: string; value: string }[] | undefined)?.find((l) => l.label === key)?.value;

describe("model-store check in the program graph", () => {
    test("the check bind-mounts the models path read-only, has no network, and Ollama depends on it", async () => {
        const r = await devGraph();
        assert.ok(r.ok);
        const probe = named(r.resources, "ollama-model-store-probe");
        const ollama = named(r.resources, "ollama-container");
        assert.ok(probe && ollama);
        assert.deepEqual(probe.inputs.mounts, [{ type: "bind", source: r.config.ollama.modelsPath, target: PROBE_STORE_DIR, readOnly: true }]);
        assert.equal(probe.inputs.networkMode, "none");
        assert.equal(probe.inputs.readOnly, true);
        assert.deepEqual(probe.inputs.capabilities, { drops: ["ALL"] });
        assert.equal(probe.inputs.attach, true);
        assert.deepEqual(probe.inputs.command.slice(0, 2), ["python3", "-c"]);
        assert.ok(ollama.dependencies.includes(probe.urn), `Ollama waits for the check: ${JSON.stringify(ollama.dependencies)}`);
        assert.equal(ollama.inputs.mounts[0].source, r.config.ollama.modelsPath);
        assert.equal(label(ollama, "zero-trust-ollama.model-store-check"), "verified");
    });

    test("a plain models path: no Ollama container is registered, and the error names path, finding and fix", async () => {
        const { registered, errors } = await refusalRun("model-store");
        assert.ok(registered.includes("ollama-model-store-probe"), "the check itself ran");
        assert.ok(!registered.includes("ollama-container"), `Ollama is never registered: ${JSON.stringify(registered)}`);
        assert.ok(
            errors.some((m) => m.includes("model store /srv/encrypted/ollama is not encrypted at rest: ext4 on /dev/nvme0n1p2, not encrypted. Fix:") && m.includes("Ollama is not created.")),
            `the refusal ended the run: ${JSON.stringify(errors)}`,
        );
    });

    test("a Docker volume on a plain disk: nothing writes the TLS key or the rules into it, and the error names volume, finding and fix", async () => {
        const { registered, errors } = await refusalRun("volumes");
        assert.ok(registered.includes("filter-rules-check-probe"), "the check ran");
        // The first refusal (the filter's rules volume) stops everything after it: the gateway needs the filter.
        for (const consumer of ["filter-container", "gateway-config-writer", "gateway-container"]) assert.ok(!registered.includes(consumer), `${consumer} is never registered`);
        const expected =
            "Docker volume zto-dev-filter-rules (the filter's rules) is not encrypted at rest: ext4 on /dev/nvme0n1p2, not encrypted. Fix: Docker keeps named volumes under its data root";
        assert.ok(errors.some((m) => m.includes(expected) && m.endsWith("The filter is not created.")), `the refusal ended the run: ${JSON.stringify(errors.slice(0, 3))}`);
    });

    test("every Docker volume the stack keeps is checked read-only before its consumers mount it", async () => {
        const r = await devGraph((d) => {
            d.config["zero-trust-ollama:identity"] = { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedEmails: ["alice@example.com"] };
            d.config["zero-trust-ollama:oidcClientSecret"] = "mock-client-secret";
        });
        assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
        const kept = ["zto-dev-filter-rules", "zto-dev-filter-state", "zto-dev-gateway-config", "zto-dev-oauth2-proxy-config", "zto-dev-session-store-config"];
        assertVolumesChecked(r.resources, kept);
        // A volume added later without a check fails here: the list is every volume in the graph.
        assert.deepEqual(r.resources.filter((x) => x.type === "docker:index/volume:Volume").map((v) => v.inputs.name).sort(), kept);
    });

    test("a GPU node's enclave volume (its config and TLS key) is checked on the node's own Docker host", async () => {
        const r = await runProgramUnderMocks(parseStackFile(readFileSync("test/fixtures/Pulumi.nodes.yaml", "utf8"), "Pulumi.nodes.yaml"), { stack: "nodes" });
        assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
        const enclaveVolumes = r.resources.filter((x) => x.type === "docker:index/volume:Volume" && /-enclave-config$/.test(x.inputs.name)).map((v) => v.inputs.name as string);
        assert.equal(enclaveVolumes.length, 3, "one per node");
        assertVolumesChecked(r.resources, enclaveVolumes);
        for (const volume of enclaveVolumes) {
            const node = volume.replace(/^zto-nodes-(.+)-enclave-config$/, "$1");
            const probe = r.resources.find((x) => x.type === CONTAINER && x.inputs.mounts?.[0]?.source === volume && x.inputs.command?.includes("inspect"));
            assert.match(probe?.provider ?? "", new RegExp(`::node-${node}-docker::`), `${volume} is probed through its node's provider`);
        }
    });

    test("docker.allowUnencryptedVolumes: no volume checks, a warning; refused outright in a pinned stack", async () => {
        const r = await devGraph((d) => (d.config["zero-trust-ollama:docker"] = { allowUnencryptedVolumes: true }));
        assert.ok(r.ok);
        const probes = r.resources.filter((x) => x.type === CONTAINER && x.name.endsWith("-check-probe"));
        assert.deepEqual(probes, []);
        assert.ok(named(r.resources, "ollama-model-store-probe"), "the model store is still checked");
        const prod = parse(readFileSync("Pulumi.prod.yaml", "utf8"));
        prod.config["zero-trust-ollama:docker"].allowUnencryptedVolumes = true;
        const pinned = await runProgramUnderMocks(parseStackFile(stringify(prod), "Pulumi.prod.yaml"), { stack: "prod" });
        assert.ok(!pinned.ok);
        assert.deepEqual(pinned.resources, [], "nothing is registered");
        assert.ok(pinned.problems.some((p) => p.path === "zero-trust-ollama:docker.allowUnencryptedVolumes" && /requirePinnedImages/.test(p.message)), JSON.stringify(pinned.problems));
    });

    test("the opt-out: no check container, Ollama labelled skipped, an advisory violation; mandatory in a pinned stack", async () => {
        const r = await devGraph((d) => (d.config["zero-trust-ollama:ollama"].allowUnencryptedModels = true));
        assert.ok(r.ok);
        assert.equal(named(r.resources, "ollama-model-store-probe"), undefined);
        assert.equal(label(named(r.resources, "ollama-container"), "zero-trust-ollama.model-store-check"), "skipped");
        const violations = await evaluatePolicies(resolvePolicyConfig(POLICIES, {}), graphFromMockRun(r.resources));
        const mine = violations.filter((v) => v.policy.includes("model-store"));
        assert.deepEqual(mine.map((v) => [v.policy, v.enforcementLevel]), [["ollama-disallow-unverified-model-store", "advisory"]]);

        const pinned = await runProgramUnderMocks(parseStackFile(stringify(setOptOut(parse(readFileSync("Pulumi.prod.yaml", "utf8")))), "Pulumi.prod.yaml"), { stack: "prod" });
        assert.ok(pinned.ok, JSON.stringify(!pinned.ok && pinned.problems));
        const strict = (await evaluatePolicies(resolvePolicyConfig(POLICIES, {}), graphFromMockRun(pinned.resources))).filter((v) => v.policy.includes("model-store"));
        assert.deepEqual(strict.map((v) => [v.policy, v.enforcementLevel]).sort(), [["ollama-disallow-unverified-model-store", "advisory"], ["ollama-require-encrypted-model-store", "mandatory"]]);
    });

    test("provision: fscrypt: a 64-byte random key, secret, handed only to a self-removing container that runs before the check", async () => {
        const r = await devGraph((d) => (d.config["zero-trust-ollama:ollama"].modelStore = { provision: "fscrypt" }));
        assert.ok(r.ok);
        const key = r.resources.find((x) => x.type === "random:index/randomBytes:RandomBytes" && x.name === "ollama-model-store-fscrypt-key");
        assert.equal(key?.inputs.length, 64);
        const prov = named(r.resources, "ollama-model-store-provision");
        const probe = named(r.resources, "ollama-model-store-probe");
        assert.ok(prov && probe);
        assert.ok(prov.secretInputs.includes("envs"), "the key reaches the container only as a secret input");
        assert.equal(prov.inputs.rm, true);
        assert.deepEqual(prov.inputs.mounts, [{ type: "bind", source: "/srv/encrypted", target: "/parent", readOnly: false }]);
        assert.deepEqual(prov.inputs.command.slice(-2), ["provision-fscrypt", "/parent/ollama"]);
        assert.ok(probe.dependencies.includes(prov.urn), "the check runs after provisioning");
        assert.ok(!JSON.stringify(r.resources.map((x) => x.maskedInputs)).includes(String(key?.inputs.hex ?? "no-hex")));
    });
});

/** Each volume has a read-only, network-less check container, and every other container mounting it waits for it. */
function assertVolumesChecked(resources: readonly RecordedResource[], expected: string[]): void {
    const volumes = resources.filter((x) => x.type === "docker:index/volume:Volume").map((v) => v.inputs.name as string);
    for (const volume of expected) assert.ok(volumes.includes(volume), `${volume} is in the graph: ${JSON.stringify(volumes)}`);
    for (const volume of expected) {
        const probe = resources.find((x) => x.type === CONTAINER && x.inputs.mounts?.[0]?.source === volume && x.inputs.command?.includes("inspect"));
        assert.ok(probe, `${volume} has a check container`);
        assert.deepEqual(probe.inputs.mounts, [{ type: "volume", source: volume, target: PROBE_STORE_DIR, readOnly: true }]);
        assert.equal(probe.inputs.networkMode, "none");
        const consumers = resources.filter((x) => x.type === CONTAINER && x !== probe && (x.inputs.mounts ?? []).some((m: { source: string }) => m.source === volume));
        assert.ok(consumers.length > 0, `${volume} has consumers`);
        for (const c of consumers) assert.ok(c.dependencies.includes(probe.urn), `${c.name} waits for the check of ${volume}`);
    }
}

/** The dev stack run with a probe that reports a plain ext4 filesystem for the model store or for the Docker volumes. */
function refusalRun(refuse: "model-store" | "volumes"): Promise<CheckedRunReport> {
    const plain = JSON.stringify({
        ...JSON.parse(MOCK_LUKS_PROBE_OUTPUT),
        mountinfo: "812 1 259:2 /srv/encrypted/ollama /store ro - ext4 /dev/nvme0n1p2 rw\n",
        blockDevices: [{ kname: "nvme0n1p2", majMin: "259:2", slaves: [] }],
    });
    const file = parseStackFile(readFileSync("Pulumi.dev.yaml", "utf8"), "Pulumi.dev.yaml");
    return checkedRun({ file, stack: "dev", storeProbe: refuse === "volumes" ? { volumes: plain } : { modelStore: plain } });
}

function setOptOut(doc: any): any {
    doc.config["zero-trust-ollama:ollama"].allowUnencryptedModels = true;
    return doc;
}
