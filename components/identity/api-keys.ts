/**
 * Static per-device API keys (seed 004), for devices with `apiKey: true`. A key is a second
 * factor bound to one device: the gateway accepts it only together with that device's client
 * certificate. The gateway never holds the key itself, only its digest.
 */
import { createHash } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

/** 48 characters from [A-Za-z0-9]: about 285 bits of entropy. */
export const API_KEY_LENGTH = 48;
/** Shape of a key as clients send it after `Bearer `. */
export const API_KEY_PATTERN = /^[A-Za-z0-9]{48}$/;

/**
 * The digest the gateway compares against: MD5 in unpadded base64url, the only form nginx's
 * built-in `secure_link` module can compute at request time. MD5's known weaknesses are
 * collisions; recovering a ~285-bit random key from its digest needs a preimage, which is out of
 * reach, so the digest may sit in the (non-secret) gateway config.
 */
export function apiKeyDigest(key: string): string {
    return createHash("md5").update(key, "utf8").digest("base64url");
}

export interface DeviceApiKeysArgs {
    /** Names of the devices that get a key (devices[].apiKey: true). */
    readonly devices: readonly string[];
}

export class DeviceApiKeys extends pulumi.ComponentResource {
    /** Device name -> API key (secret). */
    public readonly keys: pulumi.Output<Record<string, string>>;
    /** Device name -> key digest for the gateway (not secret, see `apiKeyDigest`). */
    public readonly digests: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: DeviceApiKeysArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:identity:DeviceApiKeys", name, args, opts);
        // Named by device, so removing one device deletes exactly its key.
        const entries = args.devices.map((device) => {
            const key = new random.RandomPassword(`${name}-${device}`, { length: API_KEY_LENGTH, special: false, upper: true, lower: true, numeric: true }, { parent: this });
            return pulumi.all([device, key.result]);
        });
        const keys = pulumi.all(entries).apply((pairs) => Object.fromEntries(pairs));
        this.keys = pulumi.secret(keys);
        this.digests = pulumi.unsecret(keys.apply((k) => Object.fromEntries(Object.entries(k).map(([device, key]) => [device, apiKeyDigest(key)]))));
        this.registerOutputs({ keys: this.keys, digests: this.digests });
    }

    /** Per-device certificate facts with each keyed device's digest added, as deriveGatewaySpec takes them. */
    public withDigests(certs: pulumi.Input<Record<string, { fingerprintSha1: string; serial: string }>>): pulumi.Output<Record<string, { fingerprintSha1: string; serial: string; apiKeyDigest?: string }>> {
        return pulumi.all([certs, this.digests]).apply(([byName, digests]) =>
            Object.fromEntries(Object.entries(byName).map(([name, c]) => [name, { fingerprintSha1: c.fingerprintSha1, serial: c.serial, ...(digests[name] === undefined ? {} : { apiKeyDigest: digests[name] }) }])),
        );
    }
}
