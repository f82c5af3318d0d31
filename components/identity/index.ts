/**
 * Identity for one stack: the Entra app registration (provider entra), the oauth2-proxy container
 * (entra or oidc) and the per-device API keys. `deployStack` calls this once; the gateway takes
 * the oauth2-proxy address and the key digests from the result.
 */
import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { DEFAULT_IMAGES, usesSessionStore, volumeCheckSettings, type StackConfig } from "../config";
import type { LoggingTarget } from "../hardening";
import { DeviceApiKeys } from "./api-keys";
import { EntraIdentity, rotationWindow } from "./entra";
import { OAuth2Proxy } from "./oauth2-proxy";
import { callbackUrl, issuerUrlOf } from "./oauth2-proxy-settings";
import { SessionStore } from "./session-store";

export interface IdentityDeployment {
    /** oauth2-proxy, when identity.provider is not none. */
    readonly oauth2Proxy?: OAuth2Proxy;
    /** oauth2-proxy's Redis session store, when identity.sessionStore is redis. */
    readonly sessionStore?: SessionStore;
    /** The Entra app registration, when identity.provider is entra. */
    readonly entra?: EntraIdentity;
    /** API keys of the devices with apiKey: true, when there are any. */
    readonly apiKeys?: DeviceApiKeys;
    /** What a CLI needs to obtain a token: issuer, client id, and (entra) the resource to ask for. */
    readonly publicInfo?: pulumi.Output<{ provider: string; issuerUrl: string; clientId: string; tokenResource?: string }>;
}

export interface IdentityPlacement {
    readonly provider: docker.Provider;
    /** Prefix of container names on the host. */
    readonly namePrefix: string;
    /** The network the gateway calls oauth2-proxy on; required when identity.provider is not none. */
    readonly gatewayNetwork?: pulumi.Input<string>;
    /** Egress network; must exist when identity.provider is not none. */
    readonly egressNetwork?: pulumi.Input<string>;
    /** The network oauth2-proxy reaches its session store on; required when identity.sessionStore is redis. */
    readonly sessionStoreNetwork?: pulumi.Input<string>;
    readonly logging: LoggingTarget;
    /** identity.provider oidc: the client secret (a Pulumi secret). */
    readonly oidcClientSecret?: pulumi.Output<string>;
    /** Clock for the Entra secret rotation window. */
    readonly now: Date;
}

export function deployIdentity(cfg: StackConfig, placement: IdentityPlacement): IdentityDeployment {
    const id = cfg.identity;
    const keyed = cfg.devices.filter((d) => d.apiKey).map((d) => d.name);
    const apiKeys = keyed.length ? new DeviceApiKeys("api-keys", { devices: keyed }) : undefined;
    if (id.provider === "none") return { apiKeys };

    if (!placement.egressNetwork || !placement.gatewayNetwork) throw new Error(`identity.provider is ${id.provider} but no egress or gateway network was created for oauth2-proxy`);
    const entra =
        id.provider === "entra"
            ? new EntraIdentity("entra", {
                  // Config validation requires tenantId for entra.
                  tenantId: id.tenantId!,
                  displayName: `zero-trust-ollama ${pulumi.getStack()} (${cfg.domain})`,
                  redirectUri: callbackUrl(cfg.domain, cfg.gateway.port),
                  allowedGroups: id.allowedGroups,
                  requireMfa: id.requireMfa,
                  secretRotation: rotationWindow(placement.now, id.secretRotationDays),
              })
            : undefined;
    let clientSecret: pulumi.Output<string>;
    if (entra) clientSecret = entra.clientSecret;
    else if (placement.oidcClientSecret) clientSecret = placement.oidcClientSecret;
    else throw new Error("identity.provider is oidc but no oidcClientSecret value was passed");
    // Config validation requires clientId for oidc.
    const clientId = entra ? entra.clientId : pulumi.output(id.clientId!);

    let sessionStore: SessionStore | undefined;
    if (usesSessionStore(cfg)) {
        if (!placement.sessionStoreNetwork) throw new Error("identity.sessionStore is redis but no network was created for the session store");
        sessionStore = new SessionStore("session-store", {
            provider: placement.provider,
            image: id.sessionStoreImage ?? DEFAULT_IMAGES.sessionStore,
            containerName: `${placement.namePrefix}-session-store`,
            network: placement.sessionStoreNetwork,
            logging: placement.logging,
            volumeCheck: volumeCheckSettings(cfg),
        });
    }

    const oauth2Proxy = new OAuth2Proxy("oauth2-proxy", {
        provider: placement.provider,
        image: id.image ?? DEFAULT_IMAGES.oauth2Proxy,
        containerName: `${placement.namePrefix}-oauth2-proxy`,
        gatewayNetwork: placement.gatewayNetwork,
        egressNetwork: placement.egressNetwork,
        identity: id,
        domain: cfg.domain,
        port: cfg.gateway.port,
        clientId,
        clientSecret,
        logging: placement.logging,
        sessionStore: sessionStore && placement.sessionStoreNetwork ? { network: placement.sessionStoreNetwork, password: sessionStore.password } : undefined,
        volumeCheck: volumeCheckSettings(cfg),
    });
    const publicInfo = pulumi
        .all([clientId, entra ? entra.identifierUri : pulumi.output<string | undefined>(undefined)])
        .apply(([cid, resource]) => ({ provider: id.provider, issuerUrl: issuerUrlOf(id), clientId: cid, ...(resource ? { tokenResource: resource } : {}) }));
    return { oauth2Proxy, sessionStore, entra, apiKeys, publicInfo };
}
