/**
 * E2E harness: starts `scripts/sandbox.ts` (the real `npm run sandbox` CLI) as a child process,
 * waits for its `ready` line and gives tests what they need to attack the real gateway and check
 * what reached the stub Ollama.
 *
 * ```ts
 * const sb = await startSandbox({ config: { domain: "ollama.test", devices: [...], filter: { enabled: false } } });
 * try {
 *     const r = await sb.request({ path: "/api/pull", method: "POST", body: { model: "x" } });
 *     assert.equal(r.status, 403);
 *     assert.deepEqual(sb.ollamaRequests(), []); // the proof: nothing reached Ollama
 * } finally {
 *     await sb.stop();
 * }
 * ```
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import type { IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { connect as tlsConnect } from "node:tls";
import { stringify } from "yaml";
import { PROJECT } from "../../components/config";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import { createCa, issueCert, type CertPair } from "../../scripts/sandbox/pki";
import type { SandboxInfo } from "../../scripts/sandbox/run";
import type { OllamaLogEntry, OllamaRequestEntry } from "../../scripts/sandbox/stub-ollama";

export type { SandboxInfo, OllamaLogEntry, OllamaRequestEntry, CertPair };

export const REPO_ROOT = resolve(__dirname, "../..");
const SANDBOX_CLI = join(REPO_ROOT, "scripts", "sandbox.ts");

/** Temp dirs this process created; removed when it exits. */
const tempDirs: string[] = [];
/** Sandboxes still running; sent SIGTERM if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.on("exit", () => {
    for (const p of live) p.kill("SIGTERM");
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh private temp dir, removed when the test process exits. */
export function tempDir(prefix = "zto-e2e-"): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    tempDirs.push(dir);
    return dir;
}

/**
 * Write raw stack config (keys without the `zero-trust-ollama:` namespace, values as in YAML) to a
 * `Pulumi.<stack>.yaml` file and return its path.
 */
export function writeStackFile(config: Record<string, unknown>, dir = tempDir("zto-stack-")): string {
    const file = join(dir, "Pulumi.e2e.yaml");
    const namespaced = Object.fromEntries(Object.entries(config).map(([k, v]) => [k.includes(":") ? k : `${PROJECT}:${k}`, v]));
    writeFileSync(file, stringify({ config: namespaced }));
    return file;
}

export interface StartOptions {
    /** A stack file to run. */
    readonly stack?: string;
    /** Or raw config (see writeStackFile), written to a temp stack file. */
    readonly config?: Record<string, unknown>;
    /** State dir; a fresh temp dir when omitted. Pass the same dir again to test reuse. */
    readonly stateDir?: string;
    /** More CLI flags, e.g. `["--token-interval-ms", "50", "--user", "carol@example.com:admins"]`. */
    readonly extraArgs?: readonly string[];
    /** How long to wait for `ready` (PKI generation included); default 30 s. */
    readonly readyTimeoutMs?: number;
}

/** Which client certificate to present: a device name from sandbox.json, explicit files, or none. */
export type ClientCert = string | CertPair | null;

export interface RequestOptions {
    readonly path: string;
    /** Default GET. */
    readonly method?: string;
    readonly headers?: Readonly<Record<string, string | readonly string[]>>;
    /** A string/Buffer is sent as is; anything else as JSON (Content-Type set unless given). */
    readonly body?: string | Buffer | object;
    /** Default: the first device in sandbox.json. `null` presents no certificate. */
    readonly device?: ClientCert;
    /** IdP user (email in sandbox.json `users`) to authenticate as, with the cookie or bearer the sandbox recorded. */
    readonly user?: string;
    /** How `user` authenticates: its session cookie (default) or its bearer token. */
    readonly auth?: "cookie" | "bearer";
    /** CA to verify the server with; default the sandbox CA. */
    readonly ca?: string;
    /** TLS SNI name; default none (the certificate is checked against 127.0.0.1). */
    readonly servername?: string;
    /** Give up (reject) after this long; default 15 s. */
    readonly timeoutMs?: number;
    /** Close the connection after this many body pieces (a client abort); the result has what arrived. */
    readonly abortAfterChunks?: number;
}

export interface HttpResult {
    readonly status: number;
    readonly headers: IncomingHttpHeaders;
    /** Header names and values exactly as received, duplicates kept (`headers` keeps one Retry-After). */
    readonly rawHeaders: readonly string[];
    readonly body: string;
    /** Body pieces as they arrived, with ms since the request was sent: streaming proof. */
    readonly chunks: readonly { readonly atMs: number; readonly text: string }[];
    /** True when abortAfterChunks closed the connection before the body ended. */
    readonly aborted: boolean;
    json<T = unknown>(): T;
}

