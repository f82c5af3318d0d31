import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { FILTER_BUDGET_STORE, FILTER_MEMORY_MIB_PER_PROCESS, FILTER_PORT, FILTER_RULES_FILE, FILTER_STATE_DIR, FILTER_USER } from "../../components/filter";
import { parseFilterRules, renderFilterRules } from "../../components/filter/rules";
import { ROLE_LABEL } from "../../components/hardening";
import { parseStackFile, type StackFile } from "../../components/stack-file";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";

function stack(filterYaml: string, siem = ""): StackFile {
    return parseStackFile(
        `config:\n  zero-trust-ollama:domain: ollama.example.internal\n  zero-trust-ollama:devices:\n    - name: alice-laptop\n      owner: alice@example.com\n      groups: [ml-eng]\n  zero-trust-ollama:filter:\n${filterYaml}${siem}`,
        "inline.yaml",
    );
}

async function graph(file: StackFile) {
    const r = await runProgramUnderMocks(file);
    if (!r.ok) throw new Error(`config rejected: ${JSON.stringify(r.problems)}`);
    return r;
}

const labelsOf = (r: RecordedResource) => Object.fromEntries(((r.inputs.labels ?? []) as { label: string; value: string }[]).map((l) => [l.label, l.value]));
const find = (resources: RecordedResource[], type: string, name: string) => {
    const r = resources.find((x) => x.type === type && x.name === name);
    assert.ok(r, `no ${type} named ${name}`);
    return r;
};

const ENABLED = "    enabled: true\n    pii: redact\n    modelsByGroup:\n      \"*\": [\"llama3.2:3b\"]\n      ml-eng: [\"qwen2.5:7b\"]\n";

describe("PromptFilter component", () => {
    test("builds the image from filter/Dockerfile locally, never pushed", async () => {
        const g = await graph(stack(ENABLED));
        const image = find(g.resources, "docker:index/image:Image", "filter-image");
        assert.equal(image.inputs.skipPush, true);
        assert.match(image.inputs.build.dockerfile, /filter\/Dockerfile$/);
        assert.match(image.inputs.imageName, /^zto-[a-z0-9-]+-filter:local$/);
        assert.equal(find(g.resources, "zero-trust-ollama:filter:PromptFilter", "filter").type, "zero-trust-ollama:filter:PromptFilter");
        assert.ok(image.parent?.endsWith("::filter"), "image is a child of the component");
    });

    test("runs on its two hop networks only (from the gateway, to Ollama), no ports, hardened, non-root, read-only", async () => {
        const g = await graph(stack(ENABLED));
        const c = find(g.resources, "docker:index/container:Container", "filter-container");
        assert.equal(labelsOf(c)[ROLE_LABEL], "filter");
        assert.equal(c.inputs.ports, undefined);
        assert.notEqual(c.inputs.publishAllPorts, true);
        assert.equal(c.inputs.networkMode, undefined);
        const hops = ["network-to-filter", "network-to-ollama"].map((n) => find(g.resources, "docker:index/network:Network", n).inputs.name);
        assert.deepEqual((c.inputs.networksAdvanced as { name: string }[]).map((n) => n.name), hops);
        assert.deepEqual(c.inputs.capabilities, { drops: ["ALL"] });
        assert.deepEqual(c.inputs.securityOpts, ["no-new-privileges:true"]);
        assert.equal(c.inputs.privileged, false);
        assert.equal(c.inputs.readOnly, true);
        assert.equal(c.inputs.user, FILTER_USER);
        assert.notEqual(FILTER_USER.split(":")[0], "0");
    });

    test("gets the rules rendered from config and points at Ollama's internal address", async () => {
        const g = await graph(stack(ENABLED));
        const c = find(g.resources, "docker:index/container:Container", "filter-container");
        const uploads = c.inputs.uploads as { file: string; content: string }[];
        assert.equal(uploads.length, 1);
        assert.equal(uploads[0]!.file, FILTER_RULES_FILE);
        assert.deepEqual(parseFilterRules(uploads[0]!.content), renderFilterRules(g.config));
        const ollama = find(g.resources, "docker:index/container:Container", "ollama-container");
        assert.deepEqual(c.inputs.command, ["--rules", FILTER_RULES_FILE, "--listen", `0.0.0.0:${FILTER_PORT}`, "--upstream", `http://${ollama.inputs.name}:11434`, "--workers", "2"]);
        // The rules file sits on a volume mounted where the command reads it; the budget ledger on
        // its own named volume (the root filesystem stays read-only), so a restart keeps the counts.
        const volume = find(g.resources, "docker:index/volume:Volume", "filter-rules");
        const state = find(g.resources, "docker:index/volume:Volume", "filter-state");
        assert.equal(labelsOf(state)["zero-trust-ollama.volume"], "filter-state");
        assert.ok(state.parent?.endsWith("::filter"), "the state volume is a child of the component");
        assert.deepEqual(c.inputs.mounts, [
            { type: "volume", source: volume.inputs.name, target: FILTER_RULES_FILE.replace(/\/rules\.json$/, "") },
            { type: "volume", source: state.inputs.name, target: FILTER_STATE_DIR },
        ]);
        assert.ok(FILTER_BUDGET_STORE.startsWith(FILTER_STATE_DIR + "/"));
        assert.equal(c.inputs.readOnly, true);
        // With budgets the filter opens its ledger on that volume.
        const budgeted = await graph(stack(ENABLED + "    budgets:\n      \"*\": { tokensPerDay: 1000 }\n"));
        const bc = find(budgeted.resources, "docker:index/container:Container", "filter-container");
        assert.deepEqual((bc.inputs.command as string[]).slice(-2), ["--budget-store", FILTER_BUDGET_STORE]);
    });

    test("filter.workers sets the worker processes and sizes the container's memory by them; a bad count names the key", async () => {
        const memoryOf = (g: Awaited<ReturnType<typeof graph>>) => find(g.resources, "docker:index/container:Container", "filter-container").inputs.memory;
        assert.equal(memoryOf(await graph(stack(ENABLED))), FILTER_MEMORY_MIB_PER_PROCESS * 4);
        const four = await graph(stack(ENABLED + "    workers: 4\n"));
        const c = find(four.resources, "docker:index/container:Container", "filter-container");
        assert.deepEqual((c.inputs.command as string[]).slice(-2), ["--workers", "4"]);
        assert.equal(memoryOf(four), FILTER_MEMORY_MIB_PER_PROCESS * 6);
        for (const bad of [0, 17, 1.5, "2"]) {
            assert.throws(() => loadStackConfig({ domain: "ollama.example.internal", filter: { workers: bad } } as never), /filter\.workers/, `workers ${JSON.stringify(bad)}`);
        }
    });

    test("the stack exports the filter's internal address for the gateway", async () => {
        const g = await graph(stack(ENABLED));
        const c = find(g.resources, "docker:index/container:Container", "filter-container");
        const address = await new Promise<string | undefined>((resolve) => (g.outputs.filterAddress ? g.outputs.filterAddress.apply((a) => resolve(a)) : resolve(undefined)));
        assert.equal(address, `${c.inputs.name}:${FILTER_PORT}`);
    });

    test("filter.enabled false creates no filter resources", async () => {
        const g = await graph(stack("    enabled: false\n"));
        assert.deepEqual(g.resources.filter((r) => r.name.startsWith("filter")).map((r) => r.name), []);
        assert.equal(g.outputs.filterAddress, undefined);
    });

    test("with siem.syslogAddress the filter sends audit events itself; its container log stays local (no duplicates)", async () => {
        const g = await graph(stack(ENABLED, "  zero-trust-ollama:siem:\n    syslogAddress: udp://siem.internal:514\n"));
        const c = find(g.resources, "docker:index/container:Container", "filter-container");
        const rules = parseFilterRules((c.inputs.uploads as { content: string }[])[0]!.content);
        assert.equal(rules.audit.syslogAddress, "udp://siem.internal:514");
        assert.equal(c.inputs.logDriver, "json-file");
        assert.equal(find(g.resources, "docker:index/container:Container", "ollama-container").inputs.logDriver, "syslog");
    });
});

