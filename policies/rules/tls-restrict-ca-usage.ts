import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, forType, usesOf, type Props } from "../lib/policy-kit";

/** Key usages a CA certificate may carry: signing certificates and CRLs, nothing else. */
const CA_ALLOWED = new Set(["cert_signing", "crl_signing", "digital_signature"]);
const SIGNING = ["cert_signing", "crl_signing"];

function checkCaUsage(props: Props, report: (m: string) => void): void {
    const uses = usesOf(props);
    if (props.isCaCertificate === true) {
        if (!uses.has("cert_signing")) report("CA certificate lacks cert_signing.");
        const extra = [...uses].filter((u) => !CA_ALLOWED.has(u));
        if (extra.length) report(`CA certificate also allows ${extra.join(", ")}; a CA key that also serves TLS or signs code is exposed far more often than a signing-only key.`);
    } else {
        const signing = SIGNING.filter((u) => uses.has(u));
        if (signing.length) report(`a non-CA certificate allows ${signing.join(", ")}; only the CA signs certificates.`);
    }
}

export const tlsRestrictCaUsage: ResourceValidationPolicy = {
    name: "tls-restrict-ca-usage",
    description:
        "The CA certificate is used only for signing (cert_signing, crl_signing), and no other certificate may sign. Keeping the CA key out of TLS handshakes limits its exposure, and a leaf that can sign would be a second, unmanaged CA that the gateway trusts.",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "CA: allowedUses [cert_signing, crl_signing]; leaves: never cert_signing/crl_signing (see CA_USES in components/certs.ts).",
    validateResource: [
        forType(TYPES.selfSignedCert, (props, _args, report) => checkCaUsage(props, report)),
        forType(TYPES.locallySignedCert, (props, _args, report) => checkCaUsage(props, report)),
    ],
};
