/**
 * `--ollama`: which URLs the sandbox accepts for a real Ollama (loopback http only), the CLI's
 * refusal of a missing binary with nothing started, and the tiny model file's shape.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { tinyGguf } from "../../scripts/lib/tiny-gguf";
import { parseOllamaUrl } from "../../scripts/sandbox/real-ollama";

const ROOT = resolve(__dirname, "../..");

test("loopback http URLs are accepted; a path is not a URL", () => {
    assert.deepEqual(parseOllamaUrl("http://127.0.0.1:11434"), { host: "127.0.0.1", port: 11434 });
    assert.deepEqual(parseOllamaUrl("http://localhost:11434/"), { host: "127.0.0.1", port: 11434 });
    assert.deepEqual(parseOllamaUrl("http://[::1]:8080"), { host: "::1", port: 8080 });
    assert.equal(parseOllamaUrl("/usr/local/bin/ollama"), undefined);
    assert.equal(parseOllamaUrl(".tools/ollama-v0.17.4/ollama"), undefined);
});

test("anything else is refused with the reason", () => {
    for (const [url, why] of [
        ["https://127.0.0.1:11434", /must be http:\/\//],
        ["http://10.0.0.5:11434", /only a loopback Ollama/],
        ["http://ollama.example.com:11434", /only a loopback Ollama/],
        ["http://127.0.0.1:11434/api", /only scheme, host and port/],
        ["http://user:pw@127.0.0.1:11434", /only scheme, host and port/],
        ["http://127.0.0.1:11434?x=1", /only scheme, host and port/],
        ["http://[::1", /not a valid URL/],
    ] as const) assert.throws(() => parseOllamaUrl(url), why, url);
});

test("the CLI refuses a missing binary or a foreign URL before starting anything (exit 2, no state dir)", () => {
    const dir = mkdtempSync(join(tmpdir(), "zto-real-cli-"));
    const stack = join(dir, "Pulumi.t.yaml");
    writeFileSync(stack, "config:\n  zero-trust-ollama:domain: ollama.localhost\n  zero-trust-ollama:devices: []\n  zero-trust-ollama:ollama:\n    gpus: none\n");
    for (const [spec, why] of [
        [join(dir, "no-such-ollama"), /--ollama .*no-such-ollama: no such file/],
        ["http://192.0.2.1:11434", /only a loopback Ollama/],
    ] as const) {
        const r = spawnSync(process.execPath, ["--import", "tsx", "scripts/sandbox.ts", "--stack", stack, "--state", join(dir, "state"), "--ollama", spec], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, why);
        assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
        assert.ok(!existsSync(join(dir, "state")), "nothing created");
    }
    const empty = spawnSync(process.execPath, ["--import", "tsx", "scripts/sandbox.ts", "--stack", stack, "--state", join(dir, "state"), "--ollama="], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /--ollama needs the ollama binary's path or a URL/);
    rmSync(dir, { recursive: true, force: true });
});

test("the tiny model is a GGUF v3 file of a few hundred KiB, the same bytes every time", () => {
    const a = tinyGguf();
    assert.equal(a.subarray(0, 4).toString("ascii"), "GGUF");
    assert.equal(a.readUInt32LE(4), 3);
    assert.equal(Number(a.readBigUInt64LE(8)), 12, "tensors");
    assert.ok(a.length > 100_000 && a.length < 1_000_000, `${a.length} bytes`);
    assert.ok(a.equals(tinyGguf()));
    assert.ok(!a.equals(tinyGguf({ seed: 5 })));
});
