import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, forType, listOf, str } from "../lib/policy-kit";

export const containerRequireNoNewPrivileges: ResourceValidationPolicy = {
    name: "container-require-no-new-privileges",
    description:
        "Every container sets securityOpts no-new-privileges:true, so no process inside can gain privileges through setuid binaries or file capabilities after start.",
    enforcementLevel: "mandatory",
    severity: "medium",
    remediationSteps: "Add \"no-new-privileges:true\" to securityOpts (hardenedContainerArgs does this).",
    validateResource: forType(TYPES.container, (props, _args, report) => {
        const opts = listOf(props.securityOpts).map((o) => str(o).toLowerCase());
        // Docker reads the last occurrence, so a later ":false" wins over an earlier ":true".
        const last = opts.filter((o) => o.startsWith("no-new-privileges")).pop();
        if (last === undefined) report("securityOpts lacks no-new-privileges:true: setuid binaries inside the container can gain privileges.");
        else if (!/^no-new-privileges([:=]true)?$/.test(last)) report(`securityOpts sets "${last}": no-new-privileges must be true.`);
    }),
};
