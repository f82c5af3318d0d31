/**
 * Cloud models are refused by the filter even when modelsByGroup lists them: a cloud model sends
 * the prompt to ollama.com. Names follow Ollama 0.17.4's own test (a `:cloud` tag or `-cloud`
 * suffix), plus the forms that name the same model (case, registry prefix, `:latest`).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { renderFilterRules } from "../../components/filter/rules";
import { namesCloudModel } from "../../filter/src/cloud";
import { compilePolicy, decide, filterListing, type Refuse } from "../../filter/src/decide";

const CLOUD = ["gpt-oss:120b-cloud", "glm-5:cloud", "kimi-k2.5:cloud", "GLM-5:Cloud", "library/qwen3-coder:480b-cloud", "registry.ollama.ai/library/deepseek-v3.1:671b-cloud", "minimax-cloud", "minimax-cloud:latest"];
const LOCAL = ["llama3.2:3b", "cloudy:latest", "cloud", "qwen2.5:cloudless", "hf.co/org/cloud-model:q4", "my-cloudfree-model"];

describe("namesCloudModel", () => {
    test("recognises every cloud form", () => {
        for (const m of CLOUD) assert.equal(namesCloudModel(m), true, m);
    });
    test("leaves local names alone, including ones that merely contain 'cloud'", () => {
        for (const m of LOCAL) assert.equal(namesCloudModel(m), false, m);
    });
});

describe("filter refuses cloud models regardless of modelsByGroup", () => {
    const policy = compilePolicy(renderFilterRules(loadStackConfig({ domain: "ollama.example.internal", filter: { modelsByGroup: { "*": ["llama3.2:3b", "gpt-oss:120b-cloud", "glm-5:cloud", "minimax-cloud"] } } })));
    const ask = (path: string, body: unknown) => decide(policy, { method: "POST", path, identity: { groups: [] }, body: Buffer.from(JSON.stringify(body)) });

    test("a listed cloud model is refused on every inference route, with rule models.cloud", () => {
        for (const model of ["gpt-oss:120b-cloud", "GLM-5:cloud", "minimax-cloud:latest"]) {
            for (const [path, body] of [
                ["/api/generate", { model, prompt: "hi" }],
                ["/api/chat", { model, messages: [{ role: "user", content: "hi" }] }],
                ["/v1/chat/completions", { model, messages: [{ role: "user", content: "hi" }] }],
                ["/api/embed", { model, input: "hi" }],
                ["/api/show", { model }],
            ] as const) {
                const d = ask(path, body) as Refuse;
                assert.deepEqual({ action: d.action, status: d.status, code: d.code, rule: d.rule }, { action: "refuse", status: 403, code: "model_not_allowed", rule: "models.cloud" }, `${path} ${model}`);
            }
        }
        const byPath = decide(policy, { method: "GET", path: "/v1/models/glm-5:cloud", identity: { groups: [] } }) as Refuse;
        assert.equal(byPath.rule, "models.cloud");
    });

    test("a listed local model still passes, an unlisted one is refused by the allowlist", () => {
        assert.equal(ask("/api/generate", { model: "llama3.2:3b", prompt: "hi" }).action, "forward");
        assert.equal((ask("/api/generate", { model: "mistral:7b", prompt: "hi" }) as Refuse).rule, "models.allowlist");
    });

    test("listings hide cloud models", () => {
        const listing = (JSON.stringify({ models: [{ name: "llama3.2:3b", model: "llama3.2:3b" }, { name: "glm-5:cloud", model: "glm-5:cloud" }] }));
        const out = JSON.parse(filterListing(policy, [], "tags", listing)!);
        assert.deepEqual(out.models.map((m: { name: string }) => m.name), ["llama3.2:3b"]);
    });
});