describe("renderFilterRules", () => {
    const base = { domain: "ollama.example.internal" };

    test("maps every filter key and the gateway's body cap and timeout", () => {
        const cfg = loadStackConfig({ ...base, gateway: { maxBodyKiB: 64, upstreamTimeoutSeconds: 30 }, filter: { pii: "redact", jailbreak: "off", maxPromptChars: 100, maxMessages: 3, maxNumCtx: 4096, maxOutputTokens: 512, modelsByGroup: { "*": ["a:1"], g: ["b:2"] } } });
        const r = renderFilterRules(cfg);
        assert.equal(r.pii.action, "redact");
        assert.equal(r.jailbreak.action, "off");
        assert.deepEqual(r.limits, { maxPromptChars: 100, maxMessages: 3, maxNumCtx: 4096, maxOutputTokens: 512, maxBodyBytes: 64 * 1024 });
        assert.deepEqual(r.modelsByGroup, { "*": ["a:1"], g: ["b:2"] });
        assert.equal(r.upstream.timeoutSeconds, 30);
        assert.equal(r.audit.syslogAddress, undefined);
        assert.equal(r.allowContextTokens, false);
    });

    test("filter.allowContextTokens is an opt-in boolean, validated like every key", () => {
        assert.equal(renderFilterRules(loadStackConfig({ ...base, filter: { allowContextTokens: true } })).allowContextTokens, true);
        assert.throws(() => loadStackConfig({ ...base, filter: { allowContextTokens: "yes" } }), /filter\.allowContextTokens/);
    });

    test("round-trips through JSON and the schema", () => {
        const r = renderFilterRules(loadStackConfig({ ...base, siem: { syslogAddress: "tcp://siem.internal:6514" } }));
        assert.deepEqual(parseFilterRules(JSON.stringify(r)), r);
    });

    test("a bad rules file names the offending field", () => {
        const r = renderFilterRules(loadStackConfig(base)) as any;
        assert.throws(() => parseFilterRules(JSON.stringify({ ...r, limits: { ...r.limits, maxMessages: 0 } })), /limits\.maxMessages/);
        assert.throws(() => parseFilterRules(JSON.stringify({ ...r, extra: 1 })), /extra/);
        assert.throws(() => parseFilterRules(JSON.stringify({ ...r, modelsByGroup: { "*": ["bad model"] } })), /modelsByGroup/);
        assert.throws(() => parseFilterRules("{"), /not valid JSON/);
    });
});
