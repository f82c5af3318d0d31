import type { ResourceValidationPolicy } from "@pulumi/policy";
import { forType } from "../lib/policy-kit";

/** The azuread resource this preflight is about (only stacks with identity.requireMfa create one). */
export const CONDITIONAL_ACCESS_POLICY_TYPE = "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy";

/**
 * Advisory by necessity: whether the tenant has Security Defaults on cannot be read offline, and a
 * stack that creates the policy is not wrong; the deploy fails unless the operator checked first.
 */
export const entraRequireSecurityDefaultsOff: ResourceValidationPolicy = {
    name: "entra-require-security-defaults-off",
    description:
        "Preflight for a stack that creates an Entra Conditional Access policy (identity.requireMfa): Microsoft Graph refuses to create Conditional Access policies while the tenant's Security Defaults are on, the default for new tenants, so `pulumi up` would stop half-way with the app registered but MFA not enforced by this stack. The pack cannot read the tenant, so it reminds the operator to check.",
    enforcementLevel: "advisory",
    severity: "medium",
    remediationSteps:
        "Before `pulumi up`: `az rest --method get --url https://graph.microsoft.com/v1.0/policies/identitySecurityDefaultsEnforcementPolicy --query isEnabled` (needs Policy.Read.All). If it prints true, turn Security Defaults off in the Entra admin center (Overview, Properties, Manage security defaults) once Conditional Access replaces them; see docs/identity.md.",
    validateResource: forType(CONDITIONAL_ACCESS_POLICY_TYPE, (props, _args, report) => {
        const grants: unknown = props.grantControls?.builtInControls;
        const mfa = Array.isArray(grants) && grants.includes("mfa") ? "requiring MFA " : "";
        report(`this stack creates a Conditional Access policy ${mfa}(identity.requireMfa); Graph refuses it while the tenant's Security Defaults are on. Check isEnabled of identitySecurityDefaultsEnforcementPolicy before pulumi up (docs/identity.md).`);
    }),
};
