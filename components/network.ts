import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

export interface NetworkArgs {
    /** Docker provider of the host the networks live on. */
    readonly provider: docker.Provider;
    /** Prefix for the Docker network names (usually the stack name). */
    readonly namePrefix: pulumi.Input<string>;
    /** Create the egress network (only needed when a component must reach the internet, e.g. oauth2-proxy to the IdP). */
    readonly egress: boolean;
}

/**
 * Network segmentation (seed 003 "micro-perimeter"): an internal network with no route out for
 * Ollama and the gateway's backends, an edge network on which the gateway publishes its one
 * port, and, only when needed, an egress network that Ollama never joins.
 */
export class Network extends pulumi.ComponentResource {
    /** Internal network: `internal: true`, no egress. Ollama's only network. */
    public readonly internal: docker.Network;
    /** Edge network the gateway publishes on. */
    public readonly edge: docker.Network;
    /** Egress-capable network for components that must reach the IdP; undefined when not needed. */
    public readonly egress?: docker.Network;

    constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:network:Network", name, args, opts);
        const child = { parent: this, provider: args.provider };
        const labels = (purpose: string) => [{ label: "zero-trust-ollama.network", value: purpose }];

        this.internal = new docker.Network(
            `${name}-internal`,
            { name: pulumi.interpolate`${args.namePrefix}-internal`, driver: "bridge", internal: true, attachable: false, labels: labels("internal") },
            child,
        );
        // The edge network must not be internal, or Docker cannot publish the gateway's port on it.
        this.edge = new docker.Network(
            `${name}-edge`,
            { name: pulumi.interpolate`${args.namePrefix}-edge`, driver: "bridge", internal: false, attachable: false, labels: labels("edge"), options: { "com.docker.network.bridge.enable_icc": "false" } },
            child,
        );
        if (args.egress) {
            this.egress = new docker.Network(
                `${name}-egress`,
                { name: pulumi.interpolate`${args.namePrefix}-egress`, driver: "bridge", internal: false, attachable: false, labels: labels("egress") },
                child,
            );
        }
        this.registerOutputs({ internal: this.internal.name, edge: this.edge.name, egress: this.egress?.name });
    }
}
