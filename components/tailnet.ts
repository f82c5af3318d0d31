/**
 * Tailnet reach (seed 002, layer 1): the tailnet policy that lets only tagged client devices reach
 * the gateway port, the client tags and authorisation of every enrolled device, the server's
 * enrolment key, the server's Tailscale address for the gateway to publish on, and optional log
 * streaming of tailnet logs to the SIEM.
 *
 * The Tailscale provider is the default one: it reads `tailscale:tailnet` and the credentials
 * (`tailscale:apiKey`, or `tailscale:oauthClientId` + `tailscale:oauthClientSecret`) from stack
 * config or TAILSCALE_* environment variables, so no credential passes through this program.
 */
import * as pulumi from "@pulumi/pulumi";
import * as tailscale from "@pulumi/tailscale";
import { formatProblems, isTailscaleAddress, keyPath } from "./config";
import { renderTailnetPolicy, tailnetPolicyJson, type TailnetNodePool, type TailnetPolicy } from "./tailnet/acl";

/** Invoke token of the device lookup (mocked in tests). */
export const GET_DEVICE_TOKEN = "tailscale:index/getDevice:getDevice";

export interface TailnetDevice {
    /** Device name from config; names the device's child resources. */
    readonly name: string;
    /** Tailscale node id of the device. */
    readonly tailscaleDeviceId: string;
}

export type LogstreamDestination = "splunk" | "elastic" | "cribl" | "datadog" | "axiom" | "panther";

export interface TailnetLogstream {
    /** SIEM type Tailscale streams to. */
    readonly destination: LogstreamDestination;
    /** HTTPS endpoint of the SIEM collector. */
    readonly url: string;
    /** Collector token (a Pulumi secret). */
    readonly token: pulumi.Input<string>;
}

export interface TailnetArgs {
    /** Tag of the gateway host, e.g. tag:ai-server. */
    readonly serverTag: string;
    /** Tag applied to every enrolled client device, e.g. tag:ai-client. */
    readonly clientTag: string;
    /** Who may apply both tags, e.g. ["autogroup:admin"]. */
    readonly tagOwners: readonly string[];
    /** Tag of the deploying OAuth client (tailscale.deployerTag): it owns the stack's tags in the policy. */
    readonly deployerTag?: string;
    /** Users whose own (untagged) devices may also reach the gateway port. */
    readonly allowedUsers: readonly string[];
    /** The gateway's published TCP port, the only port granted on the server. */
    readonly gatewayPort: number;
    /** Enrolled client devices; each gets the client tag and is authorised. */
    readonly devices: readonly TailnetDevice[];
    /** Devices revoked from `devices` (tailscale.revokedDevices): each keeps its authorization, set to false, and loses its tags. */
    readonly revokedDevices?: readonly TailnetDevice[];
    /** True: apply the whole policy (Acl resource). False: only render it for an administrator. */
    readonly manageAcl: boolean;
    /** Replace a policy someone already edited in the admin console (only with manageAcl). */
    readonly overwriteExistingAcl: boolean;
    /** Lifetime of the server enrolment key, in hours. */
    readonly authKeyExpiryHours: number;
    /** The server's Tailscale address, when known. */
    readonly serverAddress?: string;
    /** The server's tailnet host name: its address is looked up (getDevice) when `serverAddress` is not given. */
    readonly serverHostname?: string;
    /** Stream tailnet network-flow and configuration logs to this SIEM. */
    readonly logstream?: TailnetLogstream;
    /** ollama.nodes: the node tag and enclave port (policy), and the node names (one enrolment key each). */
    readonly nodes?: TailnetNodePool & { readonly names: readonly string[] };
}

/**
 * The address the gateway publishes on, from a looked-up device's addresses: its Tailscale IPv4
 * address (the one clients use by default), else its Tailscale IPv6 address. Anything else is a
 * config error naming `tailscale.serverHostname`.
 */
export function pickServerAddress(hostname: string, addresses: readonly string[]): string {
    const tailnetAddresses = addresses.filter(isTailscaleAddress);
    const chosen = tailnetAddresses.find((a) => a.includes(".")) ?? tailnetAddresses[0];
    if (chosen !== undefined) return chosen;
    const got = addresses.length ? addresses.join(", ") : "no addresses";
    throw new pulumi.RunError(
        formatProblems([
            {
                path: keyPath(["tailscale", "serverHostname"]),
                message: `the tailnet device "${hostname}" has no Tailscale address in 100.64.0.0/10 or fd7a:115c:a1e0::/48 (got ${got}); check the host name or set tailscale.serverAddress`,
            },
        ]),
    );
}

/** Look the server's Tailscale address up by host name (`getDevice`); rejects with the error of `pickServerAddress`. */
export async function lookupServerAddress(hostname: string, opts?: pulumi.InvokeOptions): Promise<string> {
    const device = await tailscale.getDevice({ hostname }, opts);
    return pickServerAddress(hostname, device.addresses ?? []);
}

