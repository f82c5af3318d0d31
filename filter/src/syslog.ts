/**
 * Minimal RFC 5424 syslog client for audit events: one record per event, UDP (one datagram per
 * record, RFC 5426) or TCP with octet-counting framing (RFC 6587). Sending never blocks or fails
 * a request: over TCP records queue (bounded) while connecting and the oldest are dropped when
 * the queue is full; drops are counted so the operator can see them.
 */
import * as dgram from "node:dgram";
import * as net from "node:net";
import { hostname } from "node:os";

export type Severity = "err" | "warning" | "notice" | "info";
const SEVERITY: Record<Severity, number> = { err: 3, warning: 4, notice: 5, info: 6 };
/** local0: a facility sites commonly route to their SIEM for application audit logs. */
const FACILITY_LOCAL0 = 16;

export interface SyslogTarget {
    readonly protocol: "udp" | "tcp";
    readonly host: string;
    readonly port: number;
}

export function parseSyslogAddress(address: string): SyslogTarget {
    const m = /^(udp|tcp):\/\/([A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
    if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) throw new Error(`syslog address "${address}" is not udp://host:port or tcp://host:port`);
    return { protocol: m[1] as "udp" | "tcp", host: m[2]!, port: Number(m[3]) };
}

/** RFC 5424 header fields are printable US-ASCII without spaces; "-" means nil. */
const headerField = (s: string, max: number) => (s.replace(/[^!-~]/g, "").slice(0, max) || "-");

/** One RFC 5424 record: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG` (no structured data). */
export function formatSyslog(opts: { severity: Severity; appName: string; msgId: string; message: string; timestamp?: Date; host?: string; procId?: string }): string {
    const pri = FACILITY_LOCAL0 * 8 + SEVERITY[opts.severity];
    const ts = (opts.timestamp ?? new Date()).toISOString();
    return `<${pri}>1 ${ts} ${headerField(opts.host ?? hostname(), 255)} ${headerField(opts.appName, 48)} ${headerField(opts.procId ?? String(process.pid), 128)} ${headerField(opts.msgId, 32)} - ${opts.message}`;
}

const MAX_QUEUE = 10_000;
const RECONNECT_MS = 1000;

export class SyslogClient {
    /** Records dropped because the collector was unreachable and the queue was full. */
    dropped = 0;
    private udp?: dgram.Socket;
    private tcp?: net.Socket;
    private connected = false;
    private queue: Buffer[] = [];
    private reconnectTimer?: NodeJS.Timeout;
    private closed = false;

    constructor(private readonly target: SyslogTarget) {
        if (target.protocol === "udp") {
            this.udp = dgram.createSocket(target.host.includes(":") ? "udp6" : "udp4");
            this.udp.on("error", () => this.dropped++);
            this.udp.unref();
        } else this.connect();
    }

    send(record: string): void {
        const payload = Buffer.from(record, "utf8");
        if (this.udp) {
            this.udp.send(payload, this.target.port, this.target.host, (err) => {
                if (err) this.dropped++;
            });
            return;
        }
        const framed = Buffer.concat([Buffer.from(`${payload.length} `), payload]);
        if (this.connected && this.tcp) this.tcp.write(framed);
        else {
            if (this.queue.length >= MAX_QUEUE) {
                this.queue.shift();
                this.dropped++;
            }
            this.queue.push(framed);
        }
    }

    close(): Promise<void> {
        this.closed = true;
        clearTimeout(this.reconnectTimer);
        return new Promise((resolve) => {
            if (this.udp) this.udp.close(() => resolve());
            else if (this.tcp && this.connected) this.tcp.end(() => resolve());
            else {
                this.tcp?.destroy();
                resolve();
            }
        });
    }

    private connect(): void {
        const sock = net.connect({ host: this.target.host, port: this.target.port });
        this.tcp = sock;
        sock.unref();
        sock.on("connect", () => {
            this.connected = true;
            for (const b of this.queue) sock.write(b);
            this.queue = [];
        });
        sock.on("error", () => {});
        sock.on("close", () => {
            this.connected = false;
            if (this.closed) return;
            this.reconnectTimer = setTimeout(() => this.connect(), RECONNECT_MS);
            this.reconnectTimer.unref();
        });
    }
}
