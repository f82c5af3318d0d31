import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, forType, str } from "../lib/policy-kit";

export const entraRequireSingleTenant: ResourceValidationPolicy = {
    name: "entra-require-single-tenant",
    description:
        "The Entra ID app registration signs in accounts of its own tenant only (signInAudience AzureADMyOrg, the default). Multi-tenant or personal-account audiences let anyone with any Microsoft account obtain a token for the gateway.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Set signInAudience to AzureADMyOrg or leave it unset.",
    validateResource: forType(TYPES.entraApplication, (props, _args, report) => {
        const audience = str(props.signInAudience);
        if (audience && audience !== "AzureADMyOrg") report(`signInAudience is "${audience}"; only AzureADMyOrg (this tenant) is allowed.`);
    }),
};
