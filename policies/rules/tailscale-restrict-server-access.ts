import type { StackValidationPolicy } from "@pulumi/policy";
import { containersOf, portsOf, publishesToHost } from "../lib/containers";
import { TYPES, configOf, str } from "../lib/policy-kit";
import { parseAcl, portsIn } from "../lib/tailscale-acl";

export const SERVER_ACCESS_DEFAULTS = {
    serverTag: "tag:ai-server",
    clientTag: "tag:ai-client",
    /** Users allowed besides the client tag; empty accepts any single user (never groups or `*`). */
    allowedUsers: [] as string[],
    /** Ports clients may reach on the server; empty means the gateway's published ports in this stack. */
    gatewayPorts: [] as number[],
};

/** A single user login (`alice@example.com`), not a group, autogroup, tag, CIDR or `*@domain`. */
function isSingleUser(src: string): boolean {
    return /^[^\s@*:]+@[^\s@*:]+$/.test(src);
}

/**
 * Stack policy: the allowed port is the gateway's published port, which only the stack knows.
 */
export const tailscaleRestrictServerAccess: StackValidationPolicy = {
    name: "tailscale-restrict-server-access",
    description:
        "Every Tailscale ACL rule or grant that reaches the AI server (its tag, or `*`) comes only from the client tag or listed users and opens only the gateway's port. Anything else on the tailnet reaching the server (Ollama's 11434, SSH, a wider group) skips the gateway or widens who can try it.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Keep one rule: src [tag:ai-client, listed users] -> dst tag:ai-server on the gateway port only.",
    configSchema: {
        properties: {
            serverTag: { type: "string", pattern: "^tag:[a-z0-9][a-z0-9-]*$", default: SERVER_ACCESS_DEFAULTS.serverTag, description: "The AI server's Tailscale tag." },
            clientTag: { type: "string", pattern: "^tag:[a-z0-9][a-z0-9-]*$", default: SERVER_ACCESS_DEFAULTS.clientTag, description: "Tag of enrolled client devices." },
            allowedUsers: { type: "array", items: { type: "string", pattern: "^[^\\s@*]+@[^\\s@*]+$" }, default: [], description: "Users (logins) allowed to reach the server besides the client tag; empty allows any single user, never groups." },
            gatewayPorts: { type: "array", items: { type: "integer", minimum: 1, maximum: 65535 }, default: [], description: "Ports clients may reach; empty means the gateway's published ports in this stack." },
        },
    },
    validateStack: (args, report) => {
        const acls = args.resources.filter((r) => r.type === TYPES.tailscaleAcl);
        if (acls.length === 0) return args.notApplicable("this stack manages no Tailscale ACL");
        const cfg = configOf(args, SERVER_ACCESS_DEFAULTS);
        const gatewayPorts = new Set<number>(
            cfg.gatewayPorts.length
                ? cfg.gatewayPorts
                : containersOf(args.resources)
                      .filter((c) => c.isGateway && publishesToHost(c.props))
                      .flatMap((c) => portsOf(c.props).map((p) => p.external ?? p.internal)),
        );
        const allowedUsers = new Set(cfg.allowedUsers.map((u) => u.toLowerCase()));
        const srcAllowed = (src: string) => src === cfg.clientTag || (isSingleUser(src) && (allowedUsers.size === 0 || allowedUsers.has(src.toLowerCase())));
        for (const acl of acls) {
            let parsed;
            try {
                parsed = parseAcl(str(acl.props.acl));
            } catch (e) {
                report(`the ACL is not a valid policy file: ${(e as Error).message}`, acl.urn);
                continue;
            }
            for (const rule of parsed.rules) {
                const toServer = rule.dsts.filter((d) => d.host === cfg.serverTag || d.host === "*");
                if (toServer.length === 0) continue;
                for (const src of rule.srcs.filter((s) => !srcAllowed(s))) {
                    report(`${rule.where} lets "${src}" reach ${cfg.serverTag}; only ${cfg.clientTag}${allowedUsers.size ? ` and ${[...allowedUsers].join(", ")}` : " and single users"} may.`, acl.urn);
                }
                for (const d of toServer) {
                    const ports = portsIn(d.ports);
                    if (gatewayPorts.size === 0) report(`${rule.where} opens ${d.host}:${d.ports}, but the stack publishes no gateway port to compare with; set gatewayPorts in policy config.`, acl.urn);
                    else if (!ports || ports.some((p) => !gatewayPorts.has(p))) report(`${rule.where} opens ${d.host}:${d.ports}; only the gateway port${gatewayPorts.size > 1 ? "s" : ""} ${[...gatewayPorts].join(", ")} may be reachable.`, acl.urn);
                }
            }
        }
    },
};
