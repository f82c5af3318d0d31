/**
 * The sandbox's PKI, made with the real `openssl` CLI and kept in the state dir like Pulumi
 * state: a CA, the gateway's server certificate and one client certificate per configured
 * device. Files that exist are kept, so restarting with the same state dir keeps every
 * fingerprint; a device removed from config keeps its files but leaves the gateway's allowlist.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { certIdentity, type CertIdentity, type KeyAlgorithm } from "../../components/certs";
import type { StackConfig } from "../../components/config";

/** Paths of a PEM certificate and its PEM private key. */
export interface CertPair {
    readonly cert: string;
    readonly key: string;
}

export interface SandboxPki {
    readonly ca: CertPair;
    readonly server: CertPair;
    /** Every device in config, by name, with the fingerprints the gateway allowlists. */
    readonly devices: Readonly<Record<string, CertPair & { readonly identity: CertIdentity }>>;
}

export class PkiError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "PkiError";
    }
}

const ORGANIZATION = "zero-trust-ollama sandbox";
/** Allow for clock skew between the machine and a client. */
const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

const GENPKEY_ARGS: Record<KeyAlgorithm, string[]> = {
    "ECDSA-P256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ECDSA-P384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "RSA-3072": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
    "RSA-4096": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
};

function openssl(args: readonly string[]): string {
    try {
        return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
        const err = e as NodeJS.ErrnoException & { stderr?: string };
        if (err.code === "ENOENT") throw new PkiError("the openssl command is not installed (apt-get install openssl)");
        throw new PkiError(`openssl ${args[0]} failed: ${(err.stderr ?? err.message).trim().split("\n").slice(0, 3).join(" | ")}`);
    }
}

/** A new private key, written with mode 0600 from the start (never briefly world-readable). */
export function generateKey(path: string, algorithm: KeyAlgorithm = "ECDSA-P256"): void {
    writeFileSync(path, openssl(["genpkey", ...GENPKEY_ARGS[algorithm]]), { mode: 0o600 });
}

/** openssl config for the CA and for signing: one extension section per certificate role. */
function opensslConfig(workDir: string): string {
    return `[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused
[ca]
default_ca = sandbox_ca
[sandbox_ca]
database = ${join(workDir, "index.txt")}
serial = ${join(workDir, "serial")}
new_certs_dir = ${workDir}
default_md = sha256
policy = sandbox_policy
unique_subject = no
copy_extensions = none
[sandbox_policy]
organizationName = optional
commonName = supplied
[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @server_sans
[server_sans]
`;
}

