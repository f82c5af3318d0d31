/**
 * The operator's device lifecycle end to end, against the real nginx in the sandbox: enrol a
 * device with device:add in a copy of Pulumi.dev.yaml, run the sandbox, build the device's
 * bundle from a stack-output document made from the sandbox state, and use the bundle (PEM,
 * PKCS#12, the generated curl and Python scripts) for successful requests; then
 * revoke it with device:revoke and see the same certificate refused while nothing reaches Ollama.
 * The same bundle is also checked against the HAProxy gateway, and with a per-device API key.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { REPO_ROOT, startSandbox, tempDir, writeStackFile, type Sandbox } from "./harness";

const DEVICE = "carol-phone";

function npmScript(script: string, args: string[]) {
    const r = spawnSync(process.execPath, ["--import", "tsx", join(REPO_ROOT, "scripts", `${script}.ts`), ...args], { cwd: REPO_ROOT, encoding: "utf8" });
    assert.equal(r.status, 0, `${script} ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
}

/** What `pulumi stack output --json --show-secrets` prints, built from the sandbox's PKI. */
function stackOutputsOf(sb: Sandbox): string {
    const read = (p: string) => readFileSync(p, "utf8");
    const entries = Object.entries(sb.info.devices);
    return JSON.stringify({
        gatewayUrl: sb.info.url,
        caCertPem: read(sb.info.ca),
        devices: Object.fromEntries(entries.map(([name, d]) => [name, { fingerprintSha256: d.fingerprintSha256 }])),
        deviceBundles: Object.fromEntries(entries.map(([name, d]) => [name, { certPem: read(d.cert), keyPem: read(d.key) }])),
    });
}

/**
 * Stand-in for the `openai` package, which Debian does not package: the one call
 * openai_example.py makes, done as the SDK does it (POST {base_url}/chat/completions with the
 * API key as a bearer token, through the httpx client it was given). The TLS setup, base URL and
 * client wiring under test are the generated script's own.
 */
const OPENAI_STAND_IN = `import types


class OpenAI:
    def __init__(self, *, base_url, api_key, http_client):
        self._base, self._key, self._http = base_url.rstrip("/"), api_key, http_client
        self.chat = types.SimpleNamespace(completions=types.SimpleNamespace(create=self._create))

    def _create(self, **body):
        r = self._http.post(self._base + "/chat/completions", json=body, headers={"Authorization": "Bearer " + self._key})
        r.raise_for_status()
        return types.SimpleNamespace(choices=[types.SimpleNamespace(message=types.SimpleNamespace(content=c["message"]["content"])) for c in r.json()["choices"]])
`;

/** Debian's python3 with python3-httpx (.ci/run installs it); pyenv shims may shadow `python3`. */
const PYTHON = "/usr/bin/python3";

function runPythonExample(bundleDir: string) {
    const shim = tempDir("zto-openai-stand-in-");
    writeFileSync(join(shim, "openai.py"), OPENAI_STAND_IN);
    return spawnSync(PYTHON, [join(bundleDir, "openai_example.py")], { encoding: "utf8", env: { ...process.env, PYTHONPATH: shim }, timeout: 30_000 });
}

/** curl against the gateway; returns the HTTP status (0 when the TLS handshake itself failed) and body. */
function curl(sb: Sandbox, path: string, tlsArgs: string[], extra: string[] = []): { status: number; body: string } {
    const r = spawnSync("curl", ["--silent", "--show-error", "--max-time", "15", "--write-out", "\n%{http_code}", ...tlsArgs, ...extra, sb.info.url + path], { encoding: "utf8" });
    const lines = r.stdout.split("\n");
    return { status: Number(lines.pop()), body: lines.join("\n") };
}

