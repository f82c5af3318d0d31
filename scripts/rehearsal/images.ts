/**
 * Local images for the engine rehearsal, built without any registry: one Debian rootfs from
 * `debootstrap --variant=minbase` (nginx, haproxy, redis-server, python3, curl, wget, nc, and the host's Node 20 binary with
 * npm copied in under the official image's paths), imported with `docker import`, and one small
 * image per pinned reference on top of it. The rootfs tarball is cached by content in the tools
 * folder; an image whose recipe label matches is not built again.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { buildSync } from "esbuild";
import { requireTool, toolsDir } from "../lib/tools";

export const ROOTFS_SUITE = "bookworm";
/**
 * wget: the oauth2-proxy healthcheck runs the -alpine image's busybox wget; Debian's busybox 1.35
 * wget crashes (SIGSEGV) on its `-T` option, so GNU wget, which takes the same flags, stands in.
 */
export const ROOTFS_PACKAGES = ["nginx", "haproxy", "redis-server", "python3", "curl", "wget", "netcat-openbsd", "ca-certificates"] as const;
/** Bumped when the rootfs post-processing below changes. */
const ROOTFS_RECIPE = 1;
/** Users the components run as: nginx 101 (official nginx image), haproxy 99, node 1000. */
const USERS = [
    { name: "nginx", uid: 101 },
    { name: "haproxy", uid: 99 },
    { name: "node", uid: 1000 },
] as const;
const RECIPE_LABEL = "zero-trust-ollama.rehearsal.recipe";
const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** What a pinned reference stands for; anything else is refused (no silent substitute). */
export type StandIn = "nginx" | "haproxy" | "ollama" | "oauth2-proxy" | "redis" | "python";

export function standInFor(ref: string): StandIn {
    const repo = ref.replace(/@sha256:[a-f0-9]{64}$/, "").replace(/:[^/:]+$/, "");
    if (/(^|\/)ollama\/ollama$/.test(repo)) return "ollama";
    if (/(^|\/)oauth2-proxy\/oauth2-proxy$/.test(repo)) return "oauth2-proxy";
    if (/(^|\/)nginx$/.test(repo)) return "nginx";
    if (/(^|\/)haproxy$/.test(repo)) return "haproxy";
    if (/(^|\/)redis$/.test(repo)) return "redis";
    if (/(^|\/)python$/.test(repo)) return "python";
    throw new Error(`no local stand-in for image "${ref}" (known: ollama/ollama, oauth2-proxy, nginx, haproxy, redis, python)`);
}

/** A local image cannot carry a registry digest: the rehearsal runs `repo:tag` of a digest-pinned reference. */
export function localTag(ref: string): string {
    return ref.replace(/@sha256:[a-f0-9]{64}$/, "");
}

/** The Debian mirror apt is configured with (debootstrap must use what this machine may reach). */
export function aptMirror(): string {
    const files = ["/etc/apt/sources.list", ...(existsSync("/etc/apt/sources.list.d") ? readdirSync("/etc/apt/sources.list.d").map((f) => `/etc/apt/sources.list.d/${f}`) : [])].filter(existsSync);
    for (const f of files) {
        const text = readFileSync(f, "utf8");
        const deb822 = /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text);
        if (deb822 && new RegExp(`^Suites:.*\\b${ROOTFS_SUITE}\\b`, "m").test(text)) return deb822[1];
        const line = new RegExp(`^deb\\s+(?:\\[[^\\]]*\\]\\s+)?(\\S+/debian)/?\\s+${ROOTFS_SUITE}\\s`, "m").exec(text);
        if (line) return line[1];
    }
    throw new Error(`no Debian ${ROOTFS_SUITE} mirror in /etc/apt/sources.list*; debootstrap needs one`);
}

