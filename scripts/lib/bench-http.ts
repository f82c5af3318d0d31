/**
 * The benchmarks' load-generator pieces: a minimal keep-alive HTTP/1.1 client on raw sockets (tools
 * like wrk cannot present client certificates), and percentiles.
 */
import { readdirSync, readFileSync } from "node:fs";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client over one socket: sequential requests, Content-Length or chunked bodies.
// ---------------------------------------------------------------------------------------------

export interface Response {
    readonly status: number;
    /** ms from writing the request to the first body byte and to the end. */
    readonly firstBodyMs: number;
    readonly totalMs: number;
    /** ms offsets (from the request) of each socket read that carried body bytes. */
    readonly bodyReadsMs: readonly number[];
    /** The body (de-chunked), when the request asked to keep it. */
    readonly body?: Buffer;
}

export interface Endpoint {
    readonly host: string;
    readonly port: number;
    /** TLS options when the target speaks HTTPS. */
    readonly tls?: ConnectionOptions;
    readonly hostHeader: string;
}

function open(ep: Endpoint): Promise<Socket> {
    return new Promise((resolve, reject) => {
        const s: Socket = ep.tls ? tlsConnect({ host: ep.host, port: ep.port, ...ep.tls }, () => resolve(s)) : netConnect({ host: ep.host, port: ep.port }, () => resolve(s));
        s.setNoDelay(true);
        s.once("error", reject);
    });
}

export class Connection {
    private buf: Buffer = Buffer.alloc(0);
    private waiter?: () => void;
    closed = false;

    private constructor(readonly socket: Socket) {
        socket.on("data", (d: Buffer) => {
            this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
            this.waiter?.();
        });
        const done = () => {
            this.closed = true;
            this.waiter?.();
        };
        socket.on("close", done);
        socket.on("error", done);
    }

    static async open(ep: Endpoint): Promise<Connection> {
        return new Connection(await open(ep));
    }

    private next(): Promise<void> {
        return new Promise((r) => (this.waiter = r));
    }

    /** Send one request and read its whole response. */
    async request(raw: Buffer, keepBody = false): Promise<Response> {
        const t0 = performance.now();
        this.socket.write(raw);
        let headEnd: number;
        while ((headEnd = this.buf.indexOf("\r\n\r\n")) < 0) {
            if (this.closed) throw new Error("connection closed before a response");
            await this.next();
        }
        const head = this.buf.subarray(0, headEnd).toString("latin1");
        const status = Number(head.slice(9, 12));
        const length = /\r\ncontent-length: *(\d+)/i.exec(head);
        const chunked = /\r\ntransfer-encoding: *chunked/i.test(head);
        // The server ends keep-alive after this answer (nginx: keepalive_requests); reconnect, not an error.
        if (/\r\nconnection: *close/i.test(head)) this.closed = true;
        this.buf = this.buf.subarray(headEnd + 4);
        const reads: number[] = [];
        const kept: Buffer[] = [];
        let firstBodyMs = -1;
        const mark = () => {
            if (this.buf.length) {
                const at = performance.now() - t0;
                if (firstBodyMs < 0) firstBodyMs = at;
                reads.push(at);
            }
        };
        mark();
        if (length) {
            const n = Number(length[1]);
            while (this.buf.length < n) {
                if (this.socket.destroyed) throw new Error("connection closed mid-body");
                await this.next();
                mark();
            }
            if (keepBody) kept.push(this.buf.subarray(0, n));
            this.buf = this.buf.subarray(n);
        } else if (chunked) {
            for (;;) {
                const lineEnd = this.buf.indexOf("\r\n");
                if (lineEnd >= 0) {
                    const size = parseInt(this.buf.subarray(0, lineEnd).toString("latin1"), 16);
                    if (this.buf.length >= lineEnd + 2 + size + 2) {
                        if (keepBody) kept.push(this.buf.subarray(lineEnd + 2, lineEnd + 2 + size));
                        this.buf = this.buf.subarray(lineEnd + 2 + size + 2);
                        if (size === 0) break;
                        continue;
                    }
                }
                if (this.socket.destroyed) throw new Error("connection closed mid-body");
                await this.next();
                mark();
            }
        }
        return { status, firstBodyMs, totalMs: performance.now() - t0, bodyReadsMs: reads, ...(keepBody ? { body: Buffer.concat(kept) } : {}) };
    }

    close(): void {
        this.socket.destroy();
    }
}

export function requestBytes(ep: Endpoint, method: string, path: string, body?: string, close = false): Buffer {
    const lines = [`${method} ${path} HTTP/1.1`, `Host: ${ep.hostHeader}`, "User-Agent: zto-bench"];
    if (body !== undefined) lines.push("Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`);
    if (close) lines.push("Connection: close");
    return Buffer.from(lines.join("\r\n") + "\r\n\r\n" + (body ?? ""));
}

export const percentile = (sorted: readonly number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
export const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/** `/proc/<pid>/<file>` of a process and of its direct children (an nginx master and its workers). */
export function processTreeFiles(rootPid: number, file: "stat" | "status"): string[] {
    const found: string[] = [];
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
            // Fields after the parenthesised command: state, ppid, ...
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            if (Number(entry) !== rootPid && ppid !== rootPid) continue;
            found.push(file === "stat" ? stat : readFileSync(`/proc/${entry}/${file}`, "utf8"));
        } catch {
            // exited meanwhile
        }
    }
    return found;
}
