import type { ResourceValidationPolicy } from "@pulumi/policy";
import { normaliseCapability } from "../lib/containers";
import { TYPES, configOf, forType, listOf, str } from "../lib/policy-kit";

export const DANGEROUS_CAPABILITY_DEFAULTS = {
    /** Capabilities no container may add (without the CAP_ prefix). */
    disallowed: [
        "ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "SYS_BOOT", "SYS_TIME", "NET_ADMIN", "NET_RAW",
        "DAC_READ_SEARCH", "DAC_OVERRIDE", "BPF", "PERFMON", "MAC_ADMIN", "MAC_OVERRIDE", "SETFCAP", "SYSLOG",
        "LINUX_IMMUTABLE", "AUDIT_CONTROL", "MKNOD",
    ],
};

export const containerDisallowDangerousCapabilities: ResourceValidationPolicy = {
    name: "container-disallow-dangerous-capabilities",
    description:
        "No container adds a capability that allows a host escape or tampering with the host (SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN, DAC_READ_SEARCH, ALL, ...). The stack's services need none of them; an added one turns a bug in nginx, oauth2-proxy or Ollama into host compromise.",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Remove the capability from capabilities.adds; keep capabilities.drops: [ALL].",
    configSchema: {
        properties: {
            disallowed: {
                type: "array",
                items: { type: "string", pattern: "^[A-Za-z_]+$" },
                default: DANGEROUS_CAPABILITY_DEFAULTS.disallowed,
                description: "Capabilities (without CAP_) that no container may add.",
            },
        },
    },
    validateResource: forType(TYPES.container, (props, args, report) => {
        const disallowed = new Set(configOf(args, DANGEROUS_CAPABILITY_DEFAULTS).disallowed.map(normaliseCapability));
        for (const cap of listOf(props.capabilities?.adds).map(str)) {
            if (disallowed.has(normaliseCapability(cap))) report(`adds capability ${cap}, which allows escaping to or tampering with the host.`);
        }
    }),
};
