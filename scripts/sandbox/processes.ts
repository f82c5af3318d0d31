/**
 * The sandbox's and the benches' child processes (gateway, filter, stubs): started in their own
 * process group so a stop reaches every worker, output kept in a log file, an unexpected exit
 * reported once with the child's last words, and every group killed by a watchdog once the
 * supervising process is gone by any means, SIGKILL included (see GROUP_WATCHDOG).
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

/**
 * The watchdog's shell script: it reads `+<pgid>` (watch) and `-<pgid>` (that group is gone)
 * lines on stdin, a pipe only the supervising process holds open. The kernel closes that pipe
 * however the supervisor ends, so end of input means "the supervisor is gone": every group still
 * watched gets SIGKILL. One mechanism for every kind of child: node processes with cluster
 * workers, and binaries that cannot preload anything (nginx and haproxy masters with their
 * workers, oauth2-proxy, redis), since a worker stays in its master's group. A death signal
 * (PR_SET_PDEATHSIG) would reach the master only, never the workers it forks. The watchdog runs
 * in its own session and ignores INT, TERM and HUP, so a signal to the supervisor's terminal
 * group (Ctrl-C) leaves it alive to clean up if the supervisor is then killed outright.
 */
export const GROUP_WATCHDOG = `trap '' INT TERM HUP
watched=" "
while read -r line; do
  case "$line" in
    +*) watched="$watched\${line#+} " ;;
    -*) g=\${line#-}
        case "$watched" in *" $g "*) watched="\${watched%% $g *} \${watched#* $g }" ;; esac ;;
  esac
done
for g in $watched; do kill -s KILL -- "-$g" 2>/dev/null; done
exit 0`;
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
    /** Started with the first child; ended (input closed) once stopAll has swept every group. */
    private watchdog?: ChildProcess;

    /** `onUnexpectedExit` runs for every child that exits while stopAll has not been called. */
    constructor(private readonly onUnexpectedExit: (reason: string) => void) {}

    /** Start a child; with `readyLine`, wait until it prints that line (or fail with its output). */
    async spawn(name: string, command: string, args: readonly string[], opts: SpawnOptions): Promise<ChildHandle> {
        const out = createWriteStream(opts.logFile, { flags: "a", mode: 0o600 });
        const proc = spawn(command, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
        // Watched before anything else can happen to this process; detached: its pid is its group.
        if (proc.pid !== undefined) this.watchGroup(proc.pid);
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
                // Whatever its group still holds (workers of a master that died) goes with it.
                signalGroup(proc, "SIGKILL");
                this.watchdog?.stdin?.write(`-${proc.pid}\n`);
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
        this.watchdog?.stdin?.end();
        this.watchdog = undefined;
    }

    /** The pid of the watchdog now running, if any (for tests). */
    get watchdogPid(): number | undefined {
        return this.watchdog?.pid;
    }

    private watchGroup(pgid: number): void {
        if (!this.watchdog || this.watchdog.stdin?.destroyed) {
            const dog = spawn("sh", ["-c", GROUP_WATCHDOG, "zto-group-watchdog"], { detached: true, stdio: ["pipe", "ignore", "ignore"] });
            dog.on("error", (e) => this.onUnexpectedExit(`the process watchdog (sh) could not start: ${e.message}; children would outlive a killed supervisor`));
            // Neither the watchdog nor its pipe keeps this process alive; writes to it never throw.
            dog.stdin!.on("error", () => {});
            dog.unref();
            (dog.stdin as unknown as { unref(): void }).unref();
            this.watchdog = dog;
            // A replacement (the last one was killed) takes over every group still running.
            for (const c of this.children) if (c.proc.exitCode === null && c.proc.signalCode === null) dog.stdin!.write(`+${c.proc.pid}\n`);
        }
        this.watchdog.stdin!.write(`+${pgid}\n`);
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
