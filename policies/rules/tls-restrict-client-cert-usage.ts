import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, configOf, forType, usesOf, validityDaysOf, type Props } from "../lib/policy-kit";

export const CLIENT_CERT_DEFAULTS = {
    /** Longest device-certificate validity accepted, in days (the stack config's own upper bound). */
    maxValidityDays: 825,
};

/** Usages a device certificate may carry besides client_auth. */
const CLIENT_ALLOWED = new Set(["client_auth", "digital_signature", "key_encipherment", "key_agreement"]);

export const tlsRestrictClientCertUsage: ResourceValidationPolicy = {
    name: "tls-restrict-client-cert-usage",
    description:
        "A device (client) certificate allows client authentication only (never server_auth, signing or code signing), is not a CA, and is valid for at most maxValidityDays (default 825, tighten in policy config). A device cert that could also serve TLS would let a stolen laptop impersonate the gateway; short validity bounds the life of a stolen key.",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Issue device certs with allowedUses [digital_signature, client_auth] and pki.clientCertValidityDays within the limit.",
    configSchema: {
        properties: {
            maxValidityDays: { type: "integer", minimum: 1, maximum: 825, default: CLIENT_CERT_DEFAULTS.maxValidityDays, description: "Longest device certificate validity, in days." },
        },
    },
    validateResource: [TYPES.locallySignedCert, TYPES.selfSignedCert].map((token) =>
        forType(token, (props: Props, args, report) => {
            const uses = usesOf(props);
            if (!uses.has("client_auth")) return args.notApplicable("not a client certificate");
            const { maxValidityDays } = configOf(args, CLIENT_CERT_DEFAULTS);
            const extra = [...uses].filter((u) => !CLIENT_ALLOWED.has(u));
            if (extra.length) report(`client certificate also allows ${extra.join(", ")}; device certificates must allow client_auth only.`);
            if (props.isCaCertificate === true) report("a client certificate must not be a CA.");
            const days = validityDaysOf(props);
            if (!(days <= maxValidityDays)) report(`client certificate is valid for ${Number.isNaN(days) ? "an unknown period" : `${days} days`}; at most ${maxValidityDays} days are allowed.`);
        }),
    ),
};
