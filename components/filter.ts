/**
 * The prompt/policy filter (issue 6): built from filter/Dockerfile and run inline between the
 * gateway and Ollama, on its two hop networks only (no published port, no egress). Its rules file
 * is rendered from stack config by `renderFilterRules` and uploaded into the container.
 */
import * as path from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { FilterRules } from "./filter/rules";
import type { Upstream } from "./gateway/spec";
import { hardenedContainerArgs } from "./hardening";
import { checkedVolume, type VolumeCheckSettings } from "./model-store/volume";

/** Port the filter listens on inside the internal network. */
export const FILTER_PORT = 8080;
/** Directory (a volume) holding the rules file; the root filesystem stays read-only. */
export const FILTER_RULES_DIR = "/etc/zto-filter";
export const FILTER_RULES_FILE = `${FILTER_RULES_DIR}/rules.json`;
/** Directory (its own volume) of the token budget ledger: written by the filter, kept across restarts and image updates. */
export const FILTER_STATE_DIR = "/var/lib/zto-filter";
export const FILTER_BUDGET_STORE = `${FILTER_STATE_DIR}/budgets.db`;
/** The `node` user of the official Node image; the filter never runs as root. */
export const FILTER_USER = "1000:1000";
/** Repository root: the Docker build context (the image bundles filter/src and the shared components). */
const REPO_ROOT = path.resolve(__dirname, "..");
/**
 * Container memory per filter process (the primary and each worker), plus one more share as headroom
 * for bursts of streams: an idle process of the bundled filter
 * holds about 80 MiB, and the 2,000-stream bench added about 25 KiB per stream.
 */
export const FILTER_MEMORY_MIB_PER_PROCESS = 128;

export interface PromptFilterArgs {
    /** Docker provider of the host the stack runs on. */
    readonly provider: docker.Provider;
    /** Rules rendered from stack config by renderFilterRules. */
    readonly rules: FilterRules;
    /** The network the gateway calls the filter on (shared with the gateway only). */
    readonly gatewayNetwork: pulumi.Input<string>;
    /** The network to Ollama (shared with Ollama only); absent with a node pool, whose router is the gateway. */
    readonly ollamaNetwork?: pulumi.Input<string>;
    /** Container name; also the DNS name the gateway uses to reach the filter. */
    readonly containerName: string;
    /** Ollama's host:port on the internal network. */
    readonly ollamaAddress: pulumi.Input<string>;
    /** Local image name:tag the build is stored under (never pushed). */
    readonly imageName: string;
    /** HTTP worker processes beside the primary that keeps the budget ledger (`--workers`). */
    readonly workers: number;
    /** How its rules and ledger volumes are checked for encryption at rest before anything writes into them. */
    readonly volumeCheck: VolumeCheckSettings;
}

export class PromptFilter extends pulumi.ComponentResource {
    public readonly containerName: pulumi.Output<string>;
    /** host:port the gateway forwards to on the internal network. */
    public readonly internalAddress: pulumi.Output<string>;
    /** The same address as plain data, for the GatewaySpec placement (`placement.filter`). */
    public readonly upstream: Upstream;

    constructor(name: string, args: PromptFilterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:filter:PromptFilter", name, args, opts);
        const child = { parent: this, provider: args.provider };

        const image = new docker.Image(
            `${name}-image`,
            { imageName: args.imageName, build: { context: REPO_ROOT, dockerfile: path.join(REPO_ROOT, "filter", "Dockerfile") }, skipPush: true },
            child,
        );
        // Docker refuses to copy files into a read-only root filesystem, so the rules go into a volume.
        const volumeOf = (role: string, holds: string) => checkedVolume(this, `${name}-${role}`, { provider: args.provider, volumeName: `${args.containerName}-${role}`, role: `filter-${role}`, holds, consumer: "The filter", settings: args.volumeCheck, logging: {} });
        const rulesCheck = volumeOf("rules", "the filter's rules");
        // The budget ledger must survive restarts and re-creation of the container (a reset would hand
        // every user a fresh budget); the image creates the mount point owned by the filter's user.
        // The probe image has nothing at its mount point, so the volume stays empty and the filter's
        // own mount still copies the image's state directory (owned by the filter's user) into it.
        const stateCheck = volumeOf("state", "the filter's token budget ledger");
        const container = new docker.Container(
            `${name}-container`,
            {
                name: args.containerName,
                image: image.repoDigest,
                // Container logs stay local (rotated json-file): the filter sends its audit events to
                // siem.syslogAddress itself (rules.audit), with severities, so the SIEM gets each once.
                ...hardenedContainerArgs("filter", {}),
                user: FILTER_USER,
                // The ledger is opened only when budgets are configured (the image may lack the SQLite binding otherwise).
                command: pulumi
                    .interpolate`--rules ${FILTER_RULES_FILE} --listen 0.0.0.0:${FILTER_PORT} --upstream http://${args.ollamaAddress} --workers ${args.workers}${Object.keys(args.rules.budgets.groups).length ? ` --budget-store ${FILTER_BUDGET_STORE}` : ""}`
                    .apply((c) => c.split(" ")),
                networksAdvanced: [{ name: args.gatewayNetwork, aliases: ["filter"] }, ...(args.ollamaNetwork ? [{ name: args.ollamaNetwork }] : [])],
                readOnly: true,
                // Sized by the worker count: the filter's default (one worker per core) would follow the
                // host's cores, which the container's memory cap does not.
                memory: FILTER_MEMORY_MIB_PER_PROCESS * (args.workers + 2),
                // Two sockets per stream in flight (the gateway's and Ollama's): thousands of
                // simultaneous generations must not depend on the engine's default limit.
                ulimits: [{ name: "nofile", soft: 16384, hard: 16384 }],
                mounts: [
                    { type: "volume", source: rulesCheck.verifiedName, target: FILTER_RULES_DIR },
                    { type: "volume", source: stateCheck.verifiedName, target: FILTER_STATE_DIR },
                ],
                uploads: [{ file: FILTER_RULES_FILE, content: JSON.stringify(args.rules, null, 2) + "\n" }],
                healthcheck: {
                    tests: ["CMD", "node", "-e", `require("net").connect(${FILTER_PORT},"127.0.0.1").on("connect",()=>process.exit(0)).on("error",()=>process.exit(1))`],
                    interval: "30s",
                    timeout: "5s",
                    retries: 3,
                },
            },
            child,
        );

        this.containerName = container.name;
        this.internalAddress = pulumi.interpolate`${container.name}:${FILTER_PORT}`;
        this.upstream = { host: args.containerName, port: FILTER_PORT };
        this.registerOutputs({ containerName: this.containerName, internalAddress: this.internalAddress });
    }
}
