/**
 * Composes the components for one validated stack config. `index.ts` calls this with config read
 * from Pulumi; `npm run plan` and the mock tests call it with config read from a stack file.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { StackConfig } from "./config";
import { Network } from "./network";
import { OllamaRuntime } from "./ollama";
import { Pki } from "./pki";

export interface StackSecrets {
    /** OIDC client secret (identity.provider oidc), a Pulumi secret. */
    readonly oidcClientSecret?: pulumi.Output<string>;
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
}

export function deployStack(cfg: StackConfig, _secrets: StackSecrets = {}): StackOutputs {
    const stack = pulumi.getStack();
    const namePrefix = `zto-${stack}`;
    const provider = new docker.Provider("docker", { host: cfg.docker.host });
    const logging = { syslogAddress: cfg.siem.syslogAddress };

    const pki = new Pki("pki", {
        organization: cfg.domain,
        keyAlgorithm: cfg.pki.keyAlgorithm,
        devices: cfg.devices.map((d) => ({ name: d.name, owner: d.owner })),
        serverDnsNames: [cfg.domain, "localhost"],
        serverIpAddresses: cfg.tailscale.serverAddress ? ["127.0.0.1", cfg.tailscale.serverAddress] : ["127.0.0.1"],
        caValidityDays: cfg.pki.caValidityDays,
        serverCertValidityDays: cfg.pki.serverCertValidityDays,
        clientCertValidityDays: cfg.pki.clientCertValidityDays,
    });

    const network = new Network("network", { provider, namePrefix, egress: cfg.identity.provider !== "none" });

    new OllamaRuntime("ollama", {
        provider,
        image: cfg.ollama.image,
        gpus: cfg.ollama.gpus,
        modelsPath: cfg.ollama.modelsPath,
        internalNetwork: network.internal.name,
        containerName: `${namePrefix}-ollama`,
        memoryLimitMiB: cfg.ollama.memoryLimitMiB,
        keepAlive: cfg.ollama.keepAlive,
        logging,
    });

    const devicesByName = new Map(cfg.devices.map((d) => [d.name, d]));
    return {
        gatewayUrl: pulumi.output(`https://${cfg.domain}:${cfg.gateway.port}`),
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
    };
}
