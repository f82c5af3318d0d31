/**
 * The sandbox's child processes (gateway, filter): started in their own process group so a
 * stop reaches every worker, output kept in a log file, and an unexpected exit reported once
 * with the child's last words.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { createInterface } from "node:readline";

export class SandboxError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "SandboxError";
    }
}

const TAIL_LINES = 15;
const STOP_GRACE_MS = 5000;

interface Child {
    readonly name: string;
    readonly proc: ChildProcess;
    readonly exited: Promise<void>;
    readonly tail: string[];
}

export interface SpawnOptions {
    /** File that receives the child's stdout and stderr. */
    readonly logFile: string;
    readonly cwd?: string;
    /** The child's whole environment (default: this process's). */
    readonly env?: NodeJS.ProcessEnv;
    /** Resolve only once a stdout line matches; the match is returned. */
    readonly readyLine?: RegExp;
    readonly readyTimeoutMs?: number;
    /** An exit after start-up is reported on stderr, not as a sandbox failure (a test may stop this child on purpose). */
    readonly mayExit?: boolean;
}

/** A started child. */
export interface ChildHandle {
    readonly pid: number;
    /** The match of `readyLine`, when one was asked for. */
    readonly ready?: RegExpMatchArray;
    running(): boolean;
    /** Its last lines of output (stdout and stderr). */
    lastOutput(): string;
}

export class Supervisor {
    private readonly children: Child[] = [];
    private stopping = false;

    /** `onUnexpectedExit` runs for every child that exits while stopAll has not been called. */
    constructor(private readonly onUnexpectedExit: (reason: string) => void) {}

    /** Start a child; with `readyLine`, wait until it prints that line (or fail with its output). */
    async spawn(name: string, command: string, args: readonly string[], opts: SpawnOptions): Promise<ChildHandle> {
        const out = createWriteStream(opts.logFile, { flags: "a", mode: 0o600 });
        const proc = spawn(command, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
        proc.once("close", () => out.end());
        const tail: string[] = [];
        const keep = (line: string) => {
            tail.push(line);
            if (tail.length > TAIL_LINES) tail.shift();
        };
        let onReady: ((m: RegExpMatchArray) => void) | undefined;
        // Set once the child counts as started (ready line seen, or spawned when none is asked for).
        let started = false;
        createInterface({ input: proc.stdout! }).on("line", (line) => {
            out.write(line + "\n");
            keep(line);
            const m = opts.readyLine && onReady ? line.match(opts.readyLine) : null;
            if (m) onReady!(m);
        });
        createInterface({ input: proc.stderr! }).on("line", (line) => {
            out.write(line + "\n");
            keep(line);
        });
        const spawned = new Promise<void>((resolve, reject) => {
            proc.once("spawn", resolve);
            proc.once("error", (e: NodeJS.ErrnoException) => reject(new SandboxError(e.code === "ENOENT" ? `${command} is not installed` : `cannot start ${name}: ${e.message}`)));
        });
        const exited = new Promise<void>((resolve) =>
            proc.once("exit", (code, signal) => {
                if (this.stopping) {
                    // Stopping: every exit is expected.
                } else if (opts.mayExit && started) console.error(`sandbox: ${name} exited (${signal ? `signal ${signal}` : `exit code ${code}`}); the gateway now refuses what needed it`);
                else this.reportUnexpected(name, code, signal, tail);
                resolve();
            }),
        );
        await spawned;
        this.children.push({ name, proc, exited, tail });
        const handle = { pid: proc.pid!, running: () => proc.exitCode === null && proc.signalCode === null, lastOutput: () => tail.join("\n") };
        if (!opts.readyLine) {
            started = true;
            return handle;
        }
        const ready = await new Promise<RegExpMatchArray>((resolve, reject) => {
            const timer = setTimeout(() => reject(new SandboxError(`${name} did not report ready within ${opts.readyTimeoutMs ?? 15000} ms${lastWords(tail)}`)), opts.readyTimeoutMs ?? 15000);
            onReady = (m) => {
                clearTimeout(timer);
                started = true;
                resolve(m);
            };
            void exited.then(() => {
                clearTimeout(timer);
                reject(new SandboxError(`${name} exited before it was ready${lastWords(tail)}`));
            });
        });
        return { ...handle, ready };
    }

    /** Stop every child, newest first: SIGTERM to its process group, SIGKILL after a grace period. */
    async stopAll(): Promise<void> {
        this.stopping = true;
        for (const c of [...this.children].reverse()) {
            if (c.proc.exitCode !== null || c.proc.signalCode !== null) continue;
            signalGroup(c.proc, "SIGTERM");
            const killed = await Promise.race([c.exited.then(() => false), delay(STOP_GRACE_MS).then(() => true)]);
            if (killed) {
                signalGroup(c.proc, "SIGKILL");
                await c.exited;
            }
        }
        // A worker whose master died by SIGKILL (or crashed) must not linger: sweep every group.
        for (const c of this.children) signalGroup(c.proc, "SIGKILL");
    }

    private reportUnexpected(name: string, code: number | null, signal: NodeJS.Signals | null, tail: readonly string[]): void {
        this.onUnexpectedExit(`${name} exited unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`})${lastWords(tail)}`);
    }
}

function lastWords(tail: readonly string[]): string {
    return tail.length ? `; its last output:\n  ${tail.join("\n  ")}` : "";
}

function signalGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
    try {
        process.kill(-proc.pid!, signal);
    } catch {
        // The group is already gone.
    }
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
