import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { NODE_TLS_NAME } from "./gateway/node-spec";
import { CA_USES, CLIENT_USES, SERVER_USES, certIdentity, privateKeyArgs, type KeyAlgorithm } from "./certs";

export interface PkiDevice {
    readonly name: string;
    readonly owner: string;
}

export interface PkiArgs {
    /** Organisation name written into every certificate subject. */
    readonly organization: pulumi.Input<string>;
    /** Key algorithm for the CA, the server and every device. */
    readonly keyAlgorithm: KeyAlgorithm;
    /** Enrolled devices; plain data because each becomes its own child resources. */
    readonly devices: readonly PkiDevice[];
    /** DNS SANs of the gateway server certificate. */
    readonly serverDnsNames: pulumi.Input<pulumi.Input<string>[]>;
    /** IP SANs of the gateway server certificate. */
    readonly serverIpAddresses: pulumi.Input<pulumi.Input<string>[]>;
    /** CA certificate validity in days. */
    readonly caValidityDays: pulumi.Input<number>;
    /** Server certificate validity in days (browsers cap this at 397). */
    readonly serverCertValidityDays: pulumi.Input<number>;
    /** Device certificate validity in days. */
    readonly clientCertValidityDays: pulumi.Input<number>;
    /**
     * GPU nodes of the pool (ollama.nodes): each gets a server certificate for its enclave proxy
     * (SAN: its Tailscale address), and the gateway gets its own client certificate, the only one
     * the enclaves accept. Absent for a single-node stack, which then registers none of these.
     */
    readonly nodes?: readonly PkiNode[];
}

export interface PkiNode {
    /** Node name from config; names the node's certificate resources. */
    readonly name: string;
    /** The node's Tailscale address: the enclave certificate's IP SAN. */
    readonly address: string;
}

/** A certificate and its key (the key is a secret). */
export interface CertKeyPair {
    readonly certPem: pulumi.Output<string>;
    readonly keyPem: pulumi.Output<string>;
}

/** Common name of the gateway's client certificate towards the GPU nodes. */
export const GATEWAY_CLIENT_CN = "zero-trust-ollama gateway (node client)";

/** Public facts about one device certificate. */
export interface DeviceCertInfo {
    readonly certPem: string;
    readonly fingerprintSha1: string;
    readonly fingerprintSha256: string;
    readonly serial: string;
}

/** What a device needs to connect: its key and cert (secret). */
export interface DeviceBundle {
    readonly certPem: string;
    readonly keyPem: string;
}

const hours = (days: pulumi.Input<number>) => pulumi.output(days).apply((d) => d * 24);

/**
 * The private PKI: a CA, the gateway's server certificate and one client certificate per
 * device. Device children are named by device name, so removing a device from config deletes
 * exactly its key and certificate.
 */
export class Pki extends pulumi.ComponentResource {
    public readonly caCertPem: pulumi.Output<string>;
    public readonly serverCertPem: pulumi.Output<string>;
    public readonly serverPrivateKeyPem: pulumi.Output<string>;
    /** Per-device certificate, fingerprints and serial (public). */
    public readonly devices: pulumi.Output<Record<string, DeviceCertInfo>>;
    /** Per-device key and certificate (secret). */
    public readonly bundles: pulumi.Output<Record<string, DeviceBundle>>;
    /** Per node name: the enclave proxy's server certificate and key (only with `nodes`). */
    public readonly nodeServerCerts: Readonly<Record<string, CertKeyPair>>;
    /** The gateway's client certificate towards the nodes' enclaves (only with `nodes`). */
    public readonly gatewayClient?: CertKeyPair & { readonly fingerprintSha1: pulumi.Output<string> };

