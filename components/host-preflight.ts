/**
 * Checks on the deploying machine, run by index.ts after the config is valid and before any
 * resource is registered: things the config cannot show but Docker would fail on half-way
 * through a deployment (a bind mount of a missing host path fails only once the container is
 * created, after the images and networks exist).
 *
 * Only a local Docker host (a `unix://` socket) is the machine the program runs on; for an
 * `ssh://` host or the GPU nodes of `ollama.nodes` the path lives elsewhere and is left to Docker.
 * Whether the path is on an encrypted filesystem is a separate check.
 */
import { statSync } from "node:fs";
import { keyPath, type ConfigProblem, type StackConfig } from "./config";

/** What the check needs to know about a host path: nothing (missing) or whether it is a directory. */
export type PathStat = { readonly isDirectory: boolean } | undefined;

export function statPath(path: string): PathStat {
    try {
        return { isDirectory: statSync(path).isDirectory() };
    } catch {
        return undefined;
    }
}

/** Problems with `ollama.modelsPath` on a local Docker host: it must exist and be a directory. */
export function modelsPathProblems(c: Pick<StackConfig, "docker" | "ollama">, stat: (path: string) => PathStat): ConfigProblem[] {
    if (!c.docker.host.startsWith("unix://") || c.ollama.nodes) return [];
    const path = c.ollama.modelsPath;
    const found = stat(path);
    if (found?.isDirectory) return [];
    const what = found ? "is not a directory" : "does not exist";
    return [
        {
            path: keyPath(["ollama", "modelsPath"]),
            message: `${path} ${what} on this Docker host, and Docker cannot bind-mount it into Ollama; create it on an encrypted filesystem (LUKS, FileVault) first, e.g. \`sudo mkdir -p ${path}\` on the encrypted mount, or set ollama.modelsPath to such a directory`,
        },
    ];
}
