import type { StackValidationPolicy } from "@pulumi/policy";
import { containersOf, portsOf, publishesToHost } from "../lib/containers";
import { TYPES, configOf, str } from "../lib/policy-kit";
import { parseAcl, portsIn } from "../lib/tailscale-acl";

export const SERVER_ACCESS_DEFAULTS = {
    serverTag: "tag:ai-server",
    clientTag: "tag:ai-client",
    /** Tag of GPU nodes (ollama.nodes); only the server may reach them, on the enclave port. */
    nodeTag: "tag:ai-node",
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
        "Every Tailscale ACL rule or grant that reaches the AI server (its tag, or `*`) comes only from the client tag or listed users and opens only the gateway's port; every rule reaching a GPU node (node tag, or `*`) comes only from the server tag and opens only the enclave port. Anything else on the tailnet reaching them (Ollama's 11434, SSH, a wider group) skips the gateway or widens who can try it.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Keep one rule: src [tag:ai-client, listed users] -> dst tag:ai-server on the gateway port only.",
    configSchema: {
        properties: {
            serverTag: { type: "string", pattern: "^tag:[a-z0-9][a-z0-9-]*$", default: SERVER_ACCESS_DEFAULTS.serverTag, description: "The AI server's Tailscale tag." },
            clientTag: { type: "string", pattern: "^tag:[a-z0-9][a-z0-9-]*$", default: SERVER_ACCESS_DEFAULTS.clientTag, description: "Tag of enrolled client devices." },
            nodeTag: { type: "string", pattern: "^tag:[a-z0-9][a-z0-9-]*$", default: SERVER_ACCESS_DEFAULTS.nodeTag, description: "Tag of GPU nodes (ollama.nodes); only the server tag may reach them, on the enclave port." },
            allowedUsers: { type: "array", items: { type: "string", pattern: "^[^\\s@*]+@[^\\s@*]+$" }, default: [], description: "Users (logins) allowed to reach the server besides the client tag; empty allows any single user, never groups." },
            gatewayPorts: { type: "array", items: { type: "integer", minimum: 1, maximum: 65535 }, default: [], description: "Ports clients may reach; empty means the gateway's published ports in this stack." },
        },
    },
    validateStack: (args, report) => {
        const acls = args.resources.filter((r) => r.type === TYPES.tailscaleAcl);
        if (acls.length === 0) return args.notApplicable("this stack manages no Tailscale ACL");
        const cfg = configOf(args, SERVER_ACCESS_DEFAULTS);
        const published = (role: string) =>
            new Set(
                containersOf(args.resources)
                    .filter((c) => c.role === role && publishesToHost(c.props))
                    .flatMap((c) => portsOf(c.props).map((p) => p.external ?? p.internal)),
            );
        const gatewayPorts = cfg.gatewayPorts.length ? new Set(cfg.gatewayPorts) : published("gateway");
        const allowedUsers = new Set(cfg.allowedUsers.map((u) => u.toLowerCase()));
        const clientAllowed = (src: string) => src === cfg.clientTag || (isSingleUser(src) && (allowedUsers.size === 0 || allowedUsers.has(src.toLowerCase())));
        const targets = [
            { tag: cfg.serverTag, srcAllowed: clientAllowed, who: `${cfg.clientTag}${allowedUsers.size ? ` and ${[...allowedUsers].join(", ")}` : " and single users"}`, ports: gatewayPorts, what: "gateway", setting: "gatewayPorts" },
            { tag: cfg.nodeTag, srcAllowed: (src: string) => src === cfg.serverTag, who: cfg.serverTag, ports: published("enclave"), what: "enclave", setting: undefined },
        ];
        for (const acl of acls) {
            let parsed;
            try {
                parsed = parseAcl(str(acl.props.acl));
            } catch (e) {
                report(`the ACL is not a valid policy file: ${(e as Error).message}`, acl.urn);
                continue;
            }
            for (const rule of parsed.rules) {
                for (const t of targets) {
                    const reaching = rule.dsts.filter((d) => d.host === t.tag || d.host === "*");
                    if (reaching.length === 0) continue;
                    for (const src of rule.srcs.filter((s) => !t.srcAllowed(s))) report(`${rule.where} lets "${src}" reach ${t.tag}; only ${t.who} may.`, acl.urn);
                    for (const d of reaching) {
                        const ports = portsIn(d.ports);
                        if (t.ports.size === 0) {
                            report(`${rule.where} opens ${d.host}:${d.ports}, but the stack publishes no ${t.what} port to compare with${t.setting ? `; set ${t.setting} in policy config` : ""}.`, acl.urn);
                        } else if (!ports || ports.some((p) => !t.ports.has(p))) {
                            report(`${rule.where} opens ${d.host}:${d.ports}; only the ${t.what} port${t.ports.size > 1 ? "s" : ""} ${[...t.ports].join(", ")} may be reachable.`, acl.urn);
                        }
                    }
                }
            }
        }
    },
};