    constructor(name: string, args: PkiArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:pki:Pki", name, args, opts);
        const keyArgs = privateKeyArgs(args.keyAlgorithm);

        const caKey = new tls.PrivateKey(`${name}-ca-key`, keyArgs, { parent: this });
        const caCert = new tls.SelfSignedCert(
            `${name}-ca`,
            {
                privateKeyPem: caKey.privateKeyPem,
                isCaCertificate: true,
                setSubjectKeyId: true,
                maxPathLength: 0,
                subject: { commonName: pulumi.interpolate`${args.organization} device CA`, organization: args.organization },
                validityPeriodHours: hours(args.caValidityDays),
                allowedUses: [...CA_USES],
            },
            { parent: this },
        );

        const signed = (child: string, subject: tls.types.input.CertRequestSubject, uses: readonly string[], days: pulumi.Input<number>, sans: { dnsNames?: pulumi.Input<pulumi.Input<string>[]>; ipAddresses?: pulumi.Input<pulumi.Input<string>[]> } = {}) => {
            const key = new tls.PrivateKey(`${child}-key`, keyArgs, { parent: this });
            const csr = new tls.CertRequest(`${child}-csr`, { privateKeyPem: key.privateKeyPem, subject, ...sans }, { parent: this });
            const cert = new tls.LocallySignedCert(
                `${child}-cert`,
                {
                    certRequestPem: csr.certRequestPem,
                    caPrivateKeyPem: caKey.privateKeyPem,
                    caCertPem: caCert.certPem,
                    validityPeriodHours: hours(days),
                    earlyRenewalHours: 24 * 14,
                    allowedUses: [...uses],
                },
                { parent: this },
            );
            return { key, cert };
        };

        const server = signed(
            `${name}-server`,
            { commonName: "zero-trust-ollama gateway", organization: args.organization },
            SERVER_USES,
            args.serverCertValidityDays,
            { dnsNames: args.serverDnsNames, ipAddresses: args.serverIpAddresses },
        );

        const deviceCerts = args.devices.map((d) => ({
            name: d.name,
            ...signed(`${name}-device-${d.name}`, { commonName: d.name, organization: args.organization, organizationalUnit: d.owner, emailAddress: d.owner }, CLIENT_USES, args.clientCertValidityDays),
        }));

        // Named by node name: removing a node deletes exactly its enclave certificate.
        const nodes = args.nodes ?? [];
        this.nodeServerCerts = Object.fromEntries(
            nodes.map((n) => {
                const pair = signed(`${name}-node-${n.name}`, { commonName: n.name, organization: args.organization, organizationalUnit: "gpu node enclave" }, SERVER_USES, args.serverCertValidityDays, { dnsNames: [n.name, NODE_TLS_NAME], ipAddresses: [n.address] });
                return [n.name, { certPem: pair.cert.certPem, keyPem: pulumi.secret(pair.key.privateKeyPem) }];
            }),
        );
        if (args.nodes) {
            const client = signed(`${name}-gateway-client`, { commonName: GATEWAY_CLIENT_CN, organization: args.organization }, CLIENT_USES, args.clientCertValidityDays);
            this.gatewayClient = {
                certPem: client.cert.certPem,
                keyPem: pulumi.secret(client.key.privateKeyPem),
                fingerprintSha1: client.cert.certPem.apply((pem) => certIdentity(pem).sha1),
            };
        }

        this.caCertPem = caCert.certPem;
        this.serverCertPem = server.cert.certPem;
        this.serverPrivateKeyPem = pulumi.secret(server.key.privateKeyPem);
        this.devices = pulumi
            .all(deviceCerts.map((d) => d.cert.certPem))
            .apply((pems) =>
                Object.fromEntries(
                    pems.map((certPem, i) => {
                        const id = certIdentity(certPem);
                        return [deviceCerts[i].name, { certPem, fingerprintSha1: id.sha1, fingerprintSha256: id.sha256, serial: id.serial }];
                    }),
                ),
            );
        this.bundles = pulumi.secret(
            pulumi
                .all(deviceCerts.map((d) => pulumi.all([d.cert.certPem, d.key.privateKeyPem])))
                .apply((pairs) => Object.fromEntries(pairs.map(([certPem, keyPem], i) => [deviceCerts[i].name, { certPem, keyPem }]))),
        );

        this.registerOutputs({
            caCertPem: this.caCertPem,
            serverCertPem: this.serverCertPem,
            devices: this.devices,
            bundles: this.bundles,
        });
    }
}
