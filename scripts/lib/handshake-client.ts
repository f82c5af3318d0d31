/**
 * The C new-connection load generator (handshake-client.c): built with the system C compiler
 * against OpenSSL into the tools folder, one subfolder per content hash of the source and the
 * build command, so an unchanged client builds once; run with a bounded time.
 */
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { toolsDir } from "./tools";

const SOURCE = join(__dirname, "handshake-client.c");
const CC = process.env.CC ?? "cc";
const FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-pthread"];
const LIBS = ["-lssl", "-lcrypto"];

/** The built client's path; builds it when this source has not been built yet. Throws with the compiler's words, naming what to install. */
export function handshakeClient(): string {
    const source = readFileSync(SOURCE);
    const hash = createHash("sha256").update(source).update(JSON.stringify([CC, FLAGS, LIBS])).digest("hex").slice(0, 16);
    const dir = join(toolsDir(), `handshake-client-${hash}`);
    const binary = join(dir, "handshake-client");
    if (existsSync(binary)) return binary;
    mkdirSync(dir, { recursive: true });
    // Built beside and renamed: a concurrent bench never runs a half-written binary.
    const partial = `${binary}.${process.pid}.partial`;
    try {
        execFileSync(CC, [...FLAGS, "-o", partial, SOURCE, ...LIBS], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
    } catch (e) {
        const err = e as NodeJS.ErrnoException & { stderr?: string };
        const why = err.code === "ENOENT" ? `${CC} is not installed` : String(err.stderr ?? err.message).trim();
        throw new Error(`cannot build the handshake client (${SOURCE}): ${why}\n  it needs a C compiler and OpenSSL's headers: apt-get install gcc libssl-dev`);
    }
    renameSync(partial, binary);
    return binary;
}

export interface HandshakeRun {
    readonly connections: number;
    /** Connections whose request was answered 200 and read to the end. */
    readonly ok: number;
    readonly errors: number;
    /** Connections on which the offered session was resumed. */
    readonly resumed: number;
    readonly seconds: number;
    readonly perSecond: number;
    readonly clientCpuSeconds: number;
}

export interface HandshakeTarget {
    readonly host: string;
    readonly port: number;
    /** PEM files: the CA that signed the server, the device's certificate and key. */
    readonly ca: string;
    readonly cert: string;
    readonly key: string;
}

/** `connections` new connections to `target` from `threads` threads, full handshakes or resumed. */
export function runHandshakes(binary: string, target: HandshakeTarget, opts: { connections: number; threads: number; resume: boolean; timeoutMs: number }): Promise<HandshakeRun> {
    const args = ["--host", target.host, "--port", String(target.port), "--ca", target.ca, "--cert", target.cert, "--key", target.key, "--connections", String(opts.connections), "--threads", String(opts.threads), ...(opts.resume ? ["--resume"] : [])];
    return new Promise((resolve, reject) =>
        execFile(binary, args, { timeout: opts.timeoutMs, killSignal: "SIGKILL", encoding: "utf8" }, (e, stdout, stderr) => {
            if (e) return reject(new Error(`the handshake client failed (${e.killed ? `killed after ${opts.timeoutMs} ms` : e.message}): ${stderr.trim()}`));
            resolve(JSON.parse(stdout) as HandshakeRun);
        }),
    );
}
