/**
 * Builds a device's connection bundle from the stack outputs (`pulumi stack output --json
 * --show-secrets`): PEM certificate and key, the CA, a PKCS#12 file for browsers and key
 * stores, and ready-to-run curl and OpenAI-SDK examples. Pure functions here; the command in
 * scripts/device-bundle.ts does the I/O.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";

/** A bundle that cannot be built: the message says why and what to do. */
export class BundleError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "BundleError";
    }
}

/** What the bundle needs from the stack outputs (see index.ts). */
export interface BundleInputs {
    readonly gatewayUrl: string;
    readonly caCertPem: string;
    readonly certPem: string;
    readonly keyPem: string;
    /** The device's API key, when it was enrolled with --api-key. */
    readonly apiKey?: string;
    /** Identity provider facts, when user sign-in is on (identity.provider is not none). */
    readonly identity?: { readonly provider: string; readonly issuerUrl?: string; readonly clientId?: string; readonly tokenResource?: string };
}

/** Extended key usage id-kp-clientAuth. */
const CLIENT_AUTH_OID = "1.3.6.1.5.5.7.3.2";

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const SECRET_MARKER = "[secret]";

/** Validate the outputs document and pick out one device. */
export function bundleInputsFrom(json: string, source: string, device: string): BundleInputs {
    let outputs: unknown;
    try {
        outputs = JSON.parse(json);
    } catch (e) {
        throw new BundleError(`${source}: not JSON (${(e as Error).message}); expected the output of \`pulumi stack output --json --show-secrets\``);
    }
    if (!isRecord(outputs)) throw new BundleError(`${source}: expected a JSON object of stack outputs`);
    for (const key of ["gatewayUrl", "caCertPem"]) {
        if (typeof outputs[key] !== "string") throw new BundleError(`${source}: stack output "${key}" is missing; is this the zero-trust-ollama stack, deployed with \`pulumi up\`?`);
    }
    const bundles = outputs.deviceBundles;
    if (bundles === SECRET_MARKER || (isRecord(bundles) && Object.values(bundles).some((b) => b === SECRET_MARKER))) {
        throw new BundleError(`${source}: "deviceBundles" is masked as [secret]; save the outputs with \`pulumi stack output --json --show-secrets\``);
    }
    if (!isRecord(bundles)) throw new BundleError(`${source}: stack output "deviceBundles" is missing`);
    const bundle = bundles[device];
    if (bundle === undefined) {
        const names = Object.keys(bundles).sort();
        throw new BundleError(`${source}: no device named "${device}" in the stack outputs (${names.length ? `devices: ${names.join(", ")}` : "no device is enrolled"}); enrol it with \`npm run device:add\` and run \`pulumi up\` first`);
    }
    if (!isRecord(bundle) || typeof bundle.certPem !== "string" || typeof bundle.keyPem !== "string") {
        throw new BundleError(`${source}: deviceBundles.${device} must have certPem and keyPem`);
    }
    const apiKeys = outputs.apiKeys;
    const apiKey = isRecord(apiKeys) && typeof apiKeys[device] === "string" && apiKeys[device] !== SECRET_MARKER ? (apiKeys[device] as string) : undefined;
    const identity = isRecord(outputs.identity) && typeof outputs.identity.provider === "string" ? (outputs.identity as unknown as BundleInputs["identity"]) : undefined;
    return { gatewayUrl: outputs.gatewayUrl as string, caCertPem: outputs.caCertPem as string, certPem: bundle.certPem, keyPem: bundle.keyPem, apiKey, identity };
}

/** The subset of the sandbox's sandbox.json (DESIGN.md §4) a bundle needs. */
export interface SandboxState {
    readonly url: string;
    readonly ca: string;
    readonly devices: Readonly<Record<string, { readonly cert: string; readonly key: string; readonly apiKey?: string }>>;
}

/**
 * The stack-output document the sandbox's state stands for, so a local sandbox and a deployed
 * stack give the same bundle. `read` loads a PEM file named in sandbox.json.
 */
