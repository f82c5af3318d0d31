/**
 * Real key material for the rehearsal: the tls provider's resources answered by `openssl`
 * instead of the placeholder PEMs `plan` uses, so the gateway on the engine loads a real server
 * certificate and the allowlist holds real device fingerprints. Everything else is the same mock.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

const CURVES: Record<string, string> = { P256: "P-256", P384: "P-384", P521: "P-521" };
const USES: Record<string, string> = { server_auth: "serverAuth", client_auth: "clientAuth" };
const KEY_USES: Record<string, string> = { digital_signature: "digitalSignature", key_encipherment: "keyEncipherment", cert_signing: "keyCertSign", crl_signing: "cRLSign" };

function withFiles<T>(files: Record<string, string>, fn: (p: (name: string) => string) => T): T {
    const dir = mkdtempSync(path.join(tmpdir(), "zto-rehearsal-pki-"));
    try {
        for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text, { mode: 0o600 });
        return fn((name) => path.join(dir, name));
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/** Minimal `openssl req` config: the subject comes from -subj, the extensions from our section. */
const REQ_CONFIG = "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\n";
const openssl = (args: string[]) => execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const subjectOf = (s: Record<string, string> | undefined) => `/O=${s?.organization ?? "zero-trust-ollama"}/CN=${s?.commonName ?? "zero-trust-ollama"}`;

/** Extensions of a certificate from the provider's allowedUses and CA flag. */
function extensions(inputs: Record<string, any>, sans: string[]): string {
    const uses: string[] = inputs.allowedUses ?? [];
    const ext = [
        `basicConstraints=critical,${inputs.isCaCertificate ? "CA:TRUE,pathlen:0" : "CA:FALSE"}`,
        `keyUsage=critical,${uses.map((u) => KEY_USES[u]).filter(Boolean).join(",") || "digitalSignature"}`,
        "subjectKeyIdentifier=hash",
    ];
    const eku = uses.map((u) => USES[u]).filter(Boolean);
    if (eku.length) ext.push(`extendedKeyUsage=${eku.join(",")}`);
    if (sans.length) ext.push(`subjectAltName=${sans.join(",")}`);
    return ext.join("\n") + "\n";
}

/** Subject and SANs travel from the CertRequest to the LocallySignedCert by the CSR's PEM. */
const requests = new Map<string, { subject: string; sans: string[] }>();

/**
 * Outputs already made, by type, name and inputs: a second run of the program (a config edit,
 * then "pulumi up" again) keeps the keys and certificates whose inputs did not change, as
 * Pulumi's state does.
 */
const made = new Map<string, Record<string, unknown> | undefined>();

/** Outputs of a tls resource made with openssl; undefined for other types (the plan mocks answer). */
export function realTlsOutputs(type: string, name: string, inputs: Record<string, any>): Record<string, unknown> | undefined {
    const key = JSON.stringify([type, name, inputs]);
    if (!made.has(key)) made.set(key, makeTlsOutputs(type, inputs));
    return made.get(key);
}

function makeTlsOutputs(type: string, inputs: Record<string, any>): Record<string, unknown> | undefined {
    const days = String(Math.max(1, Math.round((inputs.validityPeriodHours ?? 24) / 24)));
    switch (type) {
        case "tls:index/privateKey:PrivateKey": {
            const args = inputs.algorithm === "RSA" ? ["-algorithm", "RSA", "-pkeyopt", `rsa_keygen_bits:${inputs.rsaBits ?? 3072}`] : ["-algorithm", "EC", "-pkeyopt", `ec_paramgen_curve:${CURVES[inputs.ecdsaCurve ?? "P256"] ?? "P-256"}`];
            const privateKeyPem = openssl(["genpkey", ...args]);
            const publicKeyPem = withFiles({ k: privateKeyPem }, (p) => openssl(["pkey", "-in", p("k"), "-pubout"]));
            return { privateKeyPem, publicKeyPem, privateKeyPemPkcs8: privateKeyPem };
        }
        case "tls:index/selfSignedCert:SelfSignedCert":
            return withFiles({ k: inputs.privateKeyPem, cnf: `${REQ_CONFIG}[v3]\n${extensions(inputs, [])}` }, (p) => ({
                certPem: openssl(["req", "-x509", "-new", "-key", p("k"), "-subj", subjectOf(inputs.subject), "-days", days, "-sha256", "-config", p("cnf"), "-extensions", "v3"]),
            }));
        case "tls:index/certRequest:CertRequest": {
            const sans = [...(inputs.dnsNames ?? []).map((d: string) => `DNS:${d}`), ...(inputs.ipAddresses ?? []).map((a: string) => `IP:${a}`)];
            const certRequestPem = withFiles({ k: inputs.privateKeyPem, cnf: REQ_CONFIG }, (p) => openssl(["req", "-new", "-key", p("k"), "-subj", subjectOf(inputs.subject), "-config", p("cnf")]));
            requests.set(certRequestPem, { subject: subjectOf(inputs.subject), sans });
            return { certRequestPem };
        }
        case "tls:index/locallySignedCert:LocallySignedCert": {
            const req = requests.get(inputs.certRequestPem);
            if (!req) throw new Error("rehearsal PKI: a certificate request it did not make");
            return withFiles({ csr: inputs.certRequestPem, ca: inputs.caCertPem, cakey: inputs.caPrivateKeyPem, ext: extensions(inputs, req.sans) }, (p) => ({
                certPem: openssl(["x509", "-req", "-in", p("csr"), "-CA", p("ca"), "-CAkey", p("cakey"), "-CAcreateserial", "-days", days, "-sha256", "-extfile", p("ext")]),
            }));
        }
        default:
            return undefined;
    }
}
