/**
 * Creates a rehearsal plan on the local Docker engine through its API (dockerode), in dependency
 * order (images, networks, volumes, containers with their uploads, then start), and removes
 * everything it created, in reverse, on teardown.
 */
import { mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import * as path from "node:path";
import Docker from "dockerode";
import type { ContainerPlan, RehearsalPlan, Upload } from "./mapping";
import { ensureStandInImages, nodeBuildBase } from "./images";

/** A minimal ustar archive: directories and files with owner and mode (what `uploads` set). */
export function tarOf(entries: { name: string; content?: Buffer; uid: number; gid: number; mode: number }[]): Buffer {
    const blocks: Buffer[] = [];
    for (const e of entries) {
        const h = Buffer.alloc(512);
        const dir = e.content === undefined;
        const name = e.name.replace(/^\/+/, "") + (dir ? "/" : "");
        if (Buffer.byteLength(name) > 100) throw new Error(`upload path too long for the rehearsal's tar writer: ${name}`);
        h.write(name, 0);
        const oct = (n: number, len: number) => n.toString(8).padStart(len - 1, "0") + "\0";
        h.write(oct(e.mode, 8), 100);
        h.write(oct(e.uid, 8), 108);
        h.write(oct(e.gid, 8), 116);
        h.write(oct(dir ? 0 : e.content!.length, 12), 124);
        h.write(oct(0, 12), 136);
        h.write("        ", 148);
        h.write(dir ? "5" : "0", 156);
        h.write("ustar\0" + "00", 257);
        let sum = 0;
        for (const b of h) sum += b;
        h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
        blocks.push(h);
        if (!dir) blocks.push(e.content!, Buffer.alloc((512 - (e.content!.length % 512)) % 512));
    }
    blocks.push(Buffer.alloc(1024));
    return Buffer.concat(blocks);
}

/**
 * Uploads as archives, one per mount they land in, paths relative to the mount: Docker refuses to
 * copy into a read-only root filesystem even when the file's directory is a volume, so the copy
 * targets the mount itself. Parent directories inside the mount are root-owned, 0755.
 */
export function uploadArchives(uploads: readonly Upload[], mountTargets: readonly string[], readOnlyRoot: boolean): { path: string; archive: Buffer }[] {
    const byMount = new Map<string, Upload[]>();
    for (const u of uploads) {
        const mount = [...mountTargets].sort((a, b) => b.length - a.length).find((t) => u.file.startsWith(`${t.replace(/\/$/, "")}/`));
        const at = mount ?? "/";
        if (at === "/" && readOnlyRoot) throw new Error(`upload ${u.file} is on the read-only root filesystem (no mount holds it); Docker would refuse it`);
        byMount.set(at, [...(byMount.get(at) ?? []), u]);
    }
    return [...byMount].map(([at, list]) => {
        const rel = (f: string) => path.posix.relative(at, f);
        const dirs = new Set<string>();
        for (const u of list) for (let d = path.posix.dirname(rel(u.file)); d !== "." && d !== "/"; d = path.posix.dirname(d)) dirs.add(d);
        return {
            path: at,
            archive: tarOf([
                ...[...dirs].sort().map((d) => ({ name: d, uid: 0, gid: 0, mode: 0o755 })),
                ...list.map((u) => ({ name: rel(u.file), content: Buffer.from(u.content), uid: u.uid, gid: u.gid, mode: u.mode })),
            ]),
        };
    });
}

/** The build context of filter/Dockerfile: exactly the files its `*`-then-`!path` dockerignore admits. */
function buildContext(context: string, dockerfile: string): Buffer {
    const ignoreFile = `${dockerfile}.dockerignore`;
    const rules = readFileSync(ignoreFile, "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    if (rules[0] !== "*" || rules.slice(1).some((r) => !r.startsWith("!"))) throw new Error(`${ignoreFile}: the rehearsal understands only "*" followed by "!path" lines`);
    const files: string[] = [];
    const walk = (rel: string) => (statSync(path.join(context, rel)).isDirectory() ? readdirSync(path.join(context, rel)).forEach((f) => walk(path.posix.join(rel, f))) : files.push(rel));
    for (const r of rules.slice(1)) walk(r.slice(1).replace(/\/$/, ""));
    const dfName = path.relative(context, dockerfile);
    return tarOf([...files, dfName].map((f) => ({ name: f, content: readFileSync(path.join(context, f)), uid: 0, gid: 0, mode: 0o644 })));
}

/** The open-files hard limit of this process (dockerd's is no higher when we started it). */
function hardNofile(): number {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m && m[1] !== "unlimited" ? Number(m[1]) : Infinity;
}

/** A container cannot raise nofile above the engine's hard limit: clamp it, and say so. */
function clampUlimit(u: { Name: string; Soft: number; Hard: number }, log: (line: string) => void, container: string) {
    const max = hardNofile();
    if (u.Name !== "nofile" || u.Hard <= max) return u;
    log(`rehearse: ${container}.ulimits nofile ${u.Soft}/${u.Hard} clamped to ${max}: this machine's hard limit`);
    return { ...u, Soft: Math.min(u.Soft, max), Hard: max };
}

export interface Deployed {
    readonly docker: Docker;
    /** Container name -> its plan, in start order. */
    readonly containers: { plan: ContainerPlan; name: string; id: string }[];
    readonly networks: string[];
    readonly volumes: string[];
    /** Seconds the image work (stand-ins, filter build) took. */
    readonly imageSeconds: number;
}

async function followBuild(docker: Docker, stream: NodeJS.ReadableStream): Promise<void> {
    await new Promise<void>((resolve, reject) =>
        docker.modem.followProgress(stream, (err: Error | null, out: any[]) => {
            const failed = out?.find((o) => o.error);
            if (err || failed) reject(new Error(`image build failed: ${err?.message ?? failed.error}`));
            else resolve();
        }),
    );
}

/**
 * Creates everything in the plan. `scratch` holds the stand-in directories for bind mounts (the
 * operator's encrypted store does not exist here). On any failure, what was created is removed.
 */
export async function deploy(plan: RehearsalPlan, scratch: string, extraEnv: Record<string, string[]>, log: (line: string) => void): Promise<Deployed> {
    const docker = new Docker();
    const owned = { [REHEARSAL_LABEL]: "true" };
    const t0 = Date.now();
    const tags = ensureStandInImages(plan.remoteImages.map((i) => i.ref), log);
    const imageByInput = new Map<string, string>(plan.remoteImages.map((i) => [i.imageId, tags.get(i.ref)!]));
    for (const b of plan.builds) {
        const tb = Date.now();
        const stream = await docker.buildImage(buildContext(b.context, b.dockerfile) as unknown as NodeJS.ReadableStream, { t: b.imageName, dockerfile: path.relative(b.context, b.dockerfile), buildargs: { NODE_IMAGE: nodeBuildBase(log) }, rm: true, forcerm: true });
        await followBuild(docker, stream);
        log(`images: build ${b.imageName} from ${path.relative(b.context, b.dockerfile)} took ${((Date.now() - tb) / 1000).toFixed(1)} s`);
        imageByInput.set(b.repoDigest, b.imageName);
    }
    const imageSeconds = (Date.now() - t0) / 1000;
    const deployed: Deployed = { docker, containers: [], networks: [], volumes: [], imageSeconds };
    try {
        for (const n of plan.networks) {
            await docker.createNetwork({ ...n.create, Labels: { ...n.create.Labels, ...owned } } as Docker.NetworkCreateOptions);
            deployed.networks.push(n.create.Name);
        }
        for (const v of plan.volumes) {
            await docker.createVolume({ ...v.create, Labels: { ...v.create.Labels, ...owned } });
            deployed.volumes.push(v.create.Name);
        }
        for (const c of plan.containers) {
            const image = imageByInput.get(c.imageInput);
            if (!image) throw new Error(`${c.resourceName}: image input ${c.imageInput} comes from no image resource of the stack`);
            const mounts = (c.create.HostConfig.Mounts ?? []).map((m: any) => {
                if (m.Type !== "bind") return m;
                const dir = path.join(scratch, "binds", c.resourceName, m.Source.replace(/[^A-Za-z0-9]+/g, "_"));
                mkdirSync(dir, { recursive: true });
                return { ...m, Source: dir };
            });
            const ulimits = c.create.HostConfig.Ulimits?.map((u: { Name: string; Soft: number; Hard: number }) => clampUlimit(u, log, c.create.name));
            const create = { ...c.create, Labels: { ...c.create.Labels, ...owned }, Image: image, Env: [...(c.create.Env ?? []), ...(extraEnv[c.resourceName] ?? [])], HostConfig: { ...c.create.HostConfig, Mounts: mounts, Ulimits: ulimits } };
            const container = await docker.createContainer(create);
            deployed.containers.push({ plan: c, name: c.create.name, id: container.id });
            for (const n of c.networks.slice(1)) await docker.getNetwork(n.name).connect({ Container: container.id, EndpointConfig: { Aliases: n.aliases } });
            for (const a of uploadArchives(c.uploads, mounts.map((m: { Target: string }) => m.Target), c.create.HostConfig.ReadonlyRootfs === true)) await container.putArchive(a.archive, { path: a.path });
        }
        for (const c of deployed.containers) await docker.getContainer(c.id).start();
        return deployed;
    } catch (e) {
        await teardown(deployed);
        throw e;
    }
}

/** Label on every object a rehearsal creates, so leftovers of a killed run can be found. */
export const REHEARSAL_LABEL = "zero-trust-ollama.rehearsal";

/**
 * Removes the rehearsal objects a killed earlier run left under these names (same stack name),
 * and only those: an object without the rehearsal label is never touched.
 */
export async function removeLeftovers(plan: RehearsalPlan, log: (line: string) => void): Promise<void> {
    const docker = new Docker();
    const mine = (labels?: Record<string, string> | null) => labels?.[REHEARSAL_LABEL] === "true";
    for (const c of plan.containers) {
        const info = await docker.getContainer(c.create.name).inspect().catch(() => undefined);
        if (info && mine(info.Config.Labels)) {
            log(`rehearse: removing leftover container ${c.create.name}`);
            await docker.getContainer(info.Id).remove({ force: true, v: true });
        }
    }
    for (const v of plan.volumes) {
        const info = await docker.getVolume(v.create.Name).inspect().catch(() => undefined);
        if (info && mine(info.Labels)) await docker.getVolume(v.create.Name).remove();
    }
    for (const n of plan.networks) {
        const info = await docker.getNetwork(n.create.Name).inspect().catch(() => undefined);
        if (info && mine(info.Labels)) await docker.getNetwork(n.create.Name).remove();
    }
}

/** Removes what `deploy` created, containers first (with their anonymous volumes), then volumes and networks. */
export async function teardown(d: Deployed): Promise<void> {
    for (const c of [...d.containers].reverse()) await d.docker.getContainer(c.id).remove({ force: true, v: true }).catch(() => undefined);
    for (const v of [...d.volumes].reverse()) await d.docker.getVolume(v).remove().catch(() => undefined);
    for (const n of [...d.networks].reverse()) await d.docker.getNetwork(n).remove().catch(() => undefined);
}

/** Waits until every container with a healthcheck is healthy; throws naming the ones that are not. */
export async function waitHealthy(d: Deployed, timeoutMs: number): Promise<Record<string, string>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const states: Record<string, string> = {};
        for (const c of d.containers) {
            const info = await d.docker.getContainer(c.id).inspect();
            states[c.name] = info.State.Health?.Status ?? (info.State.Running ? "running (no healthcheck)" : `exited ${info.State.ExitCode}`);
        }
        // A container that declares no healthcheck (oauth2-proxy) only has to keep running.
        const pending = Object.entries(states).filter(([, s]) => s !== "healthy" && s !== "running (no healthcheck)");
        if (pending.length === 0) return states;
        if (Date.now() > deadline || pending.some(([, s]) => s === "unhealthy" || s.startsWith("exited"))) {
            const details = await Promise.all(pending.map(async ([name]) => {
                const c = d.containers.find((x) => x.name === name)!;
                const info = await d.docker.getContainer(c.id).inspect();
                const last = info.State.Health?.Log?.at(-1)?.Output?.trim().slice(0, 300);
                const logs = (await d.docker.getContainer(c.id).logs({ stdout: true, stderr: true, tail: 5 })).toString("utf8").replace(/[\x00-\x08]/g, "").trim().slice(-400);
                return `${name}: ${states[name]}${last ? ` (last check: ${last})` : ""}${logs ? ` (logs: ${logs})` : ""}`;
            }));
            throw new Error(`not healthy: ${details.join("; ")}`);
        }
        await new Promise((r) => setTimeout(r, 1000));
    }
}
