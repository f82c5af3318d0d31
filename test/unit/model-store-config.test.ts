import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULT_IMAGES, modelStoreSettings, parseStackConfig } from "../../components/config";

const base = (ollama: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ domain: "ollama.example.internal", ollama, ...extra });
const problems = (raw: Record<string, unknown>) => {
    const r = parseStackConfig(raw);
    return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
};

describe("model-store config keys", () => {
    test("defaults: checked, not provisioned, the pinned-tag probe image; unset keys leave the parsed config as before", () => {
        const r = parseStackConfig(base({}));
        assert.ok(r.ok);
        assert.deepEqual(modelStoreSettings(r.config), { allowUnencrypted: false, provision: undefined, probeImage: DEFAULT_IMAGES.modelStoreProbe, pinnedStack: false });
        assert.equal("modelStore" in r.config.ollama, false);
    });
    test("valid values are taken", () => {
        const r = parseStackConfig(base({ modelStore: { provision: "fscrypt", probeImage: "registry.local/python:3.13" } }));
        assert.ok(r.ok);
        assert.deepEqual(modelStoreSettings(r.config), { allowUnencrypted: false, provision: "fscrypt", probeImage: "registry.local/python:3.13", pinnedStack: false });
    });
    test("bad input is refused, naming the key", () => {
        assert.deepEqual(problems(base({ allowUnencryptedModels: "yes" })), ['zero-trust-ollama:ollama.allowUnencryptedModels: Invalid input: expected boolean, received string (got "yes")']);
        assert.match(problems(base({ modelStore: { provision: "luks" } }))[0], /^zero-trust-ollama:ollama\.modelStore\.provision: must be "fscrypt"/);
        assert.match(problems(base({ modelStore: { provision: "gocryptfs" } }))[0], /^zero-trust-ollama:ollama\.modelStore\.provision: gocryptfs cannot be provisioned by the program: .*CAP_SYS_ADMIN.*mount it on the host instead \(docs\/model-store\.md/);
        assert.match(problems(base({ modelStore: { provison: "fscrypt" } }))[0], /^zero-trust-ollama:ollama\.modelStore\.provison: unknown key/);
        assert.match(problems(base({ modelStore: { probeImage: "Python 3" } }))[0], /^zero-trust-ollama:ollama\.modelStore\.probeImage: must be an image reference/);
        assert.match(problems(base({ allowUnencryptedModels: true, modelStore: { provision: "fscrypt" } }))[0], /^zero-trust-ollama:ollama\.allowUnencryptedModels: contradicts ollama\.modelStore\.provision/);
    });
    test("requirePinnedImages covers the probe image, even with the model-store check waived (it checks the volumes too), and refuses the volume waiver", () => {
        assert.match(problems(base({}, { requirePinnedImages: true, ollama: { image: `ollama/ollama:0.12.3@sha256:${"a".repeat(64)}` }, gateway: { image: `nginx:1.28.0-alpine@sha256:${"b".repeat(64)}` } })).join("\n"), /ollama\.modelStore\.probeImage: must be pinned by digest/);
        const pinned = { image: `nginx:1.28.0-alpine@sha256:${"b".repeat(64)}` };
        const ollama = { allowUnencryptedModels: true, image: `ollama/ollama:0.12.3@sha256:${"a".repeat(64)}` };
        assert.match(problems(base({}, { requirePinnedImages: true, ollama, gateway: pinned })).join("\n"), /ollama\.modelStore\.probeImage: must be pinned by digest/);
        const waived = parseStackConfig(base({}, { requirePinnedImages: true, ollama: { ...ollama, modelStore: { probeImage: `python:3.13@sha256:${"c".repeat(64)}` } }, gateway: pinned }));
        assert.ok(waived.ok, JSON.stringify(!waived.ok && waived.problems));
        assert.equal(modelStoreSettings(waived.config).pinnedStack, true);
        assert.match(
            problems(base({}, { requirePinnedImages: true, ollama: { ...ollama, modelStore: { probeImage: `python:3.13@sha256:${"c".repeat(64)}` } }, gateway: pinned, docker: { allowUnencryptedVolumes: true } })).join("\n"),
            /^zero-trust-ollama:docker\.allowUnencryptedVolumes: cannot be true when requirePinnedImages is true/m,
        );
        assert.match(problems(base({}, { docker: { allowUnencryptedVolumes: "no" } })).join("\n"), /docker\.allowUnencryptedVolumes: Invalid input: expected boolean/);
    });
});
