import type { StackValidationPolicy } from "@pulumi/policy";
import { containersOf, isAllowedBindAddress, portsOf, publishesToHost } from "../lib/containers";
import { str } from "../lib/policy-kit";

/** Stack policy: "only one container publishes" is a property of the whole stack. */
export const gatewayRequireSingleIngress: StackValidationPolicy = {
    name: "gateway-require-single-ingress",
    description:
        "Exactly one container publishes ports on the host, and it is the gateway (role label `gateway`); every published port binds 127.0.0.1, ::1 or a Tailscale address (100.64.0.0/10, fd7a:115c:a1e0::/48), never 0.0.0.0, :: or an unset address. One audited ingress means every request passes mTLS, sign-in, allowlists and the audit log.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Remove ports from every container but the gateway; set each gateway port's `ip` to 127.0.0.1 (listen: loopback) or the server's Tailscale address (listen: tailscale).",
    validateStack: (args, report) => {
        const publishers = containersOf(args.resources).filter((c) => publishesToHost(c.props));
        if (publishers.length === 0) return args.notApplicable("no container publishes ports");
        let gatewaysSeen = 0;
        for (const c of publishers) {
            const urn = c.resource.urn;
            if (!c.isGateway) {
                report(`${c.resource.name} (role ${c.role ? `"${c.role}"` : "unlabelled"}) publishes to the host; only the gateway may publish ports.`, urn);
                continue;
            }
            if (++gatewaysSeen > 1) report(`${c.resource.name} is a second gateway container publishing ports; the stack must have a single ingress.`, urn);
            if (c.props.publishAllPorts === true) report("the gateway sets publishAllPorts, which binds every exposed port on all host addresses.", urn);
            if (str(c.props.networkMode) === "host") report("the gateway uses networkMode \"host\", so every socket it opens is on all host addresses.", urn);
            for (const p of portsOf(c.props)) {
                if (!isAllowedBindAddress(p.ip)) {
                    report(`the gateway publishes port ${p.external ?? p.internal} on ${p.ip ? `"${p.ip}"` : "an unset address (Docker binds 0.0.0.0 and ::)"}; bind 127.0.0.1, ::1 or the server's Tailscale address.`, urn);
                }
            }
        }
    },
};
