import type { ResourceValidationPolicy } from "@pulumi/policy";
import { ROLE_LABEL, roleOf } from "../lib/containers";
import { TYPES, forType } from "../lib/policy-kit";

export const containerRequireRoleLabel: ResourceValidationPolicy = {
    name: "container-require-role-label",
    description: `Every container carries the ${ROLE_LABEL} label (ollama, gateway, filter, oauth2-proxy). The other rules recognise Ollama and the gateway by it; an unlabelled container would slip past them.`,
    enforcementLevel: "mandatory",
    severity: "medium",
    remediationSteps: "Build the container from hardenedContainerArgs(role, ...) in components/hardening.ts.",
    validateResource: forType(TYPES.container, (props, _args, report) => {
        if (!roleOf(props)) report(`the container has no ${ROLE_LABEL} label, so the pack cannot tell whether it is Ollama or the gateway.`);
    }),
};