export interface RawRequestOptions {
    /** Bytes to send after the TLS handshake; several pieces are sent `pauseMs` apart. */
    readonly data: string | Buffer | readonly (string | Buffer)[];
    readonly pauseMs?: number;
    readonly device?: ClientCert;
    readonly ca?: string;
    readonly servername?: string;
    /** Stop reading (and close) after this long if the server keeps the connection open; default 3 s. */
    readonly timeoutMs?: number;
}

export interface RawResult {
    /** Everything the server sent, as latin1 text. */
    readonly text: string;
    /** Status code of every HTTP response in `text`, in order (two means a second request was parsed). */
    readonly statuses: readonly number[];
    /** True when the server closed the connection (false: we gave up after timeoutMs). */
    readonly closedByServer: boolean;
    /** TLS or socket error, if the connection failed. */
    readonly error?: string;
}

export interface Sandbox {
    /** Parsed sandbox.json. */
    readonly info: SandboxInfo;
    readonly stateDir: string;
    /** The stack file the sandbox runs; an edit of it is reloaded (the sandbox prints `reloaded <generation>`). */
    readonly stackFile: string;
    /** Process id of the sandbox CLI. */
    readonly pid: number;
    /** The first stdout line after `fromLine` lines that matches `pattern`; rejects after timeoutMs (default 10 s). */
    waitForLine(pattern: RegExp, fromLine: number, timeoutMs?: number): Promise<RegExpMatchArray>;
    /** Lines the sandbox printed on stdout so far (`ready` first). */
    stdoutLines(): readonly string[];
    /** Requests the stub Ollama received since start (or the last resetOllamaLog). */
    ollamaRequests(): OllamaRequestEntry[];
    /** Everything in the stub Ollama log, client aborts included. */
    ollamaEvents(): OllamaLogEntry[];
    resetOllamaLog(): void;
    /** HTTPS request to the gateway with a client certificate. */
    request(opts: RequestOptions): Promise<HttpResult>;
    /** Raw bytes over TLS to the gateway (smuggling, slow headers, absolute-URI lines). */
    rawRequest(opts: RawRequestOptions): Promise<RawResult>;
    /** Everything the sandbox wrote to stderr so far. */
    stderr(): string;
    /** Resolves when the sandbox process exits (on its own or after stop()). */
    readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
    /** SIGTERM, then wait for the sandbox to stop its children and exit. */
    stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function certFiles(info: SandboxInfo, which: ClientCert | undefined): { cert?: Buffer; key?: Buffer } {
    if (which === null) return {};
    const pair = typeof which === "object" ? which : info.devices[which ?? Object.keys(info.devices)[0]];
    if (!pair) throw new Error(`no device ${String(which)} in sandbox.json (devices: ${Object.keys(info.devices).join(", ") || "none"})`);
    return { cert: readFileSync(pair.cert), key: readFileSync(pair.key) };
}

function gatewayAddress(info: SandboxInfo): { host: string; port: number } {
    const u = new URL(info.url);
    return { host: u.hostname, port: Number(u.port) };
}

/** HTTPS request to the sandbox gateway; see RequestOptions. */
export async function gatewayRequest(info: SandboxInfo, opts: RequestOptions): Promise<HttpResult> {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k] = typeof v === "string" ? v : [...v];
    let body: string | Buffer | undefined;
    if (typeof opts.body === "string" || Buffer.isBuffer(opts.body)) body = opts.body;
    else if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) headers["Content-Type"] = "application/json";
    }
    if (opts.user) {
        const u = info.users[opts.user];
        if (!u) throw new Error(`no user ${opts.user} in sandbox.json (users: ${Object.keys(info.users).join(", ") || "none"})`);
        const token = opts.auth === "bearer" ? u.bearer : u.cookie;
        if (opts.auth === "bearer") headers.Authorization = `Bearer ${token}`;
        else headers.Cookie = token;
    }
    const { host, port } = gatewayAddress(info);
    const started = performance.now();
    return new Promise((done, fail) => {
        const req = httpsRequest(
            {
                host,
                port,
                path: opts.path,
                method: opts.method ?? "GET",
                headers,
                ca: readFileSync(opts.ca ?? info.ca),
                ...certFiles(info, opts.device),
                servername: opts.servername,
                agent: false,
                timeout: opts.timeoutMs ?? 15_000,
            },
            (res) => {
                const chunks: { atMs: number; text: string }[] = [];
                const finish = (aborted: boolean) => {
                    const text = chunks.map((c) => c.text).join("");
                    done({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: text, chunks, aborted, json: <T>() => JSON.parse(text) as T });
                };
                res.setEncoding("utf8");
                res.on("data", (text: string) => {
                    chunks.push({ atMs: performance.now() - started, text });
                    if (chunks.length === opts.abortAfterChunks) {
                        req.destroy();
                        finish(true);
                    }
                });
                res.on("end", () => finish(false));
                res.on("error", (e) => (chunks.length === opts.abortAfterChunks ? undefined : fail(e)));
            },
        );
        req.on("timeout", () => req.destroy(new Error(`no complete answer within ${opts.timeoutMs ?? 15_000} ms`)));
        req.on("error", fail);
        req.end(body);
    });
}

