import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, forType } from "../lib/policy-kit";

export const entraRequireAssignment: ResourceValidationPolicy = {
    name: "entra-require-assignment",
    description:
        "The service principal of the app registration requires user assignment (appRoleAssignmentRequired: true), so only users or groups explicitly assigned to the app can sign in; otherwise every account in the tenant gets a token and only the gateway's group check stands in the way.",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Set appRoleAssignmentRequired: true and assign the allowed groups to the app.",
    validateResource: forType(TYPES.entraServicePrincipal, (props, _args, report) => {
        if (props.appRoleAssignmentRequired !== true) report("appRoleAssignmentRequired is not true: every account in the tenant can sign in to the app.");
    }),
};