const sha = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");
const run = (cmd: string, args: string[], input?: string) => execFileSync(cmd, args, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"], input, maxBuffer: 64 << 20 }).toString();

function timed<T>(label: string, log: (line: string) => void, fn: () => T): T {
    const t0 = Date.now();
    const out = fn();
    log(`images: ${label} took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return out;
}

/** Rewrite /etc/passwd and /etc/group so the users the components assume exist with their ids. */
function setUsers(root: string): void {
    const edit = (file: string, line: (name: string, id: number) => string) => {
        const p = path.join(root, "etc", file);
        const names = new Set<string>(USERS.map((u) => u.name));
        const ids = new Set<string>(USERS.map((u) => String(u.uid)));
        const kept = readFileSync(p, "utf8").split("\n").filter((l) => l && !names.has(l.split(":")[0]) && !ids.has(l.split(":")[2]));
        writeFileSync(p, [...kept, ...USERS.map((u) => line(u.name, u.uid))].join("\n") + "\n");
    };
    const oldHaproxy = readFileSync(path.join(root, "etc/passwd"), "utf8").split("\n").find((l) => l.startsWith("haproxy:"))?.split(":");
    edit("passwd", (name, id) => `${name}:x:${id}:${id}::/nonexistent:/usr/sbin/nologin`);
    edit("group", (name, id) => `${name}:x:${id}:`);
    // Files the haproxy package created for its dynamic uid/gid follow the user to 99.
    if (oldHaproxy) run("find", [root, "-xdev", "(", "-uid", oldHaproxy[2], "-o", "-gid", oldHaproxy[3], ")", "-exec", "chown", "-h", "99:99", "{}", "+"]);
}

/** Node and npm under the official image's paths (/usr/local/bin/node, /usr/local/lib/node_modules/npm). */
function copyNode(root: string): void {
    const npmDir = path.resolve(path.dirname(process.execPath), "..", "lib", "node_modules", "npm");
    if (!existsSync(npmDir)) throw new Error(`npm not found next to ${process.execPath} (expected ${npmDir})`);
    cpSync(process.execPath, path.join(root, "usr/local/bin/node"));
    cpSync(npmDir, path.join(root, "usr/local/lib/node_modules/npm"), { recursive: true });
    symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", path.join(root, "usr/local/bin/npm"));
    symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", path.join(root, "usr/local/bin/npx"));
}

/** The rootfs tarball, built once per content key (packages, suite, mirror, Node version, recipe). */
export function rootfsTarball(log: (line: string) => void): string {
    const mirror = aptMirror();
    const key = sha(JSON.stringify({ ROOTFS_SUITE, ROOTFS_PACKAGES, mirror, node: process.version, ROOTFS_RECIPE, USERS })).slice(0, 16);
    const tarball = path.join(toolsDir(), `rehearsal-rootfs-${key}.tar`);
    if (existsSync(tarball)) {
        log(`images: rootfs ${path.basename(tarball)} cached`);
        return tarball;
    }
    const work = mkdtempSync(path.join(tmpdir(), "zto-rootfs-"));
    try {
        const root = path.join(work, "root");
        timed("debootstrap", log, () => run("debootstrap", ["--variant=minbase", `--include=${ROOTFS_PACKAGES.join(",")}`, ROOTFS_SUITE, root, mirror]));
        setUsers(root);
        copyNode(root);
        for (const d of ["var/cache/apt/archives", "var/lib/apt/lists"]) run("find", [path.join(root, d), "-type", "f", "-delete"]);
        run("mkdir", ["-p", toolsDir()]);
        timed("rootfs tar", log, () => run("tar", ["--numeric-owner", "-C", root, "-cf", `${tarball}.partial`, "."]));
        renameSync(`${tarball}.partial`, tarball);
        return tarball;
    } finally {
        rmSync(work, { recursive: true, force: true });
    }
}

function imageLabel(ref: string): string | undefined {
    try {
        return run("docker", ["image", "inspect", "-f", `{{ index .Config.Labels "${RECIPE_LABEL}" }}`, ref]).trim();
    } catch {
        return undefined;
    }
}

/** The imported base image (also the local Node base the filter image is built on). */
export function baseImage(log: (line: string) => void): string {
    const tarball = rootfsTarball(log);
    const ref = `zto-rehearsal/base:${path.basename(tarball, ".tar").replace("rehearsal-rootfs-", "")}`;
    if (imageLabel(ref) === undefined) {
        timed("docker import", log, () => run("docker", ["import", "--change", `ENV ${PATH_ENV}`, "--change", `LABEL ${RECIPE_LABEL}=base`, "--change", 'CMD ["/bin/sh"]', tarball, ref]));
    }
    return ref;
}

/** Packages the filter's build stage compiles its native SQLite binding with (node-gyp). */
export const BUILD_BASE_PACKAGES = ["g++", "make", "python3"] as const;

/**
 * The Node base the filter image's build stage runs on (its runtime stage runs on the plain base
 * image, without a compiler): the base image plus this machine's CA bundle and npm registry, so
 * the Dockerfile's `npm install` reaches the registry exactly as the host's npm does (this
 * machine's TLS path to the registry needs its CA bundle; only `registry` and `cafile` are carried
 * over, never credentials), a C++ toolchain from the rootfs's Debian mirror, and the headers of
 * the Node the base carries at the official image's path, /usr/local/include/node.
 */
export function nodeBuildBase(log: (line: string) => void): string {
    const base = baseImage(log);
    const registry = run("npm", ["config", "get", "registry"]).trim();
    const ca = readFileSync("/etc/ssl/certs/ca-certificates.crt");
    const headers = path.resolve(path.dirname(process.execPath), "..", "include", "node");
    if (!existsSync(path.join(headers, "common.gypi"))) throw new Error(`Node headers not found next to ${process.execPath} (expected ${headers}/common.gypi)`);
    const npmrc = `registry=${registry}\ncafile=/etc/ssl/certs/ca-certificates.crt\n`;
    const dockerfile = [
        `FROM ${base}`,
        "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
        "COPY npmrc /usr/local/etc/npmrc",
        // dpkg refuses to install while its permission overrides name the redis user the rootfs's
        // fixed users replaced; nothing of redis runs in a build stage, so they are dropped here.
        `RUN : > /var/lib/dpkg/statoverride && apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${BUILD_BASE_PACKAGES.join(" ")} && rm -rf /var/lib/apt/lists/*`,
        "COPY node-include /usr/local/include/node",
        "",
    ].join("\n");
    const digest = sha(dockerfile + npmrc + sha(ca) + process.version);
    const ref = `zto-rehearsal/node-build-base:${digest.slice(0, 16)}`;
    if (imageLabel(ref) !== digest) {
        const ctx = mkdtempSync(path.join(tmpdir(), "zto-image-"));
        try {
            writeFileSync(path.join(ctx, "ca-certificates.crt"), ca);
            writeFileSync(path.join(ctx, "npmrc"), npmrc);
            cpSync(headers, path.join(ctx, "node-include"), { recursive: true, dereference: true });
            writeFileSync(path.join(ctx, "Dockerfile"), `${dockerfile}LABEL ${RECIPE_LABEL}=${digest}\n`);
            timed(`build ${ref}`, log, () => run("docker", ["build", "-q", "-t", ref, ctx]));
        } finally {
            rmSync(ctx, { recursive: true, force: true });
        }
    }
    return ref;
}

/** esbuild bundle of a stand-in entry (one file, no node_modules in the image). */
function bundle(entry: string, outfile: string): void {
    buildSync({ entryPoints: [path.join(__dirname, "stand-ins", entry)], bundle: true, platform: "node", target: "node20", outfile, logLevel: "error" });
}

interface Recipe {
    readonly dockerfile: string;
    /** Files to place in the build context: name -> writer. */
    readonly files: Record<string, (dest: string) => void>;
}

function recipe(kind: StandIn, base: string): Recipe {
    switch (kind) {
        case "nginx":
            return { dockerfile: `FROM ${base}\nSTOPSIGNAL SIGQUIT\nENTRYPOINT ["nginx"]\nCMD ["-g", "daemon off;"]\n`, files: {} };
        case "haproxy":
            return { dockerfile: `FROM ${base}\nSTOPSIGNAL SIGUSR1\nUSER 99:99\nENTRYPOINT ["haproxy"]\nCMD ["-f", "/usr/local/etc/haproxy/haproxy.cfg"]\n`, files: {} };
        case "ollama":
            // The real `ollama` client (the healthcheck runs `ollama list`) in front of the stub server.
            return {
                dockerfile: `FROM ${base}\nCOPY stub.js /app/stub.js\nCOPY ollama /usr/bin/ollama\nENV OLLAMA_HOST=0.0.0.0:11434\nENTRYPOINT ["node", "/app/stub.js"]\n`,
                files: { "stub.js": (d) => bundle("ollama.ts", d), ollama: (d) => cpSync(requireTool("ollama"), d) },
            };
        case "oauth2-proxy":
            return { dockerfile: `FROM ${base}\nCOPY stub.js /app/stub.js\nUSER 65532:65532\nENTRYPOINT ["node", "/app/stub.js"]\n`, files: { "stub.js": (d) => bundle("oauth2-proxy.ts", d) } };
        case "redis":
            // Debian's real redis-server and redis-cli; the component's command names the binary and its config.
            return { dockerfile: `FROM ${base}\nUSER 999:999\nCMD ["redis-server"]\n`, files: {} };
        case "python":
            // The model-store and volume checks run `python3 -c <probe.py>`: Debian's python3 3.11 from the rootfs.
            return { dockerfile: `FROM ${base}\nCMD ["python3"]\n`, files: {} };
        default: {
            const never: never = kind;
            throw new Error(`unknown stand-in ${String(never)}`);
        }
    }
}

/** Build (or keep) the stand-in image for each pinned reference; returns reference -> local tag. */
export function ensureStandInImages(refs: readonly string[], log: (line: string) => void): Map<string, string> {
    const base = baseImage(log);
    const out = new Map<string, string>();
    for (const ref of [...new Set(refs)]) {
        const kind = standInFor(ref);
        const tag = localTag(ref);
        const r = recipe(kind, base);
        const ctx = mkdtempSync(path.join(tmpdir(), "zto-image-"));
        try {
            for (const [name, write] of Object.entries(r.files)) write(path.join(ctx, name));
            const digest = sha(r.dockerfile + Object.keys(r.files).sort().map((f) => sha(readFileSync(path.join(ctx, f)))).join(""));
            if (imageLabel(tag) !== digest) {
                writeFileSync(path.join(ctx, "Dockerfile"), `${r.dockerfile}LABEL ${RECIPE_LABEL}=${digest}\n`);
                timed(`build ${tag} (${kind} stand-in)`, log, () => run("docker", ["build", "-q", "-t", tag, ctx]));
            }
        } finally {
            rmSync(ctx, { recursive: true, force: true });
        }
        out.set(ref, tag);
    }
    return out;
}

