import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { certIdentity } from "../../components/certs";
import { loadStackConfig } from "../../components/config";
import { ensureSandboxPki, issueCert, PkiError } from "../../scripts/sandbox/pki";

const dirs: string[] = [];
const freshDir = () => {
    const d = mkdtempSync(join(tmpdir(), "zto-pki-"));
    dirs.push(d);
    return d;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const devices = [
    { name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] },
    { name: "bob-workstation", owner: "bob@example.com" },
];
const cfg = loadStackConfig({ domain: "ollama.test", devices, pki: { keyAlgorithm: "ECDSA-P256" } });

const x509 = (cert: string, ...args: string[]) => execFileSync("openssl", ["x509", "-in", cert, "-noout", ...args], { encoding: "utf8" });
const verify = (ca: string, cert: string, purpose: string) => {
    try {
        return execFileSync("openssl", ["verify", "-CAfile", ca, "-purpose", purpose, cert], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
    } catch (e) {
        return String((e as { stdout?: string }).stdout ?? "") + String((e as { stderr?: string }).stderr ?? "");
    }
};

test("creates CA, server and device certs with strict roles, private keys 0600", () => {
    const dir = freshDir();
    const pki = ensureSandboxPki(dir, cfg);
    for (const key of [pki.ca.key, pki.server.key, ...Object.values(pki.devices).map((d) => d.key)]) assert.equal(statSync(key).mode & 0o777, 0o600, key);

    const serverText = x509(pki.server.cert, "-text");
    assert.match(serverText, /DNS:ollama\.test, DNS:localhost, IP Address:127\.0\.0\.1/);
    assert.match(serverText, /Extended Key Usage: *\n *TLS Web Server Authentication\n/);
    assert.match(verify(pki.ca.cert, pki.server.cert, "sslserver"), /: OK$/);
    assert.doesNotMatch(verify(pki.ca.cert, pki.server.cert, "sslclient"), /: OK$/, "the server cert must not work as a client cert");

    for (const d of devices) {
        const dev = pki.devices[d.name];
        assert.match(x509(dev.cert, "-subject"), new RegExp(`CN = ${d.name}$`, "m"));
        assert.match(x509(dev.cert, "-text"), /Extended Key Usage: *\n *TLS Web Client Authentication\n/);
        assert.match(verify(pki.ca.cert, dev.cert, "sslclient"), /: OK$/);
        assert.doesNotMatch(verify(pki.ca.cert, dev.cert, "sslserver"), /: OK$/, "a device cert must not impersonate the gateway");
        // The allowlist fingerprint is the one openssl (and so nginx) computes.
        const sha1 = x509(dev.cert, "-fingerprint", "-sha1").split("=")[1].trim().replace(/:/g, "").toLowerCase();
        assert.equal(dev.identity.sha1, sha1);
    }
    assert.match(x509(pki.ca.cert, "-text"), /CA:TRUE, pathlen:0/);
});

test("reuses what exists: same fingerprints on a second run; removed devices keep their files and the CA", () => {
    const dir = freshDir();
    const first = ensureSandboxPki(dir, cfg);
    const caBefore = readFileSync(first.ca.cert, "utf8");
    const second = ensureSandboxPki(dir, cfg);
    assert.equal(readFileSync(second.ca.cert, "utf8"), caBefore);
    for (const d of devices) assert.equal(second.devices[d.name].identity.sha256, first.devices[d.name].identity.sha256);

    const fewer = ensureSandboxPki(dir, loadStackConfig({ domain: "ollama.test", devices: [devices[0]], pki: { keyAlgorithm: "ECDSA-P256" } }));
    assert.deepEqual(Object.keys(fewer.devices), ["alice-laptop"]);
    assert.equal(readFileSync(fewer.ca.cert, "utf8"), caBefore);
    assert.equal(certIdentity(readFileSync(first.devices["bob-workstation"].cert, "utf8")).sha256, first.devices["bob-workstation"].identity.sha256, "bob's files stay");

    const more = ensureSandboxPki(dir, loadStackConfig({ domain: "ollama.test", devices: [...devices, { name: "carol-phone", owner: "carol@example.com" }], pki: { keyAlgorithm: "ECDSA-P256" } }));
    assert.equal(more.devices["alice-laptop"].identity.sha256, first.devices["alice-laptop"].identity.sha256);
    assert.match(verify(more.ca.cert, more.devices["carol-phone"].cert, "sslclient"), /: OK$/);
});

test("honours pki.keyAlgorithm", () => {
    const pki = ensureSandboxPki(freshDir(), loadStackConfig({ domain: "ollama.test", devices: [devices[0]], pki: { keyAlgorithm: "ECDSA-P384" } }));
    assert.match(x509(pki.devices["alice-laptop"].cert, "-text"), /NIST CURVE: P-384/);
});

test("inconsistent state dirs fail with a message naming the files, never silently re-keyed", () => {
    const dir = freshDir();
    const pki = ensureSandboxPki(dir, cfg);
    unlinkSync(pki.devices["alice-laptop"].key);
    assert.throws(() => ensureSandboxPki(dir, cfg), (e: unknown) => e instanceof PkiError && e.message.includes("alice-laptop.key is missing"));

    const lostCa = freshDir();
    const pki2 = ensureSandboxPki(lostCa, cfg);
    unlinkSync(pki2.ca.cert);
    unlinkSync(pki2.ca.key);
    assert.throws(() => ensureSandboxPki(lostCa, cfg), (e: unknown) => e instanceof PkiError && /no CA/.test(e.message));
});

test("issueCert can backdate: an expired certificate fails verification for that reason", () => {
    const dir = freshDir();
    const pki = ensureSandboxPki(dir, cfg);
    const out = { cert: join(dir, "old.crt"), key: join(dir, "old.key") };
    issueCert(pki.ca, out, { commonName: "old", usage: "client", notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) });
    assert.match(verify(pki.ca.cert, out.cert, "sslclient"), /certificate has expired/);
});
