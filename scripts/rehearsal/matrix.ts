/**
 * Reachability, measured: from the host and from inside each container's network namespace
 * (`nsenter -n` with the host's tools), who can open a TCP connection to whom. Targets are only
 * the rehearsal's own containers, at their own addresses and service ports. Before any probe the
 * route is checked (`ip route get`): a target with no route, or one whose route leaves through a
 * gateway the host does not own as a Docker bridge, is reported as "no route" and never probed,
 * so no packet can leave the machine.
 */
import { execFileSync, spawnSync } from "node:child_process";
import type Docker from "dockerode";
import { FILTER_PORT } from "../../components/filter";
import { GATEWAY_CONTAINER_PORT, NODE_ROUTER_PORT } from "../../components/gateway";
import { OAUTH2_PROXY_PORT } from "../../components/identity/oauth2-proxy-settings";
import { OLLAMA_PORT } from "../../components/ollama";
import type { Deployed } from "./engine";

/** The port each role serves on inside its networks. */
const SERVICE_PORTS: Record<string, number[]> = { ollama: [OLLAMA_PORT], filter: [FILTER_PORT], "oauth2-proxy": [OAUTH2_PROXY_PORT], gateway: [GATEWAY_CONTAINER_PORT, NODE_ROUTER_PORT], enclave: [GATEWAY_CONTAINER_PORT] };

export type Reach = "open" | "closed" | "no route";

export interface Endpoint {
    readonly name: string;
    readonly role: string;
    readonly pid: number;
    /** Network name -> this container's address on it. */
    readonly addresses: Record<string, string>;
    readonly published: string[];
    /**
     * The container's own default route: "none", "via <gw> (host)" when the host holds the gateway
     * address, or "via <gw> (dead: nobody holds it)" on a network whose bridge has no host address.
     */
    readonly defaultRoute: string;
}

export interface Matrix {
    readonly endpoints: Endpoint[];
    /** source ("host" or a container name) -> target container name -> result over all its addresses/ports. */
    readonly reach: Record<string, Record<string, Reach>>;
    /** For each target address the host's route: "none" or the device it would use. */
    readonly hostRoutes: Record<string, string>;
}

const inNetns = (pid: number | undefined, cmd: string[]) => (pid === undefined ? cmd : ["nsenter", "-t", String(pid), "-n", "--", ...cmd]);

function routeGet(pid: number | undefined, address: string): { dev?: string; via?: string } {
    const [cmd, ...args] = inNetns(pid, ["ip", "-o", "route", "get", address]);
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    if (r.status !== 0) return {};
    const dev = / dev (\S+)/.exec(r.stdout)?.[1];
    const via = / via (\S+)/.exec(r.stdout)?.[1];
    return { dev, via };
}

/** Host devices that are Docker bridges (the only places a routed probe may go). */
function hostBridges(): Set<string> {
    const out = execFileSync("ip", ["-o", "link", "show", "type", "bridge"], { encoding: "utf8" });
    return new Set([...out.matchAll(/^\d+: ([^:@]+)/gm)].map((m) => m[1]).filter((d) => d === "docker0" || d.startsWith("br-")));
}

/** True when the host would deliver to `address` on one of its Docker bridges (not via a gateway). */
function hostDeliversLocally(address: string, bridges: Set<string>): boolean {
    const r = routeGet(undefined, address);
    return r.dev !== undefined && r.via === undefined && bridges.has(r.dev);
}

/**
 * True when a packet from the source to `address` stays on this machine: on-link inside the
 * container, or handed to the host (the container's gateway) which delivers it on a Docker bridge.
 */
function staysLocal(pid: number | undefined, address: string, bridges: Set<string>): boolean {
    if (pid === undefined) return hostDeliversLocally(address, bridges);
    const r = routeGet(pid, address);
    if (r.dev === undefined) return false;
    return r.via === undefined || hostDeliversLocally(address, bridges);
}

/** A TCP connect with a short timeout, from the given network namespace (undefined: the host). */
function connects(pid: number | undefined, address: string, port: number): boolean {
    const [cmd, ...args] = inNetns(pid, ["timeout", "3", "bash", "-c", `exec 3<>/dev/tcp/${address}/${port}`]);
    return spawnSync(cmd, args, { stdio: "ignore" }).status === 0;
}

