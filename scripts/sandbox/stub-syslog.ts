/**
 * Stand-in SIEM for the sandbox: when the stack sets `siem.syslogAddress`, the gateway and the
 * filter send their syslog records here (127.0.0.1, same protocol) instead of to the real
 * collector, and each record becomes one JSON line in the state dir.
 */
import { createSocket } from "node:dgram";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { JsonLinesLog } from "./json-log";

export interface StubSyslog {
    /** `udp://127.0.0.1:<port>` or `tcp://127.0.0.1:<port>`: what siem.syslogAddress becomes. */
    readonly address: string;
    close(): Promise<void>;
}

/** One syslog record as received. */
export interface SyslogEntry {
    readonly time: string;
    readonly message: string;
}

/**
 * Split a TCP syslog stream (RFC 6587): octet-counted frames (`<len> <record>`) or records ended
 * by a newline (a record itself starts with `<PRI>`, never a digit). Returns the complete records
 * and the bytes still waiting for the rest of their frame.
 */
export function splitSyslogStream(buffer: Buffer): { records: string[]; rest: Buffer } {
    const records: string[] = [];
    let rest = buffer;
    for (;;) {
        const counted = /^(\d{1,9}) /.exec(rest.subarray(0, 11).toString("latin1"));
        if (counted) {
            const end = counted[0].length + Number(counted[1]);
            if (rest.length < end) break;
            records.push(rest.subarray(counted[0].length, end).toString("utf8"));
            rest = rest.subarray(end);
            continue;
        }
        const nl = rest.indexOf(0x0a);
        if (nl < 0) break;
        const line = rest.subarray(0, nl).toString("utf8").replace(/\r$/, "");
        if (line) records.push(line);
        rest = rest.subarray(nl + 1);
    }
    return { records, rest };
}

export async function startStubSyslog(protocol: "udp" | "tcp", logFile: string): Promise<StubSyslog> {
    const log = new JsonLinesLog(logFile);
    const record = (message: string) => log.append({ time: new Date().toISOString(), message } satisfies SyslogEntry);

    if (protocol === "udp") {
        const socket = createSocket("udp4");
        socket.on("message", (msg) => record(msg.toString("utf8").replace(/\n$/, "")));
        await new Promise<void>((resolve, reject) => {
            socket.once("error", reject);
            socket.bind(0, "127.0.0.1", () => resolve());
        });
        return { address: `udp://127.0.0.1:${socket.address().port}`, close: () => new Promise<void>((resolve) => socket.close(() => resolve())) };
    }

    const connections = new Set<Socket>();
    const server = createServer((conn) => {
        connections.add(conn);
        let pending: Buffer = Buffer.alloc(0);
        conn.on("data", (d: Buffer) => {
            const { records, rest } = splitSyslogStream(Buffer.concat([pending, d]));
            records.forEach(record);
            pending = rest;
        });
        conn.on("error", () => conn.destroy());
        conn.on("close", () => connections.delete(conn));
    });
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
    });
    return {
        address: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
            new Promise<void>((resolve) => {
                server.close(() => resolve());
                connections.forEach((c) => c.destroy());
            }),
    };
}
