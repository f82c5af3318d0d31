/**
 * The model-store check in the program graph (under mocks): Ollama waits for the check and takes
 * its mount source from the verdict; a refused store registers no Ollama; the opt-out is warned
 * about, labelled and flagged by the pack; provisioning keeps its key a secret.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { PROBE_STORE_DIR } from "../../components/model-store";
import { parseStackFile } from "../../components/stack-file";
import { POLICIES } from "../../policies/all";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";
import { evaluatePolicies, graphFromMockRun, resolvePolicyConfig } from "../../scripts/lib/policy-eval";

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
        const out = execFileSync(process.execPath, ["--import", "tsx", path.join(__dirname, "model-store-refusal-run.ts")], { encoding: "utf8", timeout: 120_000 });
        const { registered, errors } = JSON.parse(out.trim().split("\n").pop()!) as { registered: string[]; errors: string[] };
        assert.ok(registered.includes("ollama-model-store-probe"), "the check itself ran");
        assert.ok(!registered.includes("ollama-container"), `Ollama is never registered: ${JSON.stringify(registered)}`);
        assert.ok(
            errors.some((m) => m.includes("model store /srv/encrypted/ollama is not encrypted at rest: ext4 on /dev/nvme0n1p2, not encrypted. Fix:") && m.includes("Ollama is not created.")),
            `the refusal ended the run: ${JSON.stringify(errors)}`,
        );
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

function setOptOut(doc: any): any {
    doc.config["zero-trust-ollama:ollama"].allowUnencryptedModels = true;
    return doc;
}
