import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, configOf, forType, str } from "../lib/policy-kit";
import { parseAcl, splitHostPorts } from "../lib/tailscale-acl";

export const ACL_TESTS_DEFAULTS = {
    /** Tag of the AI server; at least one test must exercise it. */
    serverTag: "tag:ai-server",
};

export const tailscaleRequireAclTests: ResourceValidationPolicy = {
    name: "tailscale-require-acl-tests",
    description:
        "The Tailscale policy file carries `tests`, and at least one test accepts or denies traffic to the server tag. Tailscale rejects a policy whose tests fail, so the tests pin the intended access (client tag in on the gateway port, everything else out) against future edits.",
    enforcementLevel: "mandatory",
    severity: "medium",
    remediationSteps: "Add tests: {src: tag:ai-client, accept: [tag:ai-server:<port>], deny: [tag:ai-server:11434, tag:ai-server:22]}.",
    configSchema: {
        properties: {
            serverTag: { type: "string", pattern: "^tag:[a-z0-9][a-z0-9-]*$", default: ACL_TESTS_DEFAULTS.serverTag, description: "The AI server's Tailscale tag." },
        },
    },
    validateResource: forType(TYPES.tailscaleAcl, (props, args, report) => {
        const { serverTag } = configOf(args, ACL_TESTS_DEFAULTS);
        let acl;
        try {
            acl = parseAcl(str(props.acl));
        } catch (e) {
            return report(`the ACL is not a valid policy file: ${(e as Error).message}`);
        }
        if (acl.tests.length === 0) return report("the ACL has no tests; Tailscale would accept any future edit that opens the server.");
        const exercised = acl.tests.some((t) => [...t.accept, ...t.deny].some((d) => splitHostPorts(d).host === serverTag));
        if (!exercised) report(`no ACL test accepts or denies traffic to ${serverTag}.`);
    }),
};