export class Tailnet extends pulumi.ComponentResource {
    /** The rendered tailnet policy (plain data). */
    public readonly policy: TailnetPolicy;
    /** The policy as JSON: applied when manageAcl, otherwise for an administrator to merge. */
    public readonly policyJson: pulumi.Output<string>;
    /** The applied policy; undefined when an administrator owns the tailnet policy. */
    public readonly acl?: tailscale.Acl;
    /** Per device name: its tags and authorisation. */
    public readonly devices: Readonly<Record<string, { tags: tailscale.DeviceTags; authorization: tailscale.DeviceAuthorization }>>;
    /** Per revoked device name: its authorization, kept with authorized: false. */
    public readonly revokedDevices: Readonly<Record<string, tailscale.DeviceAuthorization>>;
    /** Per GPU node name: its single-use, node-tagged enrolment key (secret; empty without ollama.nodes). */
    public readonly nodeAuthKeys: Readonly<Record<string, pulumi.Output<string>>>;
    /** Pre-authorised, single-use, server-tagged key that enrols the gateway host (secret). */
    public readonly serverAuthKey: pulumi.Output<string>;
    /** The server's Tailscale address (given or looked up); undefined when neither address nor host name is given. */
    public readonly serverAddress?: pulumi.Output<string>;

    constructor(name: string, args: TailnetArgs, opts?: pulumi.ComponentResourceOptions) {
        const policy = renderTailnetPolicy(args);
        // The policy is recorded with the component too, so a plan shows it even when an
        // administrator applies it (manageAcl: false, no Acl resource).
        super("zero-trust-ollama:tailnet:Tailnet", name, { ...args, policy: tailnetPolicyJson(policy) }, opts);
        const child = { parent: this };

        this.policy = policy;
        this.policyJson = pulumi.output(tailnetPolicyJson(policy));
        if (args.manageAcl) {
            this.acl = new tailscale.Acl(`${name}-acl`, { acl: this.policyJson, overwriteExistingContent: args.overwriteExistingAcl }, child);
        }
        // A tag can be applied only once the policy names its owners; with a managed policy, wait for it.
        const afterPolicy = { ...child, dependsOn: this.acl ? [this.acl] : [] };

        // Named by device name, so removing one device from config touches exactly its two children.
        // What the bridged provider does (terraform-provider-tailscale v0.29.2, checked in its source;
        // docs/tailscale.md): DeviceAuthorization sends `authorized` as given on create and update,
        // and its delete changes nothing at the tailnet (the device stays approved and joined);
        // DeviceTags' delete sets the device's tags to []. So de-authorising is an update, not a
        // delete: a revoked device listed in revokedDevices keeps its authorization resource, under
        // the same name, with authorized: false. The tags depend on the authorization, so Pulumi
        // authorises before it tags, and on revocation withdraws the approval (an update runs
        // before any delete) and then deletes the tags of a device that still exists.
        // retainOnDelete on the tags would be wrong: nothing else clears them, since the device
        // is never removed from the tailnet by the provider.
        const authorization = (d: TailnetDevice, authorized: boolean) => new tailscale.DeviceAuthorization(`${name}-${d.name}-authorization`, { deviceId: d.tailscaleDeviceId, authorized }, child);
        this.devices = Object.fromEntries(
            args.devices.map((d) => {
                const approval = authorization(d, true);
                const tags = new tailscale.DeviceTags(`${name}-${d.name}-tags`, { deviceId: d.tailscaleDeviceId, tags: [args.clientTag] }, { ...afterPolicy, dependsOn: [...afterPolicy.dependsOn, approval] });
                return [d.name, { tags, authorization: approval }];
            }),
        );
        this.revokedDevices = Object.fromEntries((args.revokedDevices ?? []).map((d) => [d.name, authorization(d, false)]));

        const key = new tailscale.TailnetKey(
            `${name}-server-key`,
            {
                // Tailscale limits key descriptions to a short run of letters and digits.
                description: "zeroTrustOllamaGatewayHost",
                tags: [args.serverTag],
                preauthorized: true,
                reusable: false,
                ephemeral: false,
                // A used or expired single-use key stays spent; enrolling again is a deliberate act.
                recreateIfInvalid: "never",
                expiry: args.authKeyExpiryHours * 3600,
            },
            afterPolicy,
        );
        this.serverAuthKey = pulumi.secret(key.key);

        // One single-use, node-tagged enrolment key per GPU node, named by node name.
        this.nodeAuthKeys = Object.fromEntries(
            (args.nodes?.names ?? []).map((node) => [
                node,
                pulumi.secret(
                    new tailscale.TailnetKey(
                        `${name}-node-${node}-key`,
                        { description: "zeroTrustOllamaGpuNode", tags: [args.nodes!.tag], preauthorized: true, reusable: false, ephemeral: false, recreateIfInvalid: "never", expiry: args.authKeyExpiryHours * 3600 },
                        afterPolicy,
                    ).key,
                ),
            ]),
        );

        if (args.serverAddress !== undefined) {
            this.serverAddress = pulumi.output(args.serverAddress);
        } else if (args.serverHostname !== undefined) {
            this.serverAddress = pulumi.output(lookupServerAddress(args.serverHostname, child));
        }

        if (args.logstream) {
            for (const logType of ["network", "configuration"] as const) {
                new tailscale.LogstreamConfiguration(
                    `${name}-logstream-${logType}`,
                    { logType, destinationType: args.logstream.destination, url: args.logstream.url, token: pulumi.secret(args.logstream.token) },
                    child,
                );
            }
        }

        // serverAddress is left out: a failed lookup should surface once, where the gateway uses it.
        this.registerOutputs({ policyJson: this.policyJson, serverAuthKey: this.serverAuthKey });
    }
}
