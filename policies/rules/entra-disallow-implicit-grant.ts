import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, blockOf, forType } from "../lib/policy-kit";

export const entraDisallowImplicitGrant: ResourceValidationPolicy = {
    name: "entra-disallow-implicit-grant",
    description:
        "The Entra ID app registration issues no tokens through the implicit grant (web.implicitGrant access and ID token issuance both off). oauth2-proxy uses the authorization-code flow; implicit-grant tokens travel in URL fragments and browser history.",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Set web.implicitGrant.accessTokenIssuanceEnabled and idTokenIssuanceEnabled to false (or omit them).",
    validateResource: forType(TYPES.entraApplication, (props, _args, report) => {
        const grant = blockOf(blockOf(props.web).implicitGrant);
        if (grant.accessTokenIssuanceEnabled === true) report("implicit grant issues access tokens (web.implicitGrant.accessTokenIssuanceEnabled is true).");
        if (grant.idTokenIssuanceEnabled === true) report("implicit grant issues ID tokens (web.implicitGrant.idTokenIssuanceEnabled is true).");
    }),
};
