import type { StackValidationPolicy } from "@pulumi/policy";
import { containersOf, networksOf, type ContainerView } from "../lib/containers";
import { TYPES, str } from "../lib/policy-kit";

/**
 * Repeated from components/network.ts (the pack is published on its own); the program-graph
 * tests prove the program sets exactly this option.
 */
export const INHIBIT_HOST_ADDRESS_OPTION = "com.docker.network.bridge.inhibit_ipv4";

/**
 * Ollama's one legitimate caller: on a GPU node the enclave proxy; on the main host the filter
 * when the stack runs one, else the gateway.
 */
function allowedCaller(containers: readonly ContainerView[]): string {
    const roles = new Set(containers.map((c) => c.role));
    return roles.has("enclave") ? "enclave" : roles.has("filter") ? "filter" : "gateway";
}

/** Networks a container joins by name: networks_advanced plus a user-defined network mode. */
function joinedNetworks(c: ContainerView): string[] {
    const { names, mode } = networksOf(c.props);
    return mode && !["bridge", "default", "host", "none"].includes(mode) && !mode.startsWith("container:") ? [...names, mode] : names;
}

/**
 * Stack policy: who may reach Ollama is a property of every container sharing its networks. A
 * network this stack does not define is a violation too, since nothing proves who else is on it
 * or that the host has no address on it.
 */
export const ollamaRestrictNetworkPeers: StackValidationPolicy = {
    name: "ollama-restrict-network-peers",
    description:
        "Every network an Ollama container joins is shared with its single allowed caller and nobody else (the filter when the stack runs one, else the gateway; on a GPU node the enclave proxy), no container shares Ollama's network namespace, and each such network carries `com.docker.network.bridge.inhibit_ipv4: \"true\"` so the Docker host has no address or route on it. Otherwise a compromised neighbour (an internet-facing oauth2-proxy) or any local user of the host can call Ollama's management API (/api/pull, /api/create, /api/delete) past the gateway and the filter.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Give Ollama its own network shared only with its caller (components/network.ts: one network per hop), remove every other container from it, and set the bridge option com.docker.network.bridge.inhibit_ipv4 to \"true\" on it.",
    validateStack: (args, report) => {
        const containers = containersOf(args.resources);
        const ollamas = containers.filter((c) => c.isOllama);
        if (ollamas.length === 0) return args.notApplicable("no Ollama container in this stack");
        const caller = allowedCaller(containers);
        const optionsByName = new Map<string, Record<string, unknown>[]>();
        for (const r of args.resources) {
            if (r.type !== TYPES.network) continue;
            const name = str(r.props.name) || r.name;
            const options = r.props.options && typeof r.props.options === "object" ? (r.props.options as Record<string, unknown>) : {};
            optionsByName.set(name, [...(optionsByName.get(name) ?? []), options]);
        }
        for (const o of ollamas) {
            const urn = o.resource.urn;
            const ownName = str(o.props.name);
            for (const c of containers) {
                const mode = str(c.props.networkMode);
                if (c !== o && ownName && mode === `container:${ownName}`) report(`${c.resource.name} (role ${c.role ?? "unlabelled"}) shares Ollama's network namespace (networkMode "${mode}") and reaches it on localhost.`, urn);
            }
            for (const net of joinedNetworks(o)) {
                const options = optionsByName.get(net);
                if (!options) report(`Ollama joins network "${net}", which this stack does not define, so nothing proves who else is on it or that the host has no route into it.`, urn);
                else if (options.some((opts) => opts[INHIBIT_HOST_ADDRESS_OPTION] !== "true")) report(`Ollama's network "${net}" lacks the bridge option ${INHIBIT_HOST_ADDRESS_OPTION}: "true", so every process on the Docker host can reach Ollama at its bridge address.`, urn);
                const peers = containers.filter((c) => c !== o && joinedNetworks(c).includes(net));
                for (const p of peers.filter((p) => p.role !== caller)) {
                    report(`${p.resource.name} (role ${p.role ?? "unlabelled"}) shares Ollama's network "${net}"; only the ${caller} may, so anything else on it bypasses the ${caller === "gateway" ? "gateway" : `${caller} and the gateway`}.`, urn);
                }
                const callers = peers.filter((p) => p.role === caller);
                if (callers.length > 1) report(`Ollama's network "${net}" is shared with ${callers.length} ${caller} containers (${callers.map((p) => p.resource.name).join(", ")}); it must be shared with a single caller.`, urn);
            }
        }
    },
};
