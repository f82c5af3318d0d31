import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, configOf, forType, str } from "../lib/policy-kit";

export const STRONG_KEY_DEFAULTS = {
    /** Smallest RSA modulus accepted. */
    minRsaBits: 3072,
    /** ECDSA curves accepted (tls provider names). */
    allowedEcdsaCurves: ["P256", "P384", "P521"],
};

/** What the tls provider generates when the size or curve is left out. */
const PROVIDER_DEFAULT_RSA_BITS = 2048;
const PROVIDER_DEFAULT_CURVE = "P224";

export const tlsRequireStrongKeys: ResourceValidationPolicy = {
    name: "tls-require-strong-keys",
    description:
        "Every private key of the PKI (CA, gateway server, device certificates) is ECDSA on P-256 or stronger or RSA of at least 3072 bits (NIST SP 800-57 beyond 2030). The provider defaults (RSA 2048, ECDSA P-224) are rejected, as is ED25519, which browsers do not accept for TLS.",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Set pki.keyAlgorithm to ECDSA-P256, ECDSA-P384, RSA-3072 or RSA-4096.",
    configSchema: {
        properties: {
            minRsaBits: { type: "integer", minimum: 2048, default: STRONG_KEY_DEFAULTS.minRsaBits, description: "Smallest RSA modulus accepted." },
            allowedEcdsaCurves: { type: "array", items: { type: "string", enum: ["P224", "P256", "P384", "P521"] }, default: STRONG_KEY_DEFAULTS.allowedEcdsaCurves, description: "ECDSA curves accepted." },
        },
    },
    validateResource: forType(TYPES.privateKey, (props, args, report) => {
        const { minRsaBits, allowedEcdsaCurves } = configOf(args, STRONG_KEY_DEFAULTS);
        const algorithm = str(props.algorithm).toUpperCase();
        if (algorithm === "RSA") {
            const bits = props.rsaBits === undefined || props.rsaBits === null ? PROVIDER_DEFAULT_RSA_BITS : Number(props.rsaBits);
            if (!(bits >= minRsaBits)) report(`RSA key of ${bits} bits${props.rsaBits === undefined ? " (provider default)" : ""}; at least ${minRsaBits} bits are required.`);
        } else if (algorithm === "ECDSA") {
            const curve = str(props.ecdsaCurve).toUpperCase() || PROVIDER_DEFAULT_CURVE;
            if (!allowedEcdsaCurves.includes(curve)) report(`ECDSA key on curve ${curve}${props.ecdsaCurve ? "" : " (provider default)"}; allowed curves: ${allowedEcdsaCurves.join(", ")}.`);
        } else {
            report(`key algorithm "${str(props.algorithm)}" is not allowed; use ECDSA (P-256 or stronger) or RSA (${minRsaBits}+ bits).`);
        }
    }),
};
