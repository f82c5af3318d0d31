import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { certIdentity, pemToDer } from "../../components/certs";
import { fakeCertPem } from "../../scripts/lib/mock-outputs";

test("certIdentity matches openssl's fingerprints and serial for a real certificate", () => {
    const dir = mkdtempSync(join(tmpdir(), "zto-certs-"));
    try {
        const cert = join(dir, "c.crt");
        execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "k.key"), "-out", cert, "-subj", "/CN=t", "-days", "1"], { stdio: "ignore" });
        const id = certIdentity(readFileSync(cert, "utf8"));
        const field = (args: string[]) => execFileSync("openssl", ["x509", "-in", cert, "-noout", ...args], { encoding: "utf8" }).trim().split("=")[1];
        assert.equal(id.sha1, field(["-fingerprint", "-sha1"]).replace(/:/g, "").toLowerCase());
        assert.equal(id.sha256, field(["-fingerprint", "-sha256"]).replace(/:/g, "").toLowerCase());
        assert.equal(id.serial, field(["-serial"]));
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test("mocked certificates parse and differ per resource", () => {
    const a = certIdentity(fakeCertPem("a"));
    const b = certIdentity(fakeCertPem("b"));
    assert.notEqual(a.sha1, b.sha1);
    assert.notEqual(a.serial, b.serial);
    assert.deepEqual(certIdentity(fakeCertPem("a")), a);
});

test("non-certificates are refused with a clear error", () => {
    assert.throws(() => pemToDer("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"), /not a PEM certificate/);
    assert.throws(() => certIdentity("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----"), /DER|serial/);
});