function withWorkDir<T>(fn: (dir: string, config: string) => T, extraConfig = ""): T {
    const dir = mkdtempSync(join(tmpdir(), "zto-openssl-"));
    try {
        const config = join(dir, "openssl.cnf");
        writeFileSync(config, opensslConfig(dir) + extraConfig);
        writeFileSync(join(dir, "index.txt"), "");
        writeFileSync(join(dir, "serial"), "01\n");
        return fn(dir, config);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/** A self-signed CA (key + certificate) that may sign end-entity certificates only. */
export function createCa(out: CertPair, commonName: string, validityDays: number, algorithm: KeyAlgorithm = "ECDSA-P256"): void {
    generateKey(out.key, algorithm);
    withWorkDir((_dir, config) => {
        const pem = openssl(["req", "-x509", "-new", "-config", config, "-extensions", "ca_ext", "-key", out.key, "-subj", `/O=${ORGANIZATION}/CN=${commonName}`, "-days", String(validityDays), "-sha256"]);
        writeFileSync(out.cert, pem);
    });
}

export interface IssueOptions {
    readonly commonName: string;
    /** client: clientAuth only; server: serverAuth only, with SANs. */
    readonly usage: "client" | "server";
    readonly dnsNames?: readonly string[];
    readonly ipAddresses?: readonly string[];
    readonly notBefore?: Date;
    readonly notAfter: Date;
    readonly algorithm?: KeyAlgorithm;
}

/** `openssl ca` date form: YYYYMMDDHHMMSSZ. */
const asn1Time = (d: Date) => d.toISOString().replace(/[-:T]/g, "").replace(/\.\d{3}Z$/, "Z");

/** A new key and a certificate for it signed by `ca`; any validity window (also in the past). */
export function issueCert(ca: CertPair, out: CertPair, opts: IssueOptions): void {
    generateKey(out.key, opts.algorithm);
    const sans = [...(opts.dnsNames ?? []).map((d, i) => `DNS.${i + 1} = ${d}`), ...(opts.ipAddresses ?? []).map((ip, i) => `IP.${i + 1} = ${ip}`)].join("\n");
    withWorkDir((dir, config) => {
        const csr = join(dir, "request.csr");
        openssl(["req", "-new", "-config", config, "-key", out.key, "-subj", `/O=${ORGANIZATION}/CN=${opts.commonName}`, "-out", csr]);
        const notBefore = opts.notBefore ?? new Date(Date.now() - BACKDATE_MS);
        openssl([
            "ca", "-batch", "-config", config, "-notext", "-rand_serial",
            "-extensions", opts.usage === "server" ? "server_ext" : "client_ext",
            "-cert", ca.cert, "-keyfile", ca.key, "-in", csr, "-out", out.cert,
            "-startdate", asn1Time(notBefore), "-enddate", asn1Time(opts.notAfter),
        ]);
    }, sans + "\n");
}

/** Both files present: keep; neither (or only a key left by an interrupted run): create. */
function needsCreating(pair: CertPair, what: string): boolean {
    if (existsSync(pair.cert)) {
        if (!existsSync(pair.key)) throw new PkiError(`${pair.cert} exists but its key ${pair.key} is missing; restore the key or delete the certificate to issue a new ${what}`);
        return false;
    }
    return true;
}

/**
 * Make sure the state dir holds the CA, the server certificate (SANs: the config domain,
 * localhost, 127.0.0.1, ::1) and a certificate for every device in config; keep what exists.
 */
export function ensureSandboxPki(stateDir: string, cfg: StackConfig): SandboxPki {
    mkdirSync(join(stateDir, "devices"), { recursive: true, mode: 0o700 });
    const ca = { cert: join(stateDir, "ca.crt"), key: join(stateDir, "ca.key") };
    const server = { cert: join(stateDir, "server.crt"), key: join(stateDir, "server.key") };
    const devicePair = (name: string) => ({ cert: join(stateDir, "devices", `${name}.crt`), key: join(stateDir, "devices", `${name}.key`) });
    const algorithm = cfg.pki.keyAlgorithm;
    const day = (n: number) => new Date(Date.now() + n * DAY_MS);

    if (needsCreating(ca, "CA")) {
        const signedByLostCa = [server, ...cfg.devices.map((d) => devicePair(d.name))].filter((p) => existsSync(p.cert)).map((p) => p.cert);
        if (signedByLostCa.length) throw new PkiError(`${stateDir} has certificates but no CA (${ca.cert}): ${signedByLostCa.join(", ")}; restore ca.crt/ca.key or use an empty --state dir`);
        createCa(ca, `${cfg.domain} sandbox device CA`, cfg.pki.caValidityDays, algorithm);
    }
    if (needsCreating(server, "server certificate")) {
        issueCert(ca, server, { commonName: cfg.domain, usage: "server", dnsNames: [cfg.domain, "localhost"], ipAddresses: ["127.0.0.1", "::1"], notAfter: day(cfg.pki.serverCertValidityDays), algorithm });
    }
    const devices: Record<string, CertPair & { identity: CertIdentity }> = {};
    for (const d of cfg.devices) {
        const pair = devicePair(d.name);
        if (needsCreating(pair, `certificate for device ${d.name}`)) issueCert(ca, pair, { commonName: d.name, usage: "client", notAfter: day(cfg.pki.clientCertValidityDays), algorithm });
        devices[d.name] = { ...pair, identity: certIdentity(readFileSync(pair.cert, "utf8")) };
    }
    return { ca, server, devices };
}
