/**
 * The Ollama pin: release numbers from image tags, OLLAMA_NO_CLOUD only where the pinned server
 * reads it, and the tools build running the very release the stack pins.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_IMAGES } from "../../components/config";
import { ollamaEnvs } from "../../components/ollama";
import { NO_CLOUD_SINCE, ollamaImageVersion } from "../../components/ollama-version";
import { TOOLS } from "../../scripts/lib/tools";

test("release numbers are read from the tag; other tags name none", () => {
    assert.deepEqual(ollamaImageVersion("ollama/ollama:0.17.4"), [0, 17, 4]);
    assert.deepEqual(ollamaImageVersion(`ollama/ollama:v0.16.2-rocm@sha256:${"a".repeat(64)}`), [0, 16, 2]);
    for (const ref of ["ollama/ollama:latest", "ollama/ollama", `ollama/ollama@sha256:${"a".repeat(64)}`, "ollama/ollama:0.17"]) assert.equal(ollamaImageVersion(ref), undefined, ref);
});

test("OLLAMA_NO_CLOUD from 0.16.2 on and for tags that name no release; never for older pins", () => {
    const has = (image: string) => ollamaEnvs(image, "5m").includes("OLLAMA_NO_CLOUD=1");
    assert.deepEqual(NO_CLOUD_SINCE, [0, 16, 2]);
    for (const image of ["ollama/ollama:0.16.2", "ollama/ollama:0.17.4", "ollama/ollama:1.0.0", "ollama/ollama:latest", "ollama/ollama"]) assert.ok(has(image), image);
    for (const image of ["ollama/ollama:0.16.1", "ollama/ollama:0.12.3", "ollama/ollama:0.6.5"]) assert.ok(!has(image), image);
    assert.deepEqual(ollamaEnvs("ollama/ollama:0.17.4", "10m"), ["OLLAMA_HOST=0.0.0.0:11434", "OLLAMA_NO_CLOUD=1", "OLLAMA_KEEP_ALIVE=10m"]);
});

test("the tools build runs the Ollama release the stack pins by default", () => {
    assert.equal(TOOLS.ollama.version, `v${ollamaImageVersion(DEFAULT_IMAGES.ollama)!.join(".")}`);
    assert.equal(TOOLS.ollama.version, "v0.17.4");
    assert.equal(`v${TOOLS.ollama.versionVariable.value}`, TOOLS.ollama.version, "the stamped version is the pinned one");
});
