/** Starting and stopping the sandbox's in-process HTTP servers (stubs). */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface StubServer {
    readonly host: string;
    readonly port: number;
    /** `http://host:port` */
    readonly url: string;
    close(): Promise<void>;
}

/**
 * Listen on host:port (port 0: a free one) and return the bound address. Keep-alive outlasts any
 * gateway's upstream keepalive timeout, so a stub never closes a pooled connection the gateway is
 * about to reuse (that race shows up as spurious 502s).
 */
export async function listenStub(server: Server, host = "127.0.0.1", port = 0): Promise<StubServer> {
    server.keepAliveTimeout = 120_000;
    server.headersTimeout = 130_000;
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => resolve());
    });
    const bound = (server.address() as AddressInfo).port;
    return {
        host,
        port: bound,
        url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}`,
        close: () =>
            new Promise<void>((resolve) => {
                server.close(() => resolve());
                server.closeAllConnections();
            }),
    };
}
