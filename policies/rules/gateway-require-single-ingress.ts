import type { StackValidationPolicy } from "@pulumi/policy";
import { containersOf, isAllowedBindAddress, portsOf, publishesToHost, type ContainerView } from "../lib/containers";
import { str } from "../lib/policy-kit";

/** Stack policy: "only one container publishes" is a property of the whole stack. */
export const gatewayRequireSingleIngress: StackValidationPolicy = {
    name: "gateway-require-single-ingress",
    description:
        "Only the gateway publishes ports on its host (and, with a GPU node pool, only each node's enclave proxy on that node): one publishing container per Docker host, at most one gateway, and every published port binds 127.0.0.1, ::1 or a Tailscale address (100.64.0.0/10, fd7a:115c:a1e0::/48), never 0.0.0.0, :: or an unset address. One audited ingress means every request passes mTLS, sign-in, allowlists and the audit log.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Remove ports from every container but the gateway (and node enclaves); set each port's `ip` to 127.0.0.1 (listen: loopback) or the host's Tailscale address.",
    validateStack: (args, report) => {
        const publishers = containersOf(args.resources).filter((c) => publishesToHost(c.props));
        if (publishers.length === 0) return args.notApplicable("no container publishes ports");
        // The analyzer says which Docker host (provider) each container runs on: one ingress per
        // host. (Other publishers are reported on their own below.)
        const byHost = new Map<string, ContainerView[]>();
        for (const c of publishers) {
            const host = c.resource.provider?.urn;
            if (c.isIngress && host !== undefined) byHost.set(host, [...(byHost.get(host) ?? []), c]);
        }
        let gatewaysSeen = 0;
        for (const c of publishers) {
            const urn = c.resource.urn;
            const who = c.role ? `"${c.role}"` : "unlabelled";
            if (!c.isIngress) {
                report(`${c.resource.name} (role ${who}) publishes to the host; only the gateway (or a node's enclave) may publish ports.`, urn);
                continue;
            }
            if (c.role === "gateway" && ++gatewaysSeen > 1) report(`${c.resource.name} is a second gateway container publishing ports; the stack must have a single ingress.`, urn);
            const sameHost = (byHost.get(c.resource.provider?.urn ?? "") ?? []).filter((o) => o !== c);
            if (sameHost.length) report(`${c.resource.name} publishes on the same Docker host as ${sameHost.map((o) => o.resource.name).join(", ")}; one ingress per host.`, urn);
            const what = c.role === "gateway" ? "the gateway" : `${c.resource.name} (${who})`;
            if (c.props.publishAllPorts === true) report(`${what} sets publishAllPorts, which binds every exposed port on all host addresses.`, urn);
            if (str(c.props.networkMode) === "host") report(`${what} uses networkMode "host", so every socket it opens is on all host addresses.`, urn);
            for (const p of portsOf(c.props)) {
                if (!isAllowedBindAddress(p.ip)) {
                    report(`${what} publishes port ${p.external ?? p.internal} on ${p.ip ? `"${p.ip}"` : "an unset address (Docker binds 0.0.0.0 and ::)"}; bind 127.0.0.1, ::1 or the host's Tailscale address.`, urn);
                }
            }
        }
    },
};
