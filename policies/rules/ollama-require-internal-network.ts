import type { StackValidationPolicy } from "@pulumi/policy";
import { containersOf, networksOf } from "../lib/containers";
import { TYPES, str } from "../lib/policy-kit";

/** Docker network modes that are not a user-defined network of this stack. */
const NON_NETWORK_MODES = new Set(["bridge", "default", "host"]);

/**
 * Stack policy: needs the Network resources to know whether a joined network is internal. A
 * network this stack does not define is a violation, since nothing proves it has no route out.
 */
export const ollamaRequireInternalNetwork: StackValidationPolicy = {
    name: "ollama-require-internal-network",
    description:
        "Every Docker network an Ollama container joins is a network of this stack with `internal: true`; it never sits on the default bridge, the host network or an external network. An internal network has no route out (no model exfiltration, no cloud forwarding) and no way in except through the gateway.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Attach Ollama only to the stack's internal network (networksAdvanced with the internal network's name) and leave networkMode unset.",
    validateStack: (args, report) => {
        const ollamas = containersOf(args.resources).filter((c) => c.isOllama);
        if (ollamas.length === 0) return args.notApplicable("no Ollama container in this stack");
        const networksByName = new Map<string, { internal: boolean }[]>();
        for (const r of args.resources) {
            if (r.type !== TYPES.network) continue;
            const name = str(r.props.name) || r.name;
            networksByName.set(name, [...(networksByName.get(name) ?? []), { internal: r.props.internal === true }]);
        }
        for (const c of ollamas) {
            const urn = c.resource.urn;
            const { names, mode } = networksOf(c.props);
            if (mode === "none") continue;
            if (NON_NETWORK_MODES.has(mode) || mode.startsWith("container:")) {
                report(`Ollama uses networkMode "${mode}", which is not an internal network of this stack.`, urn);
            } else if (mode && !names.includes(mode)) {
                names.push(mode);
            }
            if (names.length === 0 && !mode) report("Ollama joins no network explicitly, so Docker puts it on the default bridge (egress, reachable from the host); attach it to the internal network.", urn);
            for (const name of names) {
                const matches = networksByName.get(name);
                if (!matches) report(`Ollama joins network "${name}", which this stack does not define, so nothing proves it is internal.`, urn);
                else if (matches.some((n) => !n.internal)) report(`Ollama joins network "${name}", which is not internal (internal: true is required; it would give Ollama a route out).`, urn);
            }
        }
    },
};