describe("device lifecycle against the real nginx", () => {
    test("add -> bundle -> 200 with PEM, PKCS#12, the curl script and the SDK script; revoke -> 403, nothing reaches Ollama", async () => {
        const stackDir = tempDir("zto-lifecycle-");
        const stack = join(stackDir, "Pulumi.dev.yaml");
        copyFileSync(join(REPO_ROOT, "Pulumi.dev.yaml"), stack);
        const stateDir = tempDir("zto-lifecycle-state-");
        const bundleDir = join(tempDir("zto-lifecycle-bundle-"), DEVICE);

        npmScript("device-add", ["--stack", stack, "--name", DEVICE, "--owner", "carol@example.com", "--groups", "ml-eng"]);
        let sb = await startSandbox({ stack, stateDir });
        const firstUrl = sb.info.url;
        let pem: string[];
        try {
            assert.ok(sb.info.devices[DEVICE], "the sandbox issued a certificate for the new device");
            const outputsFile = join(stackDir, "outputs.json");
            writeFileSync(outputsFile, stackOutputsOf(sb), { mode: 0o600 });
            const printed = npmScript("device-bundle", ["--name", DEVICE, "--out", bundleDir, "--from", outputsFile]);
            const passphrase = /stored nowhere:\n\n {4}(\S+)\n/.exec(printed)![1];
            const file = (n: string) => join(bundleDir, n);
            pem = ["--cert", file(`${DEVICE}.crt`), "--key", file(`${DEVICE}.key`), "--cacert", file("ca.crt")];

            // The bundle's PEM pair.
            const version = curl(sb, "/api/version", pem);
            assert.equal(version.status, 200, version.body);
            assert.match(version.body, /"version"/);
            // The PKCS#12 file, opened with the printed passphrase (as a browser would import it).
            const p12 = curl(sb, "/api/version", ["--cert-type", "P12", "--cert", `${file(`${DEVICE}.p12`)}:${passphrase}`, "--cacert", file("ca.crt")]);
            assert.equal(p12.status, 200, p12.body);
            // The generated script, exactly as written (the sandbox URL is an IP: no --resolve needed).
            const script = spawnSync("sh", [file("curl-example.sh")], { encoding: "utf8" });
            assert.equal(script.status, 0, script.stderr);
            assert.match(script.stdout, /"version"/);
            // The generated Python script: its own TLS context and httpx client, through nginx and the filter.
            const py = runPythonExample(bundleDir);
            assert.equal(py.status, 0, py.stderr);
            assert.ok(py.stdout.trim().length > 0, "the script printed the model's reply");
            const reached = sb.ollamaRequests().map((r) => r.path);
            assert.ok(reached.includes("/api/version") && reached.includes("/v1/chat/completions"), `stub Ollama saw ${reached.join(", ")}`);
            // `--sandbox` reads the same state directly: the same files.
            const viaSandbox = join(tempDir("zto-lifecycle-bundle-"), DEVICE);
            npmScript("device-bundle", ["--name", DEVICE, "--out", viaSandbox, "--sandbox", join(sb.stateDir, "sandbox.json")]);
            for (const f of [`${DEVICE}.crt`, `${DEVICE}.key`, "ca.crt", "curl-example.sh", "openai_example.py"]) {
                assert.equal(readFileSync(join(viaSandbox, f), "utf8"), readFileSync(file(f), "utf8"), f);
            }
        } finally {
            await sb.stop();
        }

        // Revocation is a config edit: the same certificate files still exist and chain to the CA.
        npmScript("device-revoke", ["--stack", stack, "--name", DEVICE]);
        assert.equal(readFileSync(stack, "utf8"), readFileSync(join(REPO_ROOT, "Pulumi.dev.yaml"), "utf8"), "the stack file is back to the original");
        sb = await startSandbox({ stack, stateDir });
        try {
            assert.equal(sb.info.devices[DEVICE], undefined);
            sb.resetOllamaLog();
            const refused = curl(sb, "/api/version", pem);
            // The handshake succeeds (the certificate chains to the CA); the allowlist refuses it.
            assert.equal(refused.status, 403, `revoked device got ${refused.status}: ${refused.body}`);
            assert.doesNotMatch(refused.body, /"version"/);
            const refusedChat = curl(sb, "/v1/chat/completions", pem, ["-H", "Content-Type: application/json", "--data", '{"model":"llama3.2:3b","messages":[{"role":"user","content":"hi"}]}']);
            assert.equal(refusedChat.status, 403, `revoked device got ${refusedChat.status}: ${refusedChat.body}`);
            // The restarted sandbox listens on a new port: point the same script at it.
            const script = join(bundleDir, "openai_example.py");
            writeFileSync(script, readFileSync(script, "utf8").replaceAll(firstUrl, sb.info.url));
            const py = runPythonExample(bundleDir);
            assert.notEqual(py.status, 0, "the SDK example fails for a revoked device");
            assert.match(py.stderr, /403/);
            assert.deepEqual(sb.ollamaRequests(), [], "nothing from the revoked device reached Ollama");
            // Control: an enrolled device still gets through, so the refusal is about the revocation.
            const alice = sb.info.devices["alice-laptop"];
            assert.equal(curl(sb, "/api/version", ["--cert", alice.cert, "--key", alice.key, "--cacert", sb.info.ca]).status, 200);
        } finally {
            await sb.stop();
        }
    });

    test("the same bundle works at the HAProxy gateway: PEM pair and PKCS#12", async () => {
        const stack = writeStackFile({ domain: "ollama.test", devices: [], gateway: { kind: "haproxy" }, identity: { provider: "none" }, filter: { enabled: false } });
        npmScript("device-add", ["--stack", stack, "--name", DEVICE, "--owner", "carol@example.com"]);
        const sb = await startSandbox({ stack });
        try {
            assert.equal(sb.info.gateway.kind, "haproxy");
            const bundleDir = join(tempDir("zto-haproxy-bundle-"), DEVICE);
            const printed = npmScript("device-bundle", ["--name", DEVICE, "--out", bundleDir, "--sandbox", join(sb.stateDir, "sandbox.json")]);
            const passphrase = /stored nowhere:\n\n {4}(\S+)\n/.exec(printed)![1];
            const file = (n: string) => join(bundleDir, n);
            const pem = curl(sb, "/api/version", ["--cert", file(`${DEVICE}.crt`), "--key", file(`${DEVICE}.key`), "--cacert", file("ca.crt")]);
            assert.equal(pem.status, 200, pem.body);
            const p12 = curl(sb, "/api/version", ["--cert-type", "P12", "--cert", `${file(`${DEVICE}.p12`)}:${passphrase}`, "--cacert", file("ca.crt")]);
            assert.equal(p12.status, 200, p12.body);
            assert.deepEqual(sb.ollamaRequests().map((r) => r.path), ["/api/version", "/api/version"]);
        } finally {
            await sb.stop();
        }
    });

    test("a device enrolled with --api-key: the bundle's scripts send its key and pass; without the key the certificate alone is refused", async () => {
        const stack = writeStackFile({ domain: "ollama.test", devices: [], gateway: { kind: "nginx" }, identity: { provider: "none" }, filter: { enabled: false } });
        npmScript("device-add", ["--stack", stack, "--name", DEVICE, "--owner", "carol@example.com", "--api-key"]);
        const sb = await startSandbox({ stack });
        try {
            const bundleDir = join(tempDir("zto-keyed-bundle-"), DEVICE);
            npmScript("device-bundle", ["--name", DEVICE, "--out", bundleDir, "--sandbox", join(sb.stateDir, "sandbox.json")]);
            const file = (n: string) => join(bundleDir, n);
            assert.equal(readFileSync(file(`${DEVICE}.api-key`), "utf8").trim(), sb.info.devices[DEVICE].apiKey);
            const script = spawnSync("sh", [file("curl-example.sh")], { encoding: "utf8" });
            assert.equal(script.status, 0, script.stderr);
            assert.match(script.stdout, /"version"/);
            const py = runPythonExample(bundleDir);
            assert.equal(py.status, 0, py.stderr);
            const certOnly = curl(sb, "/api/version", ["--cert", file(`${DEVICE}.crt`), "--key", file(`${DEVICE}.key`), "--cacert", file("ca.crt")]);
            assert.equal(certOnly.status, 401, certOnly.body);
            assert.deepEqual(sb.ollamaRequests().map((r) => r.path), ["/api/version", "/v1/chat/completions"], "the keyless request never reached Ollama");
        } finally {
            await sb.stop();
        }
    });
});
