/**
 * The pack is published on its own, so it repeats a few facts of the program instead of
 * importing them; these tests keep the copies equal to the originals.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ENCRYPTED_STORE_LABEL, MODEL_STORE_CHECK_LABEL, ROLE_LABEL } from "../../components/hardening";
import { MODEL_STORE_CHECK } from "../../components/model-store";
import { isTailscaleAddress as programIsTailscale } from "../../components/config";
import { OLLAMA_MODELS_DIR } from "../../components/ollama";
import * as pack from "../../policies/lib/containers";
import { parseHuJson } from "../../policies/lib/hujson";

test("label names and the Ollama models directory match the program", () => {
    assert.equal(pack.ROLE_LABEL, ROLE_LABEL);
    assert.equal(pack.ENCRYPTED_STORE_LABEL, ENCRYPTED_STORE_LABEL);
    assert.equal(pack.MODEL_STORE_CHECK_LABEL, MODEL_STORE_CHECK_LABEL);
    assert.deepEqual(pack.MODEL_STORE_CHECK, MODEL_STORE_CHECK);
    assert.ok(pack.OLLAMA_DEFAULT_MODELS_DIR.startsWith(OLLAMA_MODELS_DIR + "/"), "the program's store mount covers Ollama's default models dir");
});

test("Tailscale address ranges agree with the config module, edges included", () => {
    const samples = ["100.64.0.0", "100.64.0.1", "100.127.255.255", "100.128.0.0", "100.63.255.255", "100.101.102.103", "10.0.0.1", "127.0.0.1", "0.0.0.0", "256.64.0.1", "fd7a:115c:a1e0::1", "FD7A:115C:A1E0:ab12::1", "fd7a:115c:a1e1::1", "::1", "::", ""];
    for (const a of samples) assert.equal(pack.isTailscaleAddress(a), programIsTailscale(a), a);
});

test("bind addresses: loopback and Tailscale only", () => {
    for (const ok of ["127.0.0.1", "::1", "[::1]", "100.100.1.1", "[fd7a:115c:a1e0::5]"]) assert.ok(pack.isAllowedBindAddress(ok), ok);
    for (const bad of ["", "0.0.0.0", "::", "[::]", "127.0.0.2", "192.168.0.10", "localhost"]) assert.ok(!pack.isAllowedBindAddress(bad), bad);
});

test("HuJSON: comments and trailing commas outside strings only", () => {
    assert.deepEqual(parseHuJson('{"a": "x // not a comment, ]", /* c */ "b": [1, 2,], // end\n}'), { a: "x // not a comment, ]", b: [1, 2] });
    assert.throws(() => parseHuJson("{ /* open"), /unterminated/);
    assert.throws(() => parseHuJson('{"a": }'));
});