/** Raw bytes over TLS to the sandbox gateway; see RawRequestOptions. */
export async function gatewayRawRequest(info: SandboxInfo, opts: RawRequestOptions): Promise<RawResult> {
    const pieces = typeof opts.data === "string" || Buffer.isBuffer(opts.data) ? [opts.data] : [...opts.data];
    const { host, port } = gatewayAddress(info);
    return new Promise((done) => {
        const received: Buffer[] = [];
        let error: string | undefined;
        let closedByServer = false;
        const socket = tlsConnect({ host, port, ca: readFileSync(opts.ca ?? info.ca), ...certFiles(info, opts.device), servername: opts.servername }, async () => {
            for (const [i, piece] of pieces.entries()) {
                if (i > 0 && opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
                if (socket.destroyed) break;
                socket.write(piece);
            }
        });
        const timer = setTimeout(() => socket.destroy(), opts.timeoutMs ?? 3000);
        socket.on("data", (b: Buffer) => received.push(b));
        socket.on("end", () => {
            closedByServer = true;
            socket.end();
        });
        socket.on("error", (e) => (error = e.message));
        socket.on("close", () => {
            clearTimeout(timer);
            const text = Buffer.concat(received).toString("latin1");
            const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
            done({ text, statuses, closedByServer, error });
        });
    });
}

/** Run the sandbox CLI to completion (for argument/config errors); never waits past timeoutMs. */
export function runSandboxCli(args: readonly string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((done, fail) => {
        const p = spawn(process.execPath, ["--import", "tsx", SANDBOX_CLI, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (b) => (stdout += b));
        p.stderr.on("data", (b) => (stderr += b));
        const timer = setTimeout(() => {
            p.kill("SIGTERM");
            fail(new Error(`sandbox CLI still running after ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        p.on("exit", (code) => {
            clearTimeout(timer);
            done({ code, stdout, stderr });
        });
    });
}

/** Start `npm run sandbox` for a stack and wait until it is ready. Always `stop()` it. */
export async function startSandbox(opts: StartOptions): Promise<Sandbox> {
    if (!opts.stack === !opts.config) throw new Error("startSandbox needs exactly one of stack or config");
    const stack = opts.stack ?? writeStackFile(opts.config!);
    const stateDir = opts.stateDir ?? tempDir("zto-sandbox-");
    // --watch-pid: if this test process dies without stopping the sandbox, the sandbox stops itself.
    // Tests get the stub identity plane (ready tokens, request log) unless they ask for the real one.
    const idp = opts.extraArgs?.includes("--idp") ? [] : ["--idp", "stub"];
    const proc = spawn(process.execPath, ["--import", "tsx", SANDBOX_CLI, "--stack", stack, "--state", stateDir, "--watch-pid", String(process.pid), ...idp, ...(opts.extraArgs ?? [])], {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", "pipe"],
    });
    live.add(proc);
    let stderr = "";
    proc.stderr!.on("data", (b) => (stderr += b));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
        proc.once("exit", (code, signal) => {
            live.delete(proc);
            done({ code, signal });
        }),
    );
    const lines: string[] = [];
    const lineWaiters = new Set<() => void>();
    createInterface({ input: proc.stdout! }).on("line", (line) => {
        lines.push(line);
        for (const w of lineWaiters) w();
    });
    const waitForLine = (pattern: RegExp, fromLine: number, waitMs = 20_000) =>
        new Promise<RegExpMatchArray>((done, fail) => {
            const look = () => {
                for (const line of lines.slice(fromLine)) {
                    const m = pattern.exec(line);
                    if (m) {
                        clearTimeout(timer);
                        lineWaiters.delete(look);
                        return done(m);
                    }
                }
            };
            const timer = setTimeout(() => {
                lineWaiters.delete(look);
                fail(new Error(`no stdout line matching ${pattern} within ${waitMs} ms; stdout:\n${lines.join("\n")}\nstderr:\n${stderr}`));
            }, waitMs);
            lineWaiters.add(look);
            look();
        });
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    const infoPath = await new Promise<string>((done, fail) => {
        const timer = setTimeout(() => {
            proc.kill("SIGTERM");
            fail(new Error(`sandbox not ready within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        void waitForLine(/^ready (.+)$/, 0, timeoutMs + 1000).then((m) => {
            clearTimeout(timer);
            done(m[1]);
        }, () => {});
        void exited.then(({ code, signal }) => {
            clearTimeout(timer);
            fail(new Error(`sandbox exited before ready (code ${code}, signal ${signal}); stderr:\n${stderr}`));
        });
    });
    const info = JSON.parse(readFileSync(infoPath, "utf8")) as SandboxInfo;
    const stubLog = () => {
        if (!info.ollamaLog || info.ollamaServer) throw new Error("this sandbox runs a real Ollama: it has no stub request log");
        return info.ollamaLog;
    };
    return {
        info,
        stateDir,
        stackFile: stack,
        pid: proc.pid!,
        waitForLine,
        stdoutLines: () => [...lines],
        ollamaRequests: () => readJsonLines<OllamaLogEntry>(stubLog()).filter((e): e is OllamaRequestEntry => e.kind === "request"),
        ollamaEvents: () => readJsonLines<OllamaLogEntry>(stubLog()),
        resetOllamaLog: () => truncateSync(stubLog()),
        request: (r) => gatewayRequest(info, r),
        rawRequest: (r) => gatewayRawRequest(info, r),
        stderr: () => stderr,
        exited,
        stop: async () => {
            if (proc.exitCode === null && proc.signalCode === null) {
                proc.kill("SIGTERM");
                const hard = setTimeout(() => proc.kill("SIGKILL"), 15_000);
                const result = await exited;
                clearTimeout(hard);
                return result;
            }
            return exited;
        },
    };
}

const DAY_MS = 86_400_000;

/** A client certificate from a CA the gateway has never seen (plus that CA): must be refused. */
export function makeForeignCaCert(commonName = "foreign-device"): CertPair & { readonly ca: string } {
    const dir = tempDir("zto-foreign-");
    const ca = { cert: join(dir, "foreign-ca.crt"), key: join(dir, "foreign-ca.key") };
    createCa(ca, "foreign CA", 30);
    const out = { cert: join(dir, `${commonName}.crt`), key: join(dir, `${commonName}.key`) };
    issueCert(ca, out, { commonName, usage: "client", notAfter: new Date(Date.now() + 30 * DAY_MS) });
    return { ...out, ca: ca.cert };
}

/** A client certificate signed by the sandbox CA that expired yesterday. */
export function makeExpiredDeviceCert(info: SandboxInfo, commonName = "expired-device"): CertPair {
    const dir = tempDir("zto-expired-");
    const out = { cert: join(dir, `${commonName}.crt`), key: join(dir, `${commonName}.key`) };
    issueCert({ cert: info.ca, key: info.caKey }, out, { commonName, usage: "client", notBefore: new Date(Date.now() - 30 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
    return out;
}

/** A valid client certificate signed by the sandbox CA for a device that is not in config. */
export function makeUnenrolledDeviceCert(info: SandboxInfo, commonName = "unenrolled-device"): CertPair {
    const dir = tempDir("zto-unenrolled-");
    const out = { cert: join(dir, `${commonName}.crt`), key: join(dir, `${commonName}.key`) };
    issueCert({ cert: info.ca, key: info.caKey }, out, { commonName, usage: "client", notAfter: new Date(Date.now() + 30 * DAY_MS) });
    return out;
}

/** A copy of an enrolled device's certificate and key: a revoke removes the device from sandbox.json, not this. */
export function keepDeviceCert(info: SandboxInfo, name: string): CertPair {
    const dir = tempDir("zto-kept-");
    const out = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    copyFileSync(info.devices[name].cert, out.cert);
    copyFileSync(info.devices[name].key, out.key);
    return out;
}
