import type { ResourceValidationPolicy } from "@pulumi/policy";
import { normaliseCapability } from "../lib/containers";
import { TYPES, forType, listOf, str } from "../lib/policy-kit";

export const containerRequireDroppedCapabilities: ResourceValidationPolicy = {
    name: "container-require-dropped-capabilities",
    description:
        "Every container drops ALL Linux capabilities (capabilities.drops contains ALL) and adds back only what it needs. Docker's default set includes CHOWN, SETUID, NET_RAW and more that none of the stack's services use.",
    enforcementLevel: "mandatory",
    severity: "medium",
    remediationSteps: "Build the container from hardenedContainerArgs (components/hardening.ts), which drops ALL.",
    validateResource: forType(TYPES.container, (props, _args, report) => {
        const drops = listOf(props.capabilities?.drops).map((c) => normaliseCapability(str(c)));
        if (!drops.includes("ALL")) report("capabilities.drops does not contain ALL: the container keeps Docker's default capability set.");
    }),
};
