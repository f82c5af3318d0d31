/**
 * Composes the components for one validated stack config. `index.ts` calls this with config read
 * from Pulumi; `npm run plan` and the mock tests call it with config read from a stack file.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { DEFAULT_IMAGES, modelStoreSettings, nodePoolSettings, usesSessionStore, volumeCheckSettings, type StackConfig } from "./config";
import { PromptFilter } from "./filter";
import { renderFilterRules } from "./filter/rules";
import { Gateway, NODE_ROUTER_PORT } from "./gateway";
import { deployIdentity } from "./identity";
import { Network, type Callee } from "./network";
import { GpuNode } from "./node";
import { OLLAMA_PORT, OllamaRuntime } from "./ollama";
import { Pki } from "./pki";
import { Tailnet } from "./tailnet";

export interface StackSecrets {
    /** OIDC client secret (identity.provider oidc), a Pulumi secret. */
    readonly oidcClientSecret?: pulumi.Output<string>;
    /** Token of the SIEM tailnet logs stream to (tailscale.logstream), a Pulumi secret. */
    readonly tailscaleLogstreamToken?: pulumi.Output<string>;
}

export interface StackOutputs {
    /** URL clients use: https://<domain>:<port>. */
    readonly gatewayUrl: pulumi.Output<string>;
    /** CA certificate clients trust and the gateway verifies device certs against. */
    readonly caCertPem: pulumi.Output<string>;
    /** Enrolled devices: owner, groups, certificate fingerprints and serial. */
    readonly devices: pulumi.Output<Record<string, { owner: string; groups: string[]; fingerprintSha256: string; serial: string }>>;
    /** Per-device key + certificate (secret). */
    readonly deviceBundles: pulumi.Output<Record<string, { certPem: string; keyPem: string }>>;
    /** The only host address the gateway publishes on: 127.0.0.1 or the server's Tailscale address. */
    readonly gatewayListenAddress: pulumi.Output<string>;
    /** Tailnet policy JSON (tailscale.enabled): applied when manageAcl, else for an administrator to merge. */
    readonly tailnetPolicy?: pulumi.Output<string>;
    /** Single-use key that enrols the gateway host into the tailnet (secret; tailscale.enabled). */
    readonly tailnetServerAuthKey?: pulumi.Output<string>;
    /** Issuer, client id and (entra) token resource a CLI needs to obtain a bearer token (identity.provider not none). */
    readonly identity?: pulumi.Output<{ provider: string; issuerUrl: string; clientId: string; tokenResource?: string }>;
    /** host:port of the prompt filter on the internal network (filter.enabled). */
    readonly filterAddress?: pulumi.Output<string>;
    /** Device name -> static API key, for devices with apiKey: true (secret). */
    readonly apiKeys?: pulumi.Output<Record<string, string>>;
    /** ollama.nodes: node name -> single-use key that enrols the node into the tailnet with the node tag (secret). */
    readonly nodeAuthKeys?: pulumi.Output<Record<string, string>>;
}

/** A secret the validated config says is present; its absence means the caller forgot to pass it. */
function requiredSecret(value: pulumi.Output<string> | undefined, key: string): pulumi.Output<string> {
    if (value === undefined) throw new Error(`deployStack: the config has ${key} but the caller passed no value for it`);
    return value;
}

