/**
 * Outputs the mocked providers return, shaped like the real ones: PEMs that parse, image ids,
 * network names. Certificates are minimal DER structures with a serial derived from the
 * resource name, so every device gets a distinct, stable fingerprint without running openssl.
 */
import { createHash } from "node:crypto";

function derLength(n: number): Buffer {
    if (n < 0x80) return Buffer.from([n]);
    const bytes: number[] = [];
    for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x % 256);
    return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);

/** A certificate-shaped DER: SEQ { SEQ { [0] { INTEGER 2 }, INTEGER serial, ... } }. */
export function fakeCertPem(seed: string): string {
    const digest = createHash("sha256").update(seed).digest();
    const serial = Buffer.concat([Buffer.from([0x01]), digest.subarray(0, 15)]);
    const tbs = tlv(0x30, Buffer.concat([tlv(0xa0, tlv(0x02, Buffer.from([2]))), tlv(0x02, serial), tlv(0x04, digest)]));
    const der = tlv(0x30, tbs);
    const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n");
    return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

const fakePem = (label: string, seed: string) =>
    `-----BEGIN ${label}-----\n${createHash("sha256").update(seed).digest("base64")}\n-----END ${label}-----\n`;

/** A GUID-shaped value derived from a seed, so ids are stable across runs. */
function fakeGuid(seed: string): string {
    const h = createHash("sha256").update(seed).digest("hex");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A password of the requested length; alphanumeric only when special characters are off. */
/** `length` stable bytes from a seed (the first 32 are its SHA-256, as before longer values existed). */
function fakeBytes(seed: string, length: number): Buffer {
    const blocks = Array.from({ length: Math.ceil(length / 32) }, (_, i) => createHash("sha256").update(i === 0 ? seed : `${seed}/${i}`).digest());
    return Buffer.concat(blocks).subarray(0, length);
}

function fakePassword(seed: string, length: number, special: boolean): string {
    let out = "";
    for (let i = 0; out.length < length; i++) {
        const chunk = createHash("sha256").update(`${seed}#${i}`).digest("base64");
        out += special ? chunk : chunk.replace(/[^A-Za-z0-9]/g, "");
    }
    return out.slice(0, length);
}

/**
 * What probe.py prints on the mocked Ollama host: the store (bind-mounted at /store) is an ext4
 * filesystem on LUKS2 (dm-0 on nvme0n1p3). Mock runs thus reach Ollama; tests that need a refusal
 * pass their own probe output (MockRunOptions.storeProbe).
 */
export const MOCK_LUKS_PROBE_OUTPUT = JSON.stringify({
    probe: 1,
    path: "/store",
    exists: true,
    resolved: "/store",
    isDirectory: true,
    device: "254:0",
    mountinfo: "1 0 0:31 / / rw,relatime - overlay overlay rw\n812 1 254:0 /ollama /store ro,relatime - ext4 /dev/mapper/luks-models rw\n",
    blockDevices: [
        { kname: "nvme0n1", majMin: "259:0", slaves: [] },
        { kname: "nvme0n1p3", majMin: "259:3", slaves: ["nvme0n1"] },
        { kname: "dm-0", majMin: "254:0", dmName: "luks-models", dmUuid: "CRYPT-LUKS2-3f1c2b9a8d7e4f60a1b2c3d4e5f60718-luks-models", slaves: ["nvme0n1p3"] },
    ],
    fscrypt: { policy: null, keyStatus: null },
});

export function mockOutputs(type: string, name: string, inputs: Record<string, any>): Record<string, unknown> {
    switch (type) {
        case "tls:index/privateKey:PrivateKey":
            return { privateKeyPem: fakePem("PRIVATE KEY", name), publicKeyPem: fakePem("PUBLIC KEY", name), publicKeyFingerprintSha256: createHash("sha256").update(name).digest("hex") };
        case "tls:index/certRequest:CertRequest":
            return { certRequestPem: fakePem("CERTIFICATE REQUEST", name) };
        case "tls:index/selfSignedCert:SelfSignedCert":
        case "tls:index/locallySignedCert:LocallySignedCert":
            return { certPem: fakeCertPem(name), validityStartTime: "2026-01-01T00:00:00Z", validityEndTime: "2027-01-01T00:00:00Z" };
        case "docker:index/remoteImage:RemoteImage":
            return { imageId: `sha256:${createHash("sha256").update(String(inputs.name)).digest("hex")}`, repoDigest: String(inputs.name) };
        case "docker:index/image:Image":
            // A local (skipPush) build: repoDigest is the image id, as the provider reports it.
            return { imageName: inputs.imageName, repoDigest: `sha256:${createHash("sha256").update(String(inputs.imageName)).digest("hex")}` };
        case "docker:index/volume:Volume":
        case "docker:index/network:Network":
            return { name: inputs.name ?? name };
        case "docker:index/container:Container":
            return isStoreCheck(inputs) ? { name: inputs.name ?? name, containerLogs: MOCK_LUKS_PROBE_OUTPUT + "\n", exitCode: 0 } : { name: inputs.name ?? name };
        case "random:index/randomBytes:RandomBytes":
            return { base64: fakeBytes(name, inputs.length ?? 32).toString("base64"), hex: createHash("sha256").update(name).digest("hex") };
        case "random:index/randomPassword:RandomPassword":
            return { result: fakePassword(name, inputs.length ?? 32, inputs.special !== false) };
        case "azuread:index/application:Application": {
            const objectId = fakeGuid(`${name}/object`);
            return { clientId: fakeGuid(`${name}/client`), objectId, id: `/applications/${objectId}` };
        }
        case "azuread:index/servicePrincipal:ServicePrincipal":
            return { objectId: fakeGuid(`${name}/object`) };
        case "azuread:index/applicationPassword:ApplicationPassword":
            return { keyId: fakeGuid(`${name}/key`), value: fakePassword(`${name}/value`, 40, true), startDate: "2026-01-01T00:00:00Z", endDate: inputs.endDate };
        case "azuread:index/appRoleAssignment:AppRoleAssignment":
            return { principalType: "Group" };
        case "tailscale:index/tailnetKey:TailnetKey":
            return { key: `tskey-auth-${createHash("sha256").update(name).digest("hex").slice(0, 40)}`, expiresAt: "2026-01-02T00:00:00Z", invalid: false };
        default:
            return {};
    }
}

/** The model-store check container (role label model-store-check, running the probe's inspect). */
export function isStoreCheck(inputs: Record<string, any>): boolean {
    const labels = Array.isArray(inputs.labels) ? (inputs.labels as { label: string; value: string }[]) : [];
    return labels.some((l) => l.label === "zero-trust-ollama.role" && l.value === "model-store-check") && Array.isArray(inputs.command) && inputs.command.includes("inspect");
}