export async function endpointsOf(d: Deployed): Promise<Endpoint[]> {
    const out: Endpoint[] = [];
    const hostAddresses = new Set([...execFileSync("ip", ["-o", "-4", "addr", "show"], { encoding: "utf8" }).matchAll(/ inet (\S+)\//g)].map((m) => m[1]));
    // One-shots (the gateway's config writer) have exited: no network namespace is left to measure.
    for (const c of d.containers.filter((x) => !x.plan.runToExit)) {
        const info = await d.docker.getContainer(c.id).inspect();
        const addresses = Object.fromEntries(Object.entries(info.NetworkSettings.Networks).map(([net, n]) => [net, (n as Docker.NetworkInfo).IPAddress]));
        const published = Object.entries(info.NetworkSettings.Ports ?? {}).flatMap(([port, binds]) => (binds ?? []).map((b) => `${b.HostIp}:${b.HostPort}->${port}`));
        const routes = execFileSync("nsenter", ["-t", String(info.State.Pid), "-n", "--", "ip", "-o", "route", "show", "default"], { encoding: "utf8" });
        const via = / via (\S+)/.exec(routes)?.[1];
        const defaultRoute = via === undefined ? "none" : hostAddresses.has(via) ? `via ${via} (host)` : `via ${via} (dead: nobody holds it)`;
        out.push({ name: c.name, role: c.plan.role ?? "?", pid: info.State.Pid, addresses, published, defaultRoute });
    }
    return out;
}

/** Measures the matrix. Each cell is "open" when any address:port of the target accepted a connection. */
export async function measure(d: Deployed): Promise<Matrix> {
    const endpoints = await endpointsOf(d);
    const bridges = hostBridges();
    const hostRoutes: Record<string, string> = {};
    const reach: Record<string, Record<string, Reach>> = {};
    const sources: { name: string; pid?: number; self?: Endpoint }[] = [{ name: "host" }, ...endpoints.map((e) => ({ name: e.name, pid: e.pid, self: e }))];
    for (const src of sources) {
        reach[src.name] = {};
        for (const t of endpoints) {
            if (t === src.self) continue;
            let result: Reach = "no route";
            for (const address of Object.values(t.addresses).filter(Boolean)) {
                if (src.pid === undefined) hostRoutes[address] = hostDeliversLocally(address, bridges) ? routeGet(undefined, address).dev! : "none";
                if (!staysLocal(src.pid, address, bridges)) continue;
                if (result === "no route") result = "closed";
                if ((SERVICE_PORTS[t.role] ?? []).some((port) => connects(src.pid, address, port))) {
                    result = "open";
                    break;
                }
            }
            reach[src.name][t.name] = result;
        }
    }
    return { endpoints, reach, hostRoutes };
}

/** The matrix as a table, plus each container's published ports and default route. */
export function formatMatrix(title: string, m: Matrix): string {
    const short = (n: string) => n.replace(/^zto-[^-]+(-[^-]+)?-(?=ollama$|filter$|gateway$|oauth2-proxy$)/, "");
    const cols = m.endpoints.map((e) => short(e.name));
    const width = Math.max(12, ...cols.map((c) => c.length)) + 2;
    const pad = (s: string) => s.padEnd(width);
    const lines = [`${title}: who can open a TCP connection to whom (rows: from, columns: to)`, pad("from \\ to") + cols.map(pad).join("")];
    for (const src of Object.keys(m.reach)) lines.push(pad(short(src)) + m.endpoints.map((t) => pad(t.name === src ? "-" : m.reach[src][t.name])).join(""));
    lines.push("", pad("container") + pad("role") + "default route".padEnd(42) + "published ports / networks");
    for (const e of m.endpoints) lines.push(pad(short(e.name)) + pad(e.role) + e.defaultRoute.padEnd(42) + `${e.published.join(", ") || "none"} / ${Object.keys(e.addresses).join(", ")}`);
    return lines.join("\n");
}
