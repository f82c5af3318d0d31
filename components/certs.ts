/**
 * Pure certificate helpers shared by the Pki component, the gateway spec and the sandbox.
 * Identity is read from the DER bytes directly: the SHA-1 of the DER is exactly what nginx
 * exposes as $ssl_client_fingerprint and HAProxy as ssl_c_sha1, so the allowlist matches
 * what the gateway computes at handshake time.
 */
import { createHash } from "node:crypto";

export interface CertIdentity {
    /** SHA-1 of the DER, lowercase hex without separators (nginx $ssl_client_fingerprint). */
    readonly sha1: string;
    /** SHA-256 of the DER, lowercase hex without separators. */
    readonly sha256: string;
    /** Serial number, uppercase hex as printed by `openssl x509 -serial`. */
    readonly serial: string;
}

/** DER bytes of the first certificate in a PEM string. */
export function pemToDer(pem: string): Buffer {
    const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
    if (!m) throw new Error("not a PEM certificate (no BEGIN CERTIFICATE block)");
    return Buffer.from(m[1].replace(/\s+/g, ""), "base64");
}

/** Reads one DER tag-length header; returns the content start and length. */
function readTlv(der: Buffer, offset: number): { tag: number; start: number; length: number } {
    const tag = der[offset];
    let len = der[offset + 1];
    let start = offset + 2;
    if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 4) throw new Error("unsupported DER length");
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + der[start + i];
        start += n;
    }
    if (start + len > der.length) throw new Error("truncated DER");
    return { tag, start, length: len };
}

/** Certificate ::= SEQ { tbsCertificate SEQ { [0] version OPTIONAL, serialNumber INTEGER, ... } } */
function serialOf(der: Buffer): string {
    const cert = readTlv(der, 0);
    const tbs = readTlv(der, cert.start);
    let field = readTlv(der, tbs.start);
    if (field.tag === 0xa0) field = readTlv(der, field.start + field.length);
    if (field.tag !== 0x02) throw new Error("certificate has no serial number");
    let bytes = der.subarray(field.start, field.start + field.length);
    while (bytes.length > 1 && bytes[0] === 0) bytes = bytes.subarray(1);
    return bytes.toString("hex").toUpperCase();
}

export function certIdentity(pem: string): CertIdentity {
    const der = pemToDer(pem);
    return {
        sha1: createHash("sha1").update(der).digest("hex"),
        sha256: createHash("sha256").update(der).digest("hex"),
        serial: serialOf(der),
    };
}

/**
 * Extended key usages for the tls provider's `allowedUses`. Server and client certs are kept
 * strictly apart so a leaked device cert can never impersonate the gateway and vice versa.
 */
export const CA_USES = ["cert_signing", "crl_signing"] as const;
export const SERVER_USES = ["digital_signature", "server_auth"] as const;
export const CLIENT_USES = ["digital_signature", "client_auth"] as const;

export type KeyAlgorithm = "ECDSA-P256" | "ECDSA-P384" | "RSA-3072" | "RSA-4096";

/** tls.PrivateKey arguments for a configured algorithm. */
export function privateKeyArgs(alg: KeyAlgorithm): { algorithm: "ECDSA" | "RSA"; ecdsaCurve?: string; rsaBits?: number } {
    switch (alg) {
        case "ECDSA-P256":
            return { algorithm: "ECDSA", ecdsaCurve: "P256" };
        case "ECDSA-P384":
            return { algorithm: "ECDSA", ecdsaCurve: "P384" };
        case "RSA-3072":
            return { algorithm: "RSA", rsaBits: 3072 };
        case "RSA-4096":
            return { algorithm: "RSA", rsaBits: 4096 };
    }
}
