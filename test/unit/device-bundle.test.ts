/**
 * device:bundle against a real CA and device certificate made with openssl: every file it
 * writes is accepted by openssl (PEM parse, chain verification, PKCS#12 with the printed
 * passphrase), modes are private, the passphrase is stored nowhere, and bad inputs are refused
 * before anything is written.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { bundleInputsFrom, curlExample, pythonExample } from "../../scripts/lib/device-bundle";
import { createCa, issueCert } from "../../scripts/sandbox/pki";

const ROOT = resolve(__dirname, "../..");
const work = mkdtempSync(join(tmpdir(), "device-bundle-"));
after(() => rmSync(work, { recursive: true, force: true }));
const DAY_MS = 86_400_000;

const ca = { cert: join(work, "ca.crt"), key: join(work, "ca.key") };
const alice = { cert: join(work, "alice.crt"), key: join(work, "alice.key") };
const otherCa = { cert: join(work, "other-ca.crt"), key: join(work, "other-ca.key") };
const expired = { cert: join(work, "expired.crt"), key: join(work, "expired.key") };

function outputs(overrides: Record<string, unknown> = {}, device = alice, name = "alice-laptop") {
    return {
        gatewayUrl: "https://ollama.localhost:8443",
        caCertPem: readFileSync(ca.cert, "utf8"),
        devices: { [name]: { owner: "alice@example.com", groups: [], fingerprintSha256: "00", serial: "01" } },
        deviceBundles: { [name]: { certPem: readFileSync(device.cert, "utf8"), keyPem: readFileSync(device.key, "utf8") } },
        ...overrides,
    };
}

function saved(doc: unknown): string {
    const file = join(mkdtempSync(join(work, "outputs-")), "outputs.json");
    writeFileSync(file, typeof doc === "string" ? doc : JSON.stringify(doc), { mode: 0o600 });
    return file;
}

function bundle(args: string[], env: NodeJS.ProcessEnv = process.env) {
    const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "scripts/device-bundle.ts"), ...args], { cwd: ROOT, encoding: "utf8", env });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const passphraseOf = (stdout: string) => {
    const m = /stored nowhere:\n\n {4}(\S+)\n/.exec(stdout);
    assert.ok(m, `no passphrase in:\n${stdout}`);
    return m[1];
};
const openssl = (args: string[], env: NodeJS.ProcessEnv = process.env) => execFileSync("openssl", args, { encoding: "utf8", env, stdio: ["ignore", "pipe", "pipe"] });
const modeOf = (p: string) => statSync(p).mode & 0o777;
const noStackTrace = (s: string) => assert.doesNotMatch(s, /^\s+at .+:\d+:\d+\)?$/m);

before(() => {
    createCa(ca, "bundle test CA", 30);
    createCa(otherCa, "some other CA", 30);
    issueCert(ca, alice, { commonName: "alice-laptop", usage: "client", notAfter: new Date(Date.now() + 30 * DAY_MS) });
    issueCert(ca, expired, { commonName: "alice-laptop", usage: "client", notBefore: new Date(Date.now() - 30 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
});

describe("device:bundle", () => {
    test("writes PEMs, CA, PKCS#12 and examples with private modes; openssl accepts all of them", () => {
        const out = join(work, "alice-bundle");
        const r = bundle(["--name", "alice-laptop", "--out", out, "--from", saved(outputs())]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(readdirSync(out).sort(), ["alice-laptop.crt", "alice-laptop.key", "alice-laptop.p12", "ca.crt", "curl-example.sh", "openai_example.py"]);
        assert.equal(modeOf(out), 0o700);
        assert.equal(modeOf(join(out, "alice-laptop.key")), 0o600);
        assert.equal(modeOf(join(out, "alice-laptop.p12")), 0o600);

        // PEM: parse, chain to the CA, key matches the certificate.
        assert.match(openssl(["x509", "-in", join(out, "alice-laptop.crt"), "-noout", "-subject"]), /CN ?= ?alice-laptop/);
        assert.match(openssl(["verify", "-CAfile", join(out, "ca.crt"), join(out, "alice-laptop.crt")]), /: OK\n$/);
        assert.equal(openssl(["pkey", "-in", join(out, "alice-laptop.key"), "-pubout"]), openssl(["x509", "-in", join(out, "alice-laptop.crt"), "-noout", "-pubkey"]));

        // PKCS#12: opens with the printed passphrase, modern algorithms, holds key + cert + CA.
        const env = { ...process.env, P12_PASS: passphraseOf(r.stdout) };
        // `-info` reports the algorithms on stderr.
        const infoRun = spawnSync("openssl", ["pkcs12", "-in", join(out, "alice-laptop.p12"), "-passin", "env:P12_PASS", "-info", "-noout"], { encoding: "utf8", env });
        assert.equal(infoRun.status, 0, infoRun.stderr);
        const info = infoRun.stdout + infoRun.stderr;
        assert.match(info, /MAC: sha256/);
        assert.match(info, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, .*hmacWithSHA256/);
        assert.match(info, /PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC/);
        assert.doesNotMatch(info, /RC2|3DES|TripleDES|sha1/i);
        const contents = openssl(["pkcs12", "-in", join(out, "alice-laptop.p12"), "-passin", "env:P12_PASS", "-nodes"], env);
        assert.equal((contents.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, "device cert and CA cert");
        assert.match(contents, /friendlyName: alice-laptop \(zero-trust-ollama\)/);
        assert.match(contents, /BEGIN PRIVATE KEY/);
        const wrong = spawnSync("openssl", ["pkcs12", "-in", join(out, "alice-laptop.p12"), "-passin", "pass:wrong", "-noout"]);
        assert.notEqual(wrong.status, 0, "a wrong passphrase is refused");

        // The passphrase exists only in the command's output.
        const pass = passphraseOf(r.stdout);
        assert.ok(pass.length >= 24);
        for (const f of readdirSync(out)) assert.ok(!readFileSync(join(out, f)).includes(pass), `${f} contains the passphrase`);
        // A second run generates a different passphrase.
        assert.notEqual(passphraseOf(bundle(["--name", "alice-laptop", "--out", out, "--from", saved(outputs())]).stdout), pass);
    });

    test("examples: curl with --cert/--key/--cacert and a --resolve hint; OpenAI SDK with an mTLS httpx client", () => {
        const inputs = bundleInputsFrom(JSON.stringify(outputs()), "o.json", "alice-laptop");
        const curl = curlExample("alice-laptop", inputs);
        assert.match(curl, /curl --fail-with-body .*\\\n {2}--cert \.\/alice-laptop\.crt --key \.\/alice-laptop\.key --cacert \.\/ca\.crt \\\n {2}'https:\/\/ollama\.localhost:8443\/api\/version'\n$/s);
        assert.match(curl, /--resolve ollama\.localhost:8443:127\.0\.0\.1/);
        assert.doesNotMatch(curlExample("alice-laptop", { ...inputs, gatewayUrl: "https://127.0.0.1:9443" }), /--resolve/);
        const py = pythonExample("alice-laptop", inputs);
        assert.match(py, /ssl\.create_default_context\(cafile=str\(HERE \/ "ca\.crt"\)\)/);
        assert.match(py, /load_cert_chain\(certfile=str\(HERE \/ "alice-laptop\.crt"\), keyfile=str\(HERE \/ "alice-laptop\.key"\)\)/);
        assert.match(py, /base_url="https:\/\/ollama\.localhost:8443\/v1"/);
        assert.match(py, /http_client=httpx\.Client\(verify=tls\)/);

        // A device with an API key sends it as the bearer token, read from its 0600 file.
        const keyed = bundleInputsFrom(JSON.stringify(outputs({ apiKeys: { "alice-laptop": "k".repeat(48) } })), "o.json", "alice-laptop");
        assert.match(curlExample("alice-laptop", keyed), /-H "Authorization: Bearer \$\(cat \.\/alice-laptop\.api-key\)"/);
        assert.match(pythonExample("alice-laptop", keyed), /api_key=\(HERE \/ "alice-laptop\.api-key"\)\.read_text\(\)\.strip\(\)/);
        const out = join(work, "keyed-bundle");
        const r = bundle(["--name", "alice-laptop", "--out", out, "--from", saved(outputs({ apiKeys: { "alice-laptop": "k".repeat(48) } }))]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readFileSync(join(out, "alice-laptop.api-key"), "utf8"), "k".repeat(48) + "\n");
        assert.equal(modeOf(join(out, "alice-laptop.api-key")), 0o600);
        assert.ok(!r.stdout.includes("k".repeat(48)), "the API key is not printed");

        // With user sign-in the examples ask for a token instead of inventing one.
        const entra = bundleInputsFrom(JSON.stringify(outputs({ identity: { provider: "entra", issuerUrl: "https://login.microsoftonline.com/t/v2.0", clientId: "c", tokenResource: "api://c" } })), "o.json", "alice-laptop");
        assert.match(curlExample("alice-laptop", entra), /az account get-access-token --resource api:\/\/c/);
        assert.match(curlExample("alice-laptop", entra), /Bearer \$\{OLLAMA_GATEWAY_TOKEN:\?set OLLAMA_GATEWAY_TOKEN\}/);
        assert.match(pythonExample("alice-laptop", entra), /api_key=os\.environ\["OLLAMA_GATEWAY_TOKEN"\]/);
    });

    test("refusals: exit 1, a clear message, no stack trace, nothing written", () => {
        const cases: [string, string[], RegExp][] = [
            ["unknown device", ["--name", "mallory", "--from", saved(outputs())], /no device named "mallory" in the stack outputs \(devices: alice-laptop\)/],
            ["masked secrets", ["--name", "alice-laptop", "--from", saved(outputs({ deviceBundles: "[secret]" }))], /masked as \[secret\].*--show-secrets/],
            ["not JSON", ["--name", "alice-laptop", "--from", saved("Current stack outputs (4):")], /not JSON/],
            ["not this stack", ["--name", "alice-laptop", "--from", saved({ url: "x" })], /stack output "gatewayUrl" is missing/],
            ["another CA", ["--name", "alice-laptop", "--from", saved(outputs({ caCertPem: readFileSync(otherCa.cert, "utf8") }))], /was not issued by the stack's CA/],
            ["wrong key", ["--name", "alice-laptop", "--from", saved(outputs({ deviceBundles: { "alice-laptop": { certPem: readFileSync(alice.cert, "utf8"), keyPem: readFileSync(expired.key, "utf8") } } }))], /does not match its certificate/],
            ["expired", ["--name", "alice-laptop", "--from", saved(outputs({}, expired))], /expired on .*run `pulumi up` to renew it/],
            ["http gateway", ["--name", "alice-laptop", "--from", saved(outputs({ gatewayUrl: "http://ollama.localhost:8443" }))], /must be https/],
            ["missing --from file", ["--name", "alice-laptop", "--from", join(work, "nope.json")], /nope\.json: cannot read \(ENOENT\)/],
        ];
        for (const [label, args, expected] of cases) {
            const out = join(work, `refused-${label.replace(/\W+/g, "-")}`);
            const r = bundle([...args, "--out", out]);
            assert.equal(r.code, 1, `${label}: ${r.stderr}`);
            assert.match(r.stderr, expected, label);
            noStackTrace(r.stderr);
            assert.ok(!existsSync(out), `${label}: ${out} was created`);
        }
    });

    test("an existing --out directory readable by others is refused", () => {
        const shared = join(work, "shared-dir");
        mkdirSync(shared);
        chmodSync(shared, 0o755);
        const r = bundle(["--name", "alice-laptop", "--out", shared, "--from", saved(outputs())]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /is accessible to other users \(mode 755\)/);
        assert.deepEqual(readdirSync(shared), []);
    });

    test("an existing --out directory of another user is refused", { skip: process.getuid?.() !== 0 && "needs root to chown the directory" }, () => {
        const theirs = join(work, "their-dir");
        mkdirSync(theirs, { mode: 0o700 });
        chownSync(theirs, 65534, 65534);
        const r = bundle(["--name", "alice-laptop", "--out", theirs, "--from", saved(outputs())]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /belongs to another user \(uid 65534\)/);
        assert.deepEqual(readdirSync(theirs), []);
    });

    test("without --from it runs the pulumi CLI, and says so clearly when the CLI is missing", () => {
        const r = bundle(["--name", "alice-laptop", "--out", join(work, "no-cli")], { ...process.env, PATH: "/nonexistent" });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /the pulumi CLI is not installed or not on PATH.*--from outputs\.json/);
        noStackTrace(r.stderr);

        // A stand-in `pulumi` on PATH proves the exact command line and that its JSON is used.
        const bin = mkdtempSync(join(work, "bin-"));
        const argsLog = join(bin, "args");
        writeFileSync(join(bin, "pulumi"), `#!/bin/sh\nprintf '%s\\n' "$@" > ${JSON.stringify(argsLog)}\ncat ${JSON.stringify(saved(outputs()))}\n`, { mode: 0o755 });
        const ok = bundle(["--name", "alice-laptop", "--out", join(work, "via-cli"), "--stack-name", "dev"], { ...process.env, PATH: `${bin}:${process.env.PATH}` });
        assert.equal(ok.code, 0, ok.stderr);
        assert.equal(readFileSync(argsLog, "utf8"), "stack\noutput\n--json\n--show-secrets\n--stack\ndev\n");
    });

    test("--stack is a stack file everywhere: here it is refused with the --stack-name to use", () => {
        const r = bundle(["--name", "alice-laptop", "--out", join(work, "wrong-flag"), "--stack", "Pulumi.dev.yaml"]);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /--stack takes a stack file in the other commands; here give the Pulumi stack's name: --stack-name dev/);
        assert.equal(existsSync(join(work, "wrong-flag")), false);
    });

    test("--sandbox reads a sandbox.json; a vanished state dir is a clear error", () => {
        const info = { url: "https://127.0.0.1:9443", ca: ca.cert, devices: { "alice-laptop": alice } };
        const out = join(work, "from-sandbox");
        const ok = bundle(["--name", "alice-laptop", "--out", out, "--sandbox", saved(info)]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.equal(readFileSync(join(out, "alice-laptop.key"), "utf8"), readFileSync(alice.key, "utf8"));
        assert.match(readFileSync(join(out, "curl-example.sh"), "utf8"), /'https:\/\/127\.0\.0\.1:9443\/api\/version'/);
        const gone = bundle(["--name", "alice-laptop", "--out", join(work, "gone"), "--sandbox", saved({ ...info, ca: join(work, "gone", "ca.crt") })]);
        assert.equal(gone.code, 1);
        assert.match(gone.stderr, /cannot read .*gone\/ca\.crt \(ENOENT\); is the sandbox state dir still there\?/);
        noStackTrace(gone.stderr);
    });

    test("usage errors exit 2", () => {
        const r = bundle(["--name", "alice-laptop"]);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /missing --out\n\nusage: npm run device:bundle/);
        const traversal = bundle(["--name", "../../escape", "--out", join(work, "x"), "--from", saved(outputs({}, alice, "../../escape"))]);
        assert.equal(traversal.code, 2);
        assert.match(traversal.stderr, /--name must be a device name matching/);
        assert.ok(!existsSync(join(work, "x")));
        const both = bundle(["--name", "alice-laptop", "--out", join(work, "x"), "--from", "a.json", "--sandbox", "b.json"]);
        assert.equal(both.code, 2);
        assert.match(both.stderr, /give only one of --from, --sandbox/);
    });
});
