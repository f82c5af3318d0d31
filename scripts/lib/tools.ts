/**
 * Real upstream programs the tests and the sandbox run (oauth2-proxy, Ollama), built from their Go
 * modules with `go install <module>@<version>` into a tools folder, one subfolder per version, so a
 * second build of the same version builds nothing. The folder is `$ZTO_TOOLS_DIR`, else
 * `<repo>/.tools` (ignored by git).
 */
import { existsSync } from "node:fs";
import * as path from "node:path";
import { DEFAULT_IMAGES, OAUTH2_PROXY_VERSION } from "../../components/config";
import { ollamaImageVersion } from "../../components/ollama-version";

export interface GoTool {
    /** Go module path that `go install` builds. */
    readonly module: string;
    /** Module version: the release the stack pins. */
    readonly version: string;
    /** Name of the installed binary. */
    readonly binary: string;
    /** Whether the build needs cgo (Ollama's CPU backend is C/C++). */
    readonly cgo: boolean;
    /**
     * C headers the build needs that the Go module zip leaves out (Go drops every `vendor/`
     * folder from module zips, and llama.cpp keeps its third-party headers there): each is
     * looked up on the system include path first, else taken from the named package.
     */
    readonly headers?: readonly HeaderSource[];
    /**
     * The package variable release builds stamp with the version (`-X` at link time), and the value;
     * without it `go install` leaves the placeholder (Ollama answers /api/version with 0.0.0).
     */
    readonly versionVariable: { readonly name: string; readonly value: string };
}

export interface HeaderSource {
    /** Include path as the sources spell it, e.g. `stb/stb_image.h`. */
    readonly include: string;
    /** Debian package that installs it under /usr/include. */
    readonly debian?: string;
    /** PyPI source distribution that ships it (name==version), when Debian has none. */
    readonly pypiSdist?: string;
}

/**
 * The Ollama release the stack pins by default (e.g. 0.17.4): the tests run exactly the server a
 * stack deploys unless it overrides ollama.image.
 */
function pinnedOllamaRelease(): string {
    const v = ollamaImageVersion(DEFAULT_IMAGES.ollama);
    if (!v) throw new Error(`DEFAULT_IMAGES.ollama "${DEFAULT_IMAGES.ollama}" names no release number; pin a release tag`);
    return v.join(".");
}
const PINNED_OLLAMA = pinnedOllamaRelease();

export const TOOLS = {
    oauth2Proxy: { module: "github.com/oauth2-proxy/oauth2-proxy/v7", version: OAUTH2_PROXY_VERSION, binary: "oauth2-proxy", cgo: false, versionVariable: { name: "github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION", value: OAUTH2_PROXY_VERSION } },
    ollama: {
        module: "github.com/ollama/ollama",
        version: `v${PINNED_OLLAMA}`,
        binary: "ollama",
        cgo: true,
        versionVariable: { name: "github.com/ollama/ollama/version.Version", value: PINNED_OLLAMA },
        headers: [
            { include: "stb/stb_image.h", debian: "libstb-dev" },
            { include: "nlohmann/json.hpp", debian: "nlohmann-json3-dev" },
            // Debian has no miniaudio; the `miniaudio` Python binding's sdist carries the header.
            { include: "miniaudio/miniaudio.h", pypiSdist: "miniaudio==1.71" },
        ],
    },
} as const satisfies Record<string, GoTool>;

export type ToolName = keyof typeof TOOLS;

const REPO_ROOT = path.resolve(__dirname, "..", "..");

export function toolsDir(): string {
    return process.env.ZTO_TOOLS_DIR ? path.resolve(process.env.ZTO_TOOLS_DIR) : path.join(REPO_ROOT, ".tools");
}

/** Where the binary of `name` at its pinned version lives (whether or not it is built yet). */
export function toolPath(name: ToolName): string {
    const t = TOOLS[name];
    return path.join(toolsDir(), `${t.binary}-${t.version}`, t.binary);
}

/** The built binary's path, or an error that says how to build it. */
export function requireTool(name: ToolName): string {
    const p = toolPath(name);
    if (!existsSync(p)) throw new Error(`${TOOLS[name].binary} ${TOOLS[name].version} is not built (expected ${p}); run: npm run tools:build`);
    return p;
}
