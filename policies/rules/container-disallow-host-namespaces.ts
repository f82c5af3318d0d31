import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, forType, str } from "../lib/policy-kit";

/** Namespace settings and what sharing the host's namespace gives the container. */
const NAMESPACES: [prop: string, what: string][] = [
    ["networkMode", "the host network (every host socket, no network isolation)"],
    ["pidMode", "the host PID namespace (can see and signal every host process)"],
    ["ipcMode", "the host IPC namespace (host shared memory)"],
    ["usernsMode", "the host user namespace (defeats user-namespace remapping)"],
    ["cgroupnsMode", "the host cgroup namespace"],
];

export const containerDisallowHostNamespaces: ResourceValidationPolicy = {
    name: "container-disallow-host-namespaces",
    description:
        "No container shares the host's network, PID, IPC, user or cgroup namespace. Shared namespaces remove the isolation the zero-trust design relies on (host network also bypasses the gateway's single published port).",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Leave networkMode/pidMode/ipcMode/usernsMode/cgroupnsMode unset (or \"private\"); attach the container to the stack's networks instead.",
    validateResource: forType(TYPES.container, (props, _args, report) => {
        for (const [prop, what] of NAMESPACES) {
            if (str(props[prop]).toLowerCase() === "host") report(`${prop} is "host": the container shares ${what}.`);
        }
    }),
};
