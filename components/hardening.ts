/**
 * Container settings every service of the stack shares: least privilege, restart, logging and
 * the role label the policy pack keys on. Pure data, so the mocks and the policies test it.
 */
import type * as docker from "@pulumi/docker";

/** Label naming a container's role; policies identify Ollama and the gateway by it. */
export const ROLE_LABEL = "zero-trust-ollama.role";
/** Label marking the container path that holds the operator's encrypted model store. */
export const ENCRYPTED_STORE_LABEL = "zero-trust-ollama.encrypted-store";

/** Label on Ollama's container: how its model store was checked (verified | skipped | skipped-in-pinned-stack). */
export const MODEL_STORE_CHECK_LABEL = "zero-trust-ollama.model-store-check";

/** gateway-config: the one-shot writer that puts a new gateway config generation in place. */
export type Role = "ollama" | "gateway" | "gateway-config" | "filter" | "oauth2-proxy" | "session-store" | "enclave" | "model-store-check";

export interface LoggingTarget {
    /** udp://host:port or tcp://host:port; absent means local json-file logs with rotation. */
    readonly syslogAddress?: string;
}

export function dockerLogging(target: LoggingTarget, tag: string): { logDriver: string; logOpts: Record<string, string> } {
    if (target.syslogAddress) {
        return {
            logDriver: "syslog",
            logOpts: { "syslog-address": target.syslogAddress, "syslog-format": "rfc5424micro", tag, "mode": "non-blocking" },
        };
    }
    return { logDriver: "json-file", logOpts: { "max-size": "50m", "max-file": "5", tag } };
}

/** Arguments shared by every container: no new privileges, every capability dropped, labelled. */
export function hardenedContainerArgs(role: Role, logging: LoggingTarget, extraLabels: Record<string, string> = {}) {
    const labels: docker.types.input.ContainerLabel[] = Object.entries({ [ROLE_LABEL]: role, ...extraLabels }).map(([label, value]) => ({ label, value }));
    return {
        securityOpts: ["no-new-privileges:true"],
        capabilities: { drops: ["ALL"] },
        privileged: false,
        restart: "unless-stopped",
        labels,
        ...dockerLogging(logging, role),
    };
}
