import type { ResourceValidationPolicy } from "@pulumi/policy";
import { hostMountsOf } from "../lib/containers";
import { TYPES, configOf, forType } from "../lib/policy-kit";

export const DOCKER_SOCKET_DEFAULTS = {
    /** Extra host paths (sockets or directories) no container may mount. */
    additionalPaths: [] as string[],
};

/** Container runtime sockets: whoever holds one controls every container on the host. */
const RUNTIME_SOCKET = /(^|\/)(docker|containerd|podman|crio|cri-dockerd)\.sock$/;
/** Directories that contain the runtime sockets; mounting them hands the socket over too. */
const SOCKET_PARENTS = new Set(["/", "/var", "/var/run", "/run", "/var/run/docker", "/run/docker", "/run/containerd", "/var/run/containerd", "/run/podman", "/var/run/podman"]);

/** `/var//run/` -> `/var/run`, so spelling tricks do not slip past the checks. */
function normalisePath(p: string): string {
    const collapsed = p.replace(/\/+/g, "/");
    return collapsed.length > 1 ? collapsed.replace(/\/$/, "") : collapsed;
}

export const containerDisallowDockerSocket: ResourceValidationPolicy = {
    name: "container-disallow-docker-socket",
    description:
        "No container mounts a container runtime socket (docker.sock, containerd.sock, podman.sock, crio.sock) or a directory holding one (/, /var, /run, /var/run, ...). Access to the socket is root on the host: it can start a privileged container or publish Ollama's port.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Remove the mount. Nothing in this stack needs the Docker API from inside a container.",
    configSchema: {
        properties: {
            additionalPaths: { type: "array", items: { type: "string", pattern: "^/" }, default: [], description: "Extra absolute host paths no container may mount." },
        },
    },
    validateResource: forType(TYPES.container, (props, args, report) => {
        const extra = new Set(configOf(args, DOCKER_SOCKET_DEFAULTS).additionalPaths.map(normalisePath));
        for (const m of hostMountsOf(props)) {
            const source = normalisePath(m.source);
            if (RUNTIME_SOCKET.test(source)) report(`mounts the container runtime socket ${m.source} at ${m.target || "?"}: that is root on the host.`);
            else if (SOCKET_PARENTS.has(source)) report(`mounts host directory ${m.source}, which contains the container runtime socket.`);
            else if (extra.has(source)) report(`mounts ${m.source}, which the policy config forbids (additionalPaths).`);
        }
    }),
};
