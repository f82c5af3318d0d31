/**
 * oauth2-proxy's session store: a pinned Redis container on its own hop network, shared with
 * oauth2-proxy only, with no published port, nothing persisted, and a generated password that is a
 * Pulumi secret end to end (in redis.conf, uploaded into a dedicated volume, and in oauth2-proxy's
 * environment; never on a command line).
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { hardenedContainerArgs, type LoggingTarget } from "../hardening";
import { checkedVolume, type VolumeCheckSettings } from "../model-store/volume";
import {
    SESSION_STORE_ALIAS,
    SESSION_STORE_CONFIG_DIR,
    SESSION_STORE_CONFIG_FILE,
    SESSION_STORE_PASSWORD_LENGTH,
    SESSION_STORE_PORT,
    SESSION_STORE_USER,
    renderSessionStoreConf,
    sessionStoreHealthcheck,
} from "./session-store-settings";

export interface SessionStoreArgs {
    /** Docker provider of the host. */
    readonly provider: docker.Provider;
    /** Pinned Redis image reference. */
    readonly image: pulumi.Input<string>;
    /** Container name. */
    readonly containerName: pulumi.Input<string>;
    /** The hop network oauth2-proxy reaches the store on (shared with oauth2-proxy only). */
    readonly network: pulumi.Input<string>;
    /** Where container logs go. */
    readonly logging: LoggingTarget;
    /** How its config volume (redis.conf, which holds the password) is checked for encryption at rest before it is written. */
    readonly volumeCheck: VolumeCheckSettings;
}

export class SessionStore extends pulumi.ComponentResource {
    /** Container name. */
    public readonly containerName: pulumi.Output<string>;
    /** The password oauth2-proxy authenticates with (a Pulumi secret). */
    public readonly password: pulumi.Output<string>;

    constructor(name: string, args: SessionStoreArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:identity:SessionStore", name, args, opts);
        const child = { parent: this, provider: args.provider };

        const password = new random.RandomPassword(`${name}-password`, { length: SESSION_STORE_PASSWORD_LENGTH, special: false, minLower: 4, minUpper: 4, minNumeric: 4 }, { parent: this });
        const conf = pulumi.secret(password.result.apply((p) => renderSessionStoreConf({ password: p, bind: "0.0.0.0", port: SESSION_STORE_PORT })));

        // The root filesystem is read-only and Docker copies no file into one: redis.conf goes into a volume.
        // The password is written into that volume, so it is checked like every other; /data is a
        // tmpfs (nothing is saved: redis.conf turns snapshots and the append-only file off).
        const configCheck = checkedVolume(this, `${name}-config`, {
            provider: args.provider,
            volumeName: pulumi.interpolate`${args.containerName}-config`,
            role: "session-store-config",
            holds: "the session store's redis.conf and password",
            consumer: "The session store",
            settings: args.volumeCheck,
            logging: args.logging,
        });
        const image = new docker.RemoteImage(`${name}-image`, { name: args.image, keepLocally: true }, child);
        const container = new docker.Container(
            `${name}-container`,
            {
                name: args.containerName,
                image: image.imageId,
                ...hardenedContainerArgs("session-store", args.logging),
                user: SESSION_STORE_USER,
                command: ["redis-server", SESSION_STORE_CONFIG_FILE],
                networksAdvanced: [{ name: args.network, aliases: [SESSION_STORE_ALIAS] }],
                readOnly: true,
                // Redis changes into /data at start; with nothing persisted it only needs to exist.
                tmpfs: { "/data": "rw,noexec,nosuid,size=1m" },
                memory: 128,
                healthcheck: { tests: sessionStoreHealthcheck(), interval: "30s", timeout: "5s", retries: 3, startPeriod: "5s" },
                mounts: [{ type: "volume", source: configCheck.verifiedName, target: SESSION_STORE_CONFIG_DIR, readOnly: false }],
                uploads: [{ file: SESSION_STORE_CONFIG_FILE, content: conf }],
            },
            child,
        );

        this.containerName = container.name;
        this.password = pulumi.secret(password.result);
        this.registerOutputs({ containerName: this.containerName, password: this.password });
    }
}
