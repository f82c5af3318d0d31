/**
 * Every other persistent volume the stack keeps (issue 20): the Docker named volumes that hold the
 * gateway's config generations, TLS key and session ticket keys, an enclave's config and key, the
 * filter's rules and budget ledger, oauth2-proxy's allowlist and the session store's redis.conf (its password).
 * Docker keeps them under its data root, so each is checked exactly like the model store (probe.py
 * in a short-lived container that mounts the volume read-only) before anything writes into it: its consumers mount `verifiedName`, which resolves only on a passing
 * verdict. The filter's token budget ledger has its own volume, checked the same way; its audit
 * events go to the SIEM and the container log, never to a file; the session store's sessions live
 * in memory only.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { LoggingTarget } from "../hardening";
import { PROBE_SOURCE, PROBE_STORE_DIR, shortLivedContainer, verdictOrRefusal } from "./index";

/** How the stack's volumes are checked, defaults resolved (components/config volumeCheckSettings). */
export interface VolumeCheckSettings {
    /** docker.allowUnencryptedVolumes: no check, a warning at every run (development stacks only). */
    readonly allowUnencrypted: boolean;
    /** Image the probe runs in (ollama.modelStore.probeImage). */
    readonly probeImage: string;
}

/** The advice for a volume on a plain disk: Docker's data root is where it lives. */
export const VOLUME_FIX =
    "Docker keeps named volumes under its data root (`docker info --format '{{.DockerRootDir}}'` on that host): " +
    "put the data root on a LUKS (dm-crypt) volume (\"data-root\" in /etc/docker/daemon.json, then restart dockerd; docs/model-store.md), " +
    "or (development stacks only) set docker.allowUnencryptedVolumes: true";

export interface VolumeCheckArgs {
    /** Docker provider of the host that keeps the volume. */
    readonly provider: docker.Provider;
    /** The volume to check. */
    readonly volume: docker.Volume;
    /** What it holds, for the refusal ("the gateway's config and TLS key"). */
    readonly holds: string;
    /** What is not created when it is refused ("the gateway"). */
    readonly consumer: string;
    /** Name of the short-lived check container. */
    readonly containerName: pulumi.Input<string>;
    /** How volumes are checked in this stack. */
    readonly settings: VolumeCheckSettings;
    /** Where the check's container logs go. */
    readonly logging: LoggingTarget;
}

export class VolumeCheck extends pulumi.ComponentResource {
    /** The volume's name, resolved only once it passed the check (or the check is waived). */
    public readonly verifiedName: pulumi.Output<string>;

    constructor(name: string, args: VolumeCheckArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:model-store:VolumeCheck", name, {}, opts);
        if (args.settings.allowUnencrypted) {
            pulumi.log.warn(
                `docker.allowUnencryptedVolumes is true: the volume for ${args.holds} is NOT checked for encryption at rest and may be on a plain disk. Development stacks only.`,
                this,
            );
            this.verifiedName = args.volume.name;
            this.registerOutputs({ verifiedName: this.verifiedName });
            return;
        }
        const child = { parent: this, provider: args.provider };
        const image = new docker.RemoteImage(`${name}-image`, { name: args.settings.probeImage, keepLocally: true }, child);
        const probe = new docker.Container(
            `${name}-probe`,
            {
                name: args.containerName,
                ...shortLivedContainer(image, args.logging),
                command: ["python3", "-c", PROBE_SOURCE, "inspect", PROBE_STORE_DIR],
                mounts: [{ type: "volume", source: args.volume.name, target: PROBE_STORE_DIR, readOnly: true }],
            },
            { ...child, deleteBeforeReplace: true },
        );
        const volumeName = args.volume.name;
        this.verifiedName = pulumi.runtime.isDryRun()
            ? volumeName
            : pulumi.all([volumeName, probe.containerLogs]).apply(([volume, logs]) => {
                  const subject = `Docker volume ${volume} (${args.holds})`;
                  verdictOrRefusal({ subject, name: subject, unencryptedFix: VOLUME_FIX, consumer: args.consumer }, logs);
                  return volume;
              });
        this.registerOutputs({ verifiedName: this.verifiedName });
    }
}

/** What `checkedVolume` needs beyond the component it belongs to. */
export interface CheckedVolumeArgs extends Omit<VolumeCheckArgs, "volume" | "containerName"> {
    /** Docker name of the volume; its check container is `<volumeName>-check`. */
    readonly volumeName: pulumi.Input<string>;
    /** Value of the `zero-trust-ollama.volume` label ("gateway-config"). */
    readonly role: string;
}

/**
 * A labelled named volume of `parent` (resource `name`) and its check (`<name>-check`): consumers
 * mount `verifiedName`, so nothing writes into the volume before it passed.
 */
export function checkedVolume(parent: pulumi.Resource, name: string, args: CheckedVolumeArgs): { volume: docker.Volume; verifiedName: pulumi.Output<string> } {
    const { volumeName, role, ...check } = args;
    const volume = new docker.Volume(name, { name: volumeName, labels: [{ label: "zero-trust-ollama.volume", value: role }] }, { parent, provider: args.provider });
    const verified = new VolumeCheck(`${name}-check`, { ...check, volume, containerName: pulumi.interpolate`${volumeName}-check` }, { parent });
    return { volume, verifiedName: verified.verifiedName };
}
