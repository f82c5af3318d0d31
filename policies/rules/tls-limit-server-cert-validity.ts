import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, configOf, forType, usesOf, validityDaysOf, type Props } from "../lib/policy-kit";

export const SERVER_CERT_DEFAULTS = {
    /** Longest server-certificate validity accepted, in days (CA/Browser Forum limit: 397). */
    maxValidityDays: 397,
};

export const tlsLimitServerCertValidity: ResourceValidationPolicy = {
    name: "tls-limit-server-cert-validity",
    description:
        "The gateway's server certificate (any certificate allowing server_auth) is valid for at most 397 days, the CA/Browser Forum limit that browsers enforce; policy config may lower it. A longer certificate is rejected by browsers and keeps a leaked gateway key useful for longer.",
    enforcementLevel: "mandatory",
    severity: "medium",
    remediationSteps: "Set pki.serverCertValidityDays to 397 or less.",
    configSchema: {
        properties: {
            maxValidityDays: { type: "integer", minimum: 1, maximum: 397, default: SERVER_CERT_DEFAULTS.maxValidityDays, description: "Longest server certificate validity, in days." },
        },
    },
    validateResource: [TYPES.locallySignedCert, TYPES.selfSignedCert].map((token) =>
        forType(token, (props: Props, args, report) => {
            if (!usesOf(props).has("server_auth")) return args.notApplicable("not a server certificate");
            const { maxValidityDays } = configOf(args, SERVER_CERT_DEFAULTS);
            const days = validityDaysOf(props);
            if (!(days <= maxValidityDays)) report(`server certificate is valid for ${Number.isNaN(days) ? "an unknown period" : `${days} days`}; at most ${maxValidityDays} days are allowed.`);
        }),
    ),
};
