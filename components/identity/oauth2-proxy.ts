/**
 * The oauth2-proxy container: nginx's `auth_request` target. Pinned image, settings from the pure
 * renderer, secrets only in its environment, on its network to the gateway and the egress
 * network (for the IdP) and nothing else (never Ollama's), with no published port.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { IdentityConfig } from "../config";
import { hardenedContainerArgs, type LoggingTarget } from "../hardening";
import { checkedVolume, type VolumeCheckSettings } from "../model-store/volume";
import {
    AUTHENTICATED_EMAILS_FILE,
    COOKIE_SECRET_BYTES,
    OAUTH2_PROXY_CONFIG_DIR,
    OAUTH2_PROXY_PORT,
    oauth2ProxyHealthcheck,
    renderOAuth2ProxySettings,
} from "./oauth2-proxy-settings";

/** The unprivileged user of the official images (distroless nonroot; set explicitly for -alpine). */
export const OAUTH2_PROXY_USER = "65532:65532";

export interface OAuth2ProxyArgs {
    /** Docker provider of the host. */
    readonly provider: docker.Provider;
    /** Pinned oauth2-proxy image reference. */
    readonly image: pulumi.Input<string>;
    /** Container name; the DNS name nginx uses on the internal network. */
    readonly containerName: pulumi.Input<string>;
    /** The network the gateway calls oauth2-proxy on (shared with the gateway only). */
    readonly gatewayNetwork: pulumi.Input<string>;
    /** Egress network through which the container reaches the IdP. */
    readonly egressNetwork: pulumi.Input<string>;
    /** Validated identity config (provider entra or oidc). */
    readonly identity: IdentityConfig;
    /** Public DNS name of the gateway (redirect URI). */
    readonly domain: string;
    /** Public port of the gateway (redirect URI). */
    readonly port: number;
    /** OAuth client id. */
    readonly clientId: pulumi.Input<string>;
    /** OAuth client secret; must be a Pulumi secret. */
    readonly clientSecret: pulumi.Input<string>;
    /** Where container logs go. */
    readonly logging: LoggingTarget;
    /** identity.sessionStore redis: the store's hop network and password (a Pulumi secret). */
    readonly sessionStore?: { readonly network: pulumi.Input<string>; readonly password: pulumi.Input<string> };
    /** How its config volume (allowedEmails) is checked for encryption at rest before it is written. */
    readonly volumeCheck: VolumeCheckSettings;
}

export class OAuth2Proxy extends pulumi.ComponentResource {
    /** Container name: the host nginx proxies `/oauth2/` and `auth_request` to. */
    public readonly containerName: pulumi.Output<string>;
    /** Port on the internal network. */
    public readonly port: number = OAUTH2_PROXY_PORT;
    /** host:port on the internal network. */
    public readonly internalAddress: pulumi.Output<string>;
    /** The rendered command line (no secrets in it). */
    public readonly args: pulumi.Output<string[]>;

    constructor(name: string, args: OAuth2ProxyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:identity:OAuth2Proxy", name, args, opts);
        const child = { parent: this, provider: args.provider };

        const cookieSecret = new random.RandomBytes(`${name}-cookie-secret`, { length: COOKIE_SECRET_BYTES }, { parent: this });
        // One rendering for flags and secret env, the same function the sandbox runs the real binary with.
        const settings = pulumi
            .all([args.clientId, args.clientSecret, cookieSecret.base64, args.sessionStore?.password])
            .apply(([clientId, clientSecret, cookieSecretBase64, sessionStorePassword]) =>
                renderOAuth2ProxySettings({ identity: args.identity, domain: args.domain, port: args.port, clientId, secrets: { clientSecret, cookieSecretBase64, sessionStorePassword } }),
            );
        // The flags carry no secret (the secrets are only in env), so they stay readable in the plan.
        const command = pulumi.unsecret(settings.apply((s) => [...s.args]));
        const env = pulumi.secret(settings.apply((s) => [...s.env!]));

        // The root filesystem is read-only and Docker refuses to copy files into one, so the
        // authenticated-emails file goes into a dedicated volume.
        const emailsCheck = args.identity.allowedEmails.length
            ? checkedVolume(this, `${name}-config`, {
                  provider: args.provider,
                  volumeName: pulumi.interpolate`${args.containerName}-config`,
                  role: "oauth2-proxy-config",
                  holds: "oauth2-proxy's email allowlist",
                  consumer: "oauth2-proxy",
                  settings: args.volumeCheck,
                  logging: args.logging,
              })
            : undefined;

        const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, child);
        const container = new docker.Container(
            `${name}-container`,
            {
                name: args.containerName,
                image: image.imageId,
                ...hardenedContainerArgs("oauth2-proxy", args.logging),
                user: OAUTH2_PROXY_USER,
                command,
                envs: env,
                networksAdvanced: [{ name: args.gatewayNetwork, aliases: ["oauth2-proxy"] }, { name: args.egressNetwork }, ...(args.sessionStore ? [{ name: args.sessionStore.network }] : [])],
                readOnly: true,
                memory: 256,
                healthcheck: { tests: oauth2ProxyHealthcheck(), interval: "30s", timeout: "5s", retries: 3, startPeriod: "10s" },
                mounts: emailsCheck ? [{ type: "volume", source: emailsCheck.verifiedName, target: OAUTH2_PROXY_CONFIG_DIR }] : undefined,
                uploads: emailsCheck ? pulumi.unsecret(settings.apply((s) => [{ file: AUTHENTICATED_EMAILS_FILE, content: s.authenticatedEmails! }])) : undefined,
            },
            child,
        );

        this.containerName = container.name;
        this.internalAddress = pulumi.interpolate`${container.name}:${OAUTH2_PROXY_PORT}`;
        this.args = command;
        this.registerOutputs({ containerName: this.containerName, internalAddress: this.internalAddress, args: this.args });
    }
}
