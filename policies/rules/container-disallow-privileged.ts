import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, forType, listOf, str } from "../lib/policy-kit";

/** security_opt values that switch off one of the kernel's confinement layers. */
const UNCONFINED = /^(seccomp[:=]unconfined|apparmor[:=]unconfined|label[:=]disable|systempaths[:=]unconfined)$/i;

export const containerDisallowPrivileged: ResourceValidationPolicy = {
    name: "container-disallow-privileged",
    description:
        "No container runs privileged or with seccomp, AppArmor, SELinux labelling or masked system paths switched off. A privileged or unconfined container can reach every host device and escape to the host, and with it every model, key and log.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Set privileged: false and remove *=unconfined / label=disable from securityOpts; pass GPUs with `gpus` instead.",
    validateResource: forType(TYPES.container, (props, _args, report) => {
        if (props.privileged === true) report("the container runs privileged (all devices, all capabilities, no seccomp/AppArmor): a container escape is one step away.");
        for (const opt of listOf(props.securityOpts).map(str)) {
            if (UNCONFINED.test(opt)) report(`securityOpts "${opt}" switches off kernel confinement for this container.`);
        }
    }),
};
