import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

/**
 * Bridge driver option that gives the host no address on the bridge, and so no route into the
 * network: without it a plain process on the Docker host reaches every container of an
 * `internal: true` network at its bridge address.
 */
export const INHIBIT_HOST_ADDRESS_OPTION = "com.docker.network.bridge.inhibit_ipv4";
/** Label naming a network's purpose (edge, egress, to-ollama, to-filter, to-oauth2-proxy, to-session-store). */
export const NETWORK_PURPOSE_LABEL = "zero-trust-ollama.network";

/**
 * The components a hop network leads to: each callee has exactly one network its caller uses
 * (the session store's caller is oauth2-proxy, everyone else's the gateway or the filter).
 */
export type Callee = "ollama" | "filter" | "oauth2-proxy" | "session-store";

export interface NetworkArgs {
    /** Docker provider of the host the networks live on. */
    readonly provider: docker.Provider;
    /** Prefix for the Docker network names (usually the stack name). */
    readonly namePrefix: pulumi.Input<string>;
    /** The callees that run on this host; each gets its own hop network shared only with its caller. */
    readonly callees: readonly Callee[];
}

const labels = (purpose: string) => [{ label: NETWORK_PURPOSE_LABEL, value: purpose }];

/** Inputs of a network no host process needs: internal (no route out) and no host address (no way in). */
function hopNetworkArgs(name: pulumi.Input<string>, purpose: string): docker.NetworkArgs {
    return { name, driver: "bridge", internal: true, attachable: false, labels: labels(purpose), options: { [INHIBIT_HOST_ADDRESS_OPTION]: "true" } };
}

/**
 * Network segmentation, one network per hop (seed 000 "Ollama only accepts traffic from NGINX",
 * seed 003 "micro-perimeter"): each callee (Ollama, the filter, oauth2-proxy, its session store) shares a network
 * only with its single caller, so a compromised neighbour on another hop cannot reach it. Hop
 * networks are internal and carry no host address. The edge network (the gateway publishes its
 * one port there) and the egress network (oauth2-proxy to the IdP) need the host's address, for
 * port publishing and for NAT respectively; nothing else joins them.
 */
export class Network extends pulumi.ComponentResource {
    /** Edge network the gateway publishes on (the gateway only). */
    public readonly edge: docker.Network;
    /** Hop networks by callee: the callee and its single caller, nobody else. */
    public readonly to: Partial<Record<Callee, docker.Network>>;
    /** Egress-capable network for oauth2-proxy to reach the IdP; present when oauth2-proxy is a callee. */
    public readonly egress?: docker.Network;

    constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:network:Network", name, args, opts);
        const child = { parent: this, provider: args.provider };

        // The edge network must not be internal, or Docker cannot publish the gateway's port on it.
        this.edge = new docker.Network(
            `${name}-edge`,
            { name: pulumi.interpolate`${args.namePrefix}-edge`, driver: "bridge", internal: false, attachable: false, labels: labels("edge"), options: { "com.docker.network.bridge.enable_icc": "false" } },
            child,
        );
        const to: Partial<Record<Callee, docker.Network>> = {};
        for (const callee of args.callees) {
            to[callee] = new docker.Network(`${name}-to-${callee}`, hopNetworkArgs(pulumi.interpolate`${args.namePrefix}-to-${callee}`, `to-${callee}`), child);
        }
        this.to = to;
        if (args.callees.includes("oauth2-proxy")) {
            this.egress = new docker.Network(
                `${name}-egress`,
                { name: pulumi.interpolate`${args.namePrefix}-egress`, driver: "bridge", internal: false, attachable: false, labels: labels("egress") },
                child,
            );
        }
        this.registerOutputs({ edge: this.edge.name, egress: this.egress?.name, ...Object.fromEntries(Object.entries(to).map(([callee, n]) => [`to-${callee}`, n.name])) });
    }

    /** The hop network to `callee`; throws when this host runs no such callee (a wiring bug). */
    hopTo(callee: Callee): docker.Network {
        const n = this.to[callee];
        if (!n) throw new Error(`no network to ${callee} was created on this host`);
        return n;
    }
}