export function stackOutputsFromSandbox(json: string, source: string, read: (path: string) => string): string {
    let info: SandboxState;
    try {
        info = JSON.parse(json) as SandboxState;
    } catch (e) {
        throw new BundleError(`${source}: not JSON (${(e as Error).message}); expected the sandbox.json that \`npm run sandbox\` prints after "ready"`);
    }
    if (!isRecord(info) || typeof info.url !== "string" || typeof info.ca !== "string" || !isRecord(info.devices)) {
        throw new BundleError(`${source}: not a sandbox.json (needs url, ca and devices)`);
    }
    const readPem = (path: string) => {
        try {
            return read(path);
        } catch (e) {
            throw new BundleError(`${source}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); is the sandbox state dir still there?`);
        }
    };
    const deviceBundles = Object.fromEntries(Object.entries(info.devices).map(([name, d]) => [name, { certPem: readPem(d.cert), keyPem: readPem(d.key) }]));
    const apiKeys = Object.fromEntries(Object.entries(info.devices).flatMap(([name, d]) => (typeof d.apiKey === "string" ? [[name, d.apiKey]] : [])));
    return JSON.stringify({ gatewayUrl: info.url, caCertPem: readPem(info.ca), deviceBundles, apiKeys });
}

/**
 * Check the pieces belong together before anything is written: the certificate is a client
 * certificate issued by this CA to this device, currently valid, and matches the key.
 */
export function checkBundle(inputs: BundleInputs, device: string, now: Date = new Date()): { notAfter: Date } {
    let cert: X509Certificate;
    let ca: X509Certificate;
    try {
        cert = new X509Certificate(inputs.certPem);
        ca = new X509Certificate(inputs.caCertPem);
    } catch (e) {
        throw new BundleError(`the device or CA certificate is not a PEM certificate (${(e as Error).message})`);
    }
    if (!cert.verify(ca.publicKey)) throw new BundleError(`the certificate of "${device}" was not issued by the stack's CA (caCertPem); were the outputs of two stacks mixed?`);
    let keyMatches = false;
    try {
        keyMatches = cert.checkPrivateKey(createPrivateKey(inputs.keyPem));
    } catch (e) {
        throw new BundleError(`the private key of "${device}" is not a PEM private key (${(e as Error).message})`);
    }
    if (!keyMatches) throw new BundleError(`the private key of "${device}" does not match its certificate`);
    const cn = /^CN=(.*)$/m.exec(cert.subject)?.[1];
    if (cn !== device) throw new BundleError(`the certificate's subject CN is not "${device}" (subject: ${cert.subject.replace(/\n/g, ", ")})`);
    if (!cert.keyUsage?.includes(CLIENT_AUTH_OID)) throw new BundleError(`the certificate of "${device}" is not a client certificate (no clientAuth extended key usage)`);
    const notAfter = new Date(cert.validTo);
    if (notAfter <= now) throw new BundleError(`the certificate of "${device}" expired on ${notAfter.toISOString()}; run \`pulumi up\` to renew it, then fetch the bundle again`);
    if (new Date(cert.validFrom) > now) throw new BundleError(`the certificate of "${device}" is not valid before ${new Date(cert.validFrom).toISOString()}; check this machine's clock`);
    return { notAfter };
}

/** File names inside the bundle directory. */
export function bundleFileNames(device: string) {
    return {
        cert: `${device}.crt`,
        key: `${device}.key`,
        pkcs12: `${device}.p12`,
        apiKey: `${device}.api-key`,
        ca: "ca.crt",
        curl: "curl-example.sh",
        python: "openai_example.py",
    } as const;
}

/** Host and port of the gateway URL, and whether it is a name (so `--resolve` can pin it). */
export function gatewayTarget(url: string): { host: string; port: string; isName: boolean } {
    let u: URL;
    try {
        u = new URL(url);
    } catch {
        throw new BundleError(`stack output "gatewayUrl" is not a URL (got ${JSON.stringify(url)})`);
    }
    if (u.protocol !== "https:") throw new BundleError(`stack output "gatewayUrl" must be https (got ${url})`);
    const host = u.hostname.replace(/^\[|\]$/g, "");
    return { host, port: u.port || "443", isName: !/^[\d.]+$/.test(host) && !host.includes(":") };
}

const baseUrl = (url: string) => url.replace(/\/+$/, "");
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** How a user of the identity provider obtains a bearer token, as a comment line. */
function tokenHint(identity: BundleInputs["identity"]): string | undefined {
    if (!identity || identity.provider === "none") return undefined;
    if (identity.provider === "entra" && identity.tokenResource) return `an Entra access token: az account get-access-token --resource ${identity.tokenResource} --query accessToken -o tsv`;
    return `an access token from ${identity.issuerUrl ?? "your identity provider"} for client ${identity.clientId ?? "(see the identity stack output)"}`;
}

