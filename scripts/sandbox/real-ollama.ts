/**
 * `--ollama <path-or-url>`: the sandbox's gateway in front of a real Ollama instead of the stub.
 * - a path: that binary runs `ollama serve` on a free 127.0.0.1 port with its own model store and
 *   home in the state dir (never the user's ~/.ollama), cloud features off, its log (one `[GIN]`
 *   line per request it handled) in `logs/ollama-server.log`; the tests' tiny model is created in
 *   it as `zto-tiny` (scripts/lib/tiny-gguf.ts) so it answers without any download.
 * - a URL (`http://127.0.0.1:11434`): the user's own local Ollama, used as it is; its models are
 *   whatever it has. Loopback only: the sandbox never sends prompts across a network.
 */
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { tinyGguf } from "../lib/tiny-gguf";
import { delay, SandboxError, type Supervisor } from "./processes";

/** Name of the test-owned tiny model the sandbox creates in a binary-run Ollama. */
export const TINY_MODEL = "zto-tiny:latest";

export interface RealOllama {
    readonly kind: "binary" | "url";
    readonly host: string;
    readonly port: number;
    /** `http://host:port` */
    readonly url: string;
    /** The server's own version (GET /api/version). */
    readonly version: string;
    /** binary: the server's log. */
    readonly log?: string;
    /** binary: its model store (OLLAMA_MODELS). */
    readonly modelsDir?: string;
    /** binary: process id of `ollama serve`. */
    readonly pid?: number;
}

const LOOPBACK = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** `--ollama` as a URL, or undefined when it is not one. Refuses what the sandbox must not use. */
export function parseOllamaUrl(spec: string): { host: string; port: number } | undefined {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) return undefined;
    let u: URL;
    try {
        u = new URL(spec);
    } catch {
        throw new SandboxError(`--ollama ${spec}: not a valid URL`);
    }
    if (u.protocol !== "http:") throw new SandboxError(`--ollama ${spec}: must be http://<loopback>:<port> (Ollama serves plain HTTP)`);
    if (!LOOPBACK.has(u.hostname)) throw new SandboxError(`--ollama ${spec}: only a loopback Ollama (127.0.0.1, [::1], localhost) may sit behind the sandbox`);
    if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash || u.username || u.password) throw new SandboxError(`--ollama ${spec}: give only scheme, host and port`);
    const host = u.hostname === "localhost" ? "127.0.0.1" : u.hostname.replace(/^\[|\]$/g, "");
    return { host, port: Number(u.port || 80) };
}

const urlOf = (host: string, port: number) => `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

/** The server's version once it answers, or an error after timeoutMs. */
async function waitForOllama(url: string, alive: () => boolean, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
        if (!alive()) throw new SandboxError(`Ollama exited while starting`);
        try {
            const r = await fetch(`${url}/api/version`, { signal: AbortSignal.timeout(2000) });
            const body = (await r.json()) as { version?: unknown };
            if (r.ok && typeof body.version === "string") return body.version;
            last = `HTTP ${r.status}`;
        } catch (e) {
            last = (e as Error).message;
        }
        await delay(100);
    }
    throw new SandboxError(`Ollama at ${url} did not answer GET /api/version within ${timeoutMs} ms (${last})`);
}

/** Upload the tiny model's GGUF as a blob and create `zto-tiny` from it (no Modelfile download). */
export async function createTinyModel(url: string): Promise<void> {
    const gguf = tinyGguf();
    const digest = `sha256:${createHash("sha256").update(gguf).digest("hex")}`;
    const blob = await fetch(`${url}/api/blobs/${digest}`, { method: "POST", body: gguf, signal: AbortSignal.timeout(60_000) });
    if (!blob.ok) throw new SandboxError(`uploading the tiny model to Ollama failed: HTTP ${blob.status} ${await blob.text()}`);
    const create = await fetch(`${url}/api/create`, {
        method: "POST",
        body: JSON.stringify({ model: TINY_MODEL, files: { "zto-tiny.gguf": digest }, stream: false }),
        signal: AbortSignal.timeout(120_000),
    });
    if (!create.ok) throw new SandboxError(`creating the tiny model in Ollama failed: HTTP ${create.status} ${await create.text()}`);
}

/** Refuse an unusable `--ollama` before anything starts: a bad URL, or a path that is no executable file. */
export function checkOllamaSpec(spec: string): void {
    if (parseOllamaUrl(spec)) return;
    if (!existsSync(spec) || !statSync(spec).isFile()) throw new SandboxError(`--ollama ${spec}: no such file (give the ollama binary, e.g. .tools/ollama-v0.17.4/ollama after npm run tools:build, or http://127.0.0.1:11434)`);
    try {
        accessSync(spec, constants.X_OK);
    } catch {
        throw new SandboxError(`--ollama ${spec}: not executable`);
    }
}

export interface RealOllamaOptions {
    /** `--ollama`: a binary's path or a loopback URL. */
    readonly spec: string;
    readonly stateDir: string;
    readonly freePort: () => Promise<number>;
    readonly startTimeoutMs?: number;
}

export async function startRealOllama(supervisor: Supervisor, opts: RealOllamaOptions): Promise<RealOllama> {
    const timeoutMs = opts.startTimeoutMs ?? 60_000;
    const remote = parseOllamaUrl(opts.spec);
    if (remote) {
        const url = urlOf(remote.host, remote.port);
        const version = await waitForOllama(url, () => true, 5000);
        return { kind: "url", ...remote, url, version };
    }
    const binary = opts.spec;
    checkOllamaSpec(binary);
    const root = join(opts.stateDir, "ollama");
    const modelsDir = join(root, "models");
    const home = join(root, "home");
    for (const d of [modelsDir, home]) mkdirSync(d, { recursive: true, mode: 0o700 });
    const host = "127.0.0.1";
    const port = await opts.freePort();
    const log = join(opts.stateDir, "logs", "ollama-server.log");
    // A fresh environment: nothing of the user's OLLAMA_* settings (origins, cloud keys) leaks in.
    const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: home,
        OLLAMA_HOST: `${host}:${port}`,
        OLLAMA_MODELS: modelsDir,
        OLLAMA_NO_CLOUD: "1",
        OLLAMA_NUM_PARALLEL: "1",
        OLLAMA_MAX_LOADED_MODELS: "1",
    };
    const child = await supervisor.spawn("ollama", binary, ["serve"], { logFile: log, env });
    const url = urlOf(host, port);
    const version = await waitForOllama(url, child.running, timeoutMs).catch((e: Error) => {
        throw new SandboxError(`${e.message}${child.lastOutput() ? `; its last output:\n  ${child.lastOutput().split("\n").join("\n  ")}` : ""}`);
    });
    await createTinyModel(url);
    return { kind: "binary", host, port, url, version, log, modelsDir, pid: child.pid };
}
