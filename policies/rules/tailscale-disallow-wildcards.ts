import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, forType, str } from "../lib/policy-kit";
import { parseAcl } from "../lib/tailscale-acl";

export const tailscaleDisallowWildcards: ResourceValidationPolicy = {
    name: "tailscale-disallow-wildcards",
    description:
        "The Tailscale policy file has no rule with a `*` source and no `*:*` destination (any host, any port). Tailscale's own default policy allows everything; a leftover wildcard rule silently undoes the tag-based segmentation that keeps the AI server reachable only from enrolled client devices.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Replace wildcard rules with tag:ai-client -> tag:ai-server on the gateway port (see components/tailnet*).",
    validateResource: forType(TYPES.tailscaleAcl, (props, _args, report) => {
        let acl;
        try {
            acl = parseAcl(str(props.acl));
        } catch (e) {
            return report(`the ACL is not a valid policy file: ${(e as Error).message}`);
        }
        for (const rule of acl.rules) {
            if (rule.srcs.includes("*")) report(`${rule.where} allows every source ("*").`);
            if (rule.dsts.some((d) => d.host === "*" && d.ports === "*")) report(`${rule.where} allows every destination and port ("*:*").`);
        }
    }),
};