export function deployStack(cfg: StackConfig, secrets: StackSecrets = {}): StackOutputs {
    const stack = pulumi.getStack();
    const namePrefix = `zto-${stack}`;
    const provider = new docker.Provider("docker", { host: cfg.docker.host });
    const logging = { syslogAddress: cfg.siem.syslogAddress };
    // ollama.nodes: Ollama runs on the GPU nodes (each its own enclave), not next to the gateway.
    const pool = nodePoolSettings(cfg);
    // Every Ollama host's model store is checked at every deployment, before its Ollama exists.
    const modelStore = modelStoreSettings(cfg);

    const pki = new Pki("pki", {
        organization: cfg.domain,
        keyAlgorithm: cfg.pki.keyAlgorithm,
        devices: cfg.devices.map((d) => ({ name: d.name, owner: d.owner })),
        serverDnsNames: [cfg.domain, "localhost"],
        serverIpAddresses: cfg.tailscale.serverAddress ? ["127.0.0.1", cfg.tailscale.serverAddress] : ["127.0.0.1"],
        caValidityDays: cfg.pki.caValidityDays,
        serverCertValidityDays: cfg.pki.serverCertValidityDays,
        clientCertValidityDays: cfg.pki.clientCertValidityDays,
        ...(pool ? { nodes: pool.nodes.map((n) => ({ name: n.name, address: n.tailscaleAddress })) } : {}),
    });

    // One network per hop; Ollama's is shared with its single caller: the filter, else the gateway.
    const callees: Callee[] = [...(pool ? [] : ["ollama" as const]), ...(cfg.filter.enabled ? ["filter" as const] : []), ...(cfg.identity.provider !== "none" ? ["oauth2-proxy" as const] : []), ...(usesSessionStore(cfg) ? ["session-store" as const] : [])];
    const network = new Network("network", { provider, namePrefix, callees });

    const ollama = pool
        ? undefined
        : new OllamaRuntime("ollama", {
              provider,
              image: cfg.ollama.image,
              gpus: cfg.ollama.gpus,
              modelsPath: cfg.ollama.modelsPath,
              modelStore,
              callerNetwork: network.hopTo("ollama").name,
              containerName: `${namePrefix}-ollama`,
              memoryLimitMiB: cfg.ollama.memoryLimitMiB,
              keepAlive: cfg.ollama.keepAlive,
              logging,
          });
    const gatewayContainerName = `${namePrefix}-gateway`;
    // With a pool, "Ollama" as the filter sees it is the gateway's pool router on the internal network.
    const ollamaAddress = ollama ? ollama.internalAddress : pulumi.output(`${gatewayContainerName}:${NODE_ROUTER_PORT}`);

    // Named by node name: removing a node removes exactly its provider, networks, Ollama and enclave.
    for (const n of pool?.nodes ?? []) {
        new GpuNode(`node-${n.name}`, {
            dockerHost: n.dockerHost,
            namePrefix: `${namePrefix}-${n.name}`,
            ollamaImage: cfg.ollama.image,
            enclaveImage: cfg.gateway.image ?? DEFAULT_IMAGES.nginx,
            gpus: n.gpus,
            modelsPath: n.modelsPath,
            modelStore,
            volumeCheck: volumeCheckSettings(cfg),
            memoryLimitMiB: cfg.ollama.memoryLimitMiB,
            keepAlive: cfg.ollama.keepAlive,
            tailscaleAddress: n.tailscaleAddress,
            enclavePort: pool!.enclavePort,
            caCertPem: pki.caCertPem,
            serverCertPem: pki.nodeServerCerts[n.name].certPem,
            serverKeyPem: pki.nodeServerCerts[n.name].keyPem,
            gatewayFingerprintSha1: pki.gatewayClient!.fingerprintSha1,
            maxBodyKiB: cfg.gateway.maxBodyKiB,
            upstreamTimeoutSeconds: cfg.gateway.upstreamTimeoutSeconds,
            logging,
        });
    }

    // Inline between gateway and Ollama: when enabled, the gateway's upstream is `filter.upstream`.
    const filter = cfg.filter.enabled
        ? new PromptFilter("filter", {
              provider,
              rules: renderFilterRules(cfg),
              gatewayNetwork: network.hopTo("filter").name,
              ollamaNetwork: network.to.ollama?.name,
              containerName: `${namePrefix}-filter`,
              ollamaAddress,
              imageName: `${namePrefix}-filter:local`,
              workers: cfg.filter.workers,
              volumeCheck: volumeCheckSettings(cfg),
          })
        : undefined;

    const identity = deployIdentity(cfg, {
        provider,
        namePrefix,
        gatewayNetwork: network.to["oauth2-proxy"]?.name,
        egressNetwork: network.egress?.name,
        sessionStoreNetwork: network.to["session-store"]?.name,
        logging,
        oidcClientSecret: secrets.oidcClientSecret,
        now: new Date(),
    });

    const ts = cfg.tailscale;
    const tailnet = ts.enabled
        ? new Tailnet("tailnet", {
              serverTag: ts.serverTag,
              clientTag: ts.clientTag,
              tagOwners: ts.tagOwners,
              deployerTag: ts.deployerTag,
              allowedUsers: ts.allowedUsers,
              gatewayPort: cfg.gateway.port,
              // Config validation requires a node id for every device when tailscale is enabled.
              devices: cfg.devices.map((d) => ({ name: d.name, tailscaleDeviceId: d.tailscaleDeviceId! })),
              revokedDevices: ts.revokedDevices,
              manageAcl: ts.manageAcl,
              overwriteExistingAcl: ts.overwriteExistingAcl,
              authKeyExpiryHours: ts.authKeyExpiryHours,
              serverAddress: ts.serverAddress,
              // Look the address up only when the gateway needs it.
              serverHostname: cfg.gateway.listen === "tailscale" ? ts.serverHostname : undefined,
              // Config validation requires logstreamUrl and the token whenever logstream is on.
              logstream: ts.logstream === "off" ? undefined : { destination: ts.logstream, url: ts.logstreamUrl!, token: requiredSecret(secrets.tailscaleLogstreamToken, "tailscaleLogstreamToken") },
              ...(pool ? { nodes: { tag: pool.nodeTag, enclavePort: pool.enclavePort, names: pool.nodes.map((n) => n.name) } } : {}),
          })
        : undefined;
    // Config validation guarantees a Tailnet with an address (given or looked up) for listen: tailscale.
    const gatewayListenAddress = cfg.gateway.listen === "tailscale" ? tailnet!.serverAddress! : pulumi.output("127.0.0.1");

    const gateway = new Gateway("gateway", {
        provider,
        image: cfg.gateway.image ?? DEFAULT_IMAGES[cfg.gateway.kind],
        config: cfg,
        devices: identity.apiKeys ? identity.apiKeys.withDigests(pki.devices) : pki.devices,
        caCertPem: pki.caCertPem,
        serverCertPem: pki.serverCertPem,
        serverKeyPem: pki.serverPrivateKeyPem,
        edgeNetwork: network.edge.name,
        // Without the filter the gateway calls Ollama itself; with it, the filter is Ollama's only caller.
        backendNetworks: [filter ? network.hopTo("filter").name : network.to.ollama?.name, network.to["oauth2-proxy"]?.name].filter((n): n is pulumi.Output<string> => n !== undefined),
        containerName: gatewayContainerName,
        publishAddress: gatewayListenAddress,
        publishPort: cfg.gateway.port,
        ollama: ollama ? { host: ollama.containerName, port: OLLAMA_PORT } : { host: "127.0.0.1", port: NODE_ROUTER_PORT },
        filter: filter && { host: filter.containerName, port: filter.upstream.port },
        oauth2Proxy: identity.oauth2Proxy && { host: identity.oauth2Proxy.containerName, port: identity.oauth2Proxy.port },
        logging,
        ...(pool ? { nodePool: { settings: pool, clientCertPem: pki.gatewayClient!.certPem, clientKeyPem: pki.gatewayClient!.keyPem } } : {}),
    });

    const devicesByName = new Map(cfg.devices.map((d) => [d.name, d]));
    return {
        gatewayUrl: gateway.url,
        caCertPem: pki.caCertPem,
        devices: pki.devices.apply((infos) =>
            Object.fromEntries(
                Object.entries(infos).map(([name, info]) => {
                    const d = devicesByName.get(name)!;
                    return [name, { owner: d.owner, groups: [...d.groups], fingerprintSha256: info.fingerprintSha256, serial: info.serial }];
                }),
            ),
        ),
        deviceBundles: pki.bundles,
        gatewayListenAddress,
        filterAddress: filter?.internalAddress,
        tailnetPolicy: tailnet?.policyJson,
        tailnetServerAuthKey: tailnet?.serverAuthKey,
        identity: identity.publicInfo,
        apiKeys: identity.apiKeys?.keys,
        ...(pool && tailnet ? { nodeAuthKeys: pulumi.secret(pulumi.all(tailnet.nodeAuthKeys)) } : {}),
    };
}