/** A POSIX shell script that calls GET /api/version with the device's certificate. */
export function curlExample(device: string, inputs: BundleInputs): string {
    const f = bundleFileNames(device);
    const { host, port, isName } = gatewayTarget(inputs.gatewayUrl);
    const url = baseUrl(inputs.gatewayUrl);
    const token = tokenHint(inputs.identity);
    const lines = [
        "#!/bin/sh",
        `# ${device} -> ${url}: one request with this device's certificate (mutual TLS).`,
        "set -eu",
        'cd "$(dirname "$0")"',
    ];
    if (isName) lines.push(`# If ${host} does not resolve here (a loopback-only gateway), add: --resolve ${host}:${port}:127.0.0.1`);
    if (token) lines.push(`# Sign-in is required: export OLLAMA_GATEWAY_TOKEN=<${token}>`);
    lines.push("curl --fail-with-body --silent --show-error \\", `  --cert ./${f.cert} --key ./${f.key} --cacert ./${f.ca} \\`);
    if (inputs.apiKey) lines.push(`  -H "Authorization: Bearer $(cat ./${f.apiKey})" \\`);
    else if (token) lines.push('  -H "Authorization: Bearer ${OLLAMA_GATEWAY_TOKEN:?set OLLAMA_GATEWAY_TOKEN}" \\');
    lines.push(`  ${shellQuote(url + "/api/version")}`, "");
    return lines.join("\n");
}

/** A Python script using the OpenAI SDK through an httpx client that presents the certificate. */
export function pythonExample(device: string, inputs: BundleInputs): string {
    const f = bundleFileNames(device);
    const url = baseUrl(inputs.gatewayUrl);
    const token = tokenHint(inputs.identity);
    const apiKeyLine = inputs.apiKey
        ? `    api_key=(HERE / ${JSON.stringify(f.apiKey)}).read_text().strip(),  # this device's API key`
        : token
          ? `    api_key=os.environ["OLLAMA_GATEWAY_TOKEN"],  # ${token}`
          : `    api_key="mtls",  # the certificate is the credential; the SDK requires some value`;
    return [
        `"""${device} -> ${url}: the OpenAI SDK over mutual TLS.`,
        "",
        "pip install openai httpx; then: python3 openai_example.py",
        '"""',
        "import os",
        "import pathlib",
        "import ssl",
        "",
        "import httpx",
        "from openai import OpenAI",
        "",
        "HERE = pathlib.Path(__file__).resolve().parent",
        "# Trust only the gateway's CA and present this device's certificate.",
        `tls = ssl.create_default_context(cafile=str(HERE / ${JSON.stringify(f.ca)}))`,
        `tls.load_cert_chain(certfile=str(HERE / ${JSON.stringify(f.cert)}), keyfile=str(HERE / ${JSON.stringify(f.key)}))`,
        "",
        "client = OpenAI(",
        `    base_url=${JSON.stringify(url + "/v1")},`,
        apiKeyLine,
        "    http_client=httpx.Client(verify=tls),",
        ")",
        "reply = client.chat.completions.create(",
        '    model=os.environ.get("OLLAMA_MODEL", "llama3.2:3b"),  # a model your groups may use (filter.modelsByGroup)',
        '    messages=[{"role": "user", "content": "Say hello in five words."}],',
        ")",
        "print(reply.choices[0].message.content)",
        "",
    ].join("\n");
}

/** Arguments for `openssl pkcs12 -export`; the passphrase comes from the environment variable. */
export function pkcs12ExportArgs(files: { cert: string; key: string; ca: string; out: string }, friendlyName: string, passEnv: string): string[] {
    return [
        "pkcs12",
        "-export",
        "-in",
        files.cert,
        "-inkey",
        files.key,
        "-certfile",
        files.ca,
        "-name",
        friendlyName,
        "-out",
        files.out,
        "-passout",
        `env:${passEnv}`,
        // PBES2 with AES-256-CBC (PBKDF2-HMAC-SHA256) for key and certificates and an HMAC-SHA256
        // MAC, stated explicitly instead of relying on the OpenSSL build's defaults; no RC2/3DES/SHA-1.
        "-keypbe",
        "AES-256-CBC",
        "-certpbe",
        "AES-256-CBC",
        "-macalg",
        "sha256",
    ];
}
