/** The filter CLI (filter/src/main.ts) as a real process, for tests that need its process model. */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";

const MAIN = join(__dirname, "../../filter/src/main.ts");

export interface FilterProcess {
    readonly child: ChildProcess;
    readonly port: number;
    /** Everything it wrote to stderr so far. */
    readonly stderr: () => string;
}

/** Start the filter; resolves its port once it prints `listening`, or rejects with its exit code and stderr. */
export function startFilterCli(args: readonly string[], children: Set<ChildProcess>): Promise<FilterProcess> {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    child.on("exit", () => children.delete(child));
    let out = "";
    let err = "";
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    return new Promise((resolve, reject) => {
        child.stdout!.on("data", (c: Buffer) => {
            out += c.toString();
            const m = /^listening 127\.0\.0\.1:(\d+)$/m.exec(out);
            if (m) resolve({ child, port: Number(m[1]), stderr: () => err });
        });
        child.on("exit", (code) => reject(Object.assign(new Error(`filter exited ${code}: ${err}`), { code, stderr: err })));
    });
}

/** Signal the process and wait for it to exit. */
export const stopChild = (child: ChildProcess, signal: NodeJS.Signals) =>
    new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill(signal);
    });
