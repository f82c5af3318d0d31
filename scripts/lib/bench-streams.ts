/**
 * Many simultaneous streaming generations (issue 22 item 3): every client opens all its connections
 * at once (what a fleet of laptops does after a gateway restart), then every connection sends one
 * streaming /api/generate at the same moment. What is measured per target:
 *   open      connections that failed while all were being opened (a full listen backlog, a
 *             descriptor limit), and how long opening took
 *   streams   answers that failed or lost a token, time to first token once connected, gaps
 *             between body reads (the pacing of tokens), the most streams open at one moment,
 *             and the RSS each of those costs the processes named in `rssOf`
 */
import { Connection, percentile, processTreeFiles, requestBytes, round, type Endpoint } from "./bench-http";

export interface StreamLoad {
    /** One endpoint per client (a device: its own certificate), each opening `perClient` connections. */
    readonly clients: readonly Endpoint[];
    readonly perClient: number;
    /** The generate request's JSON body (stream: true). */
    readonly body: string;
    /** Tokens the upstream sends per answer: an answer with fewer lost some. */
    readonly tokens: number;
    /** Process trees whose resident memory is charged to the open streams, by name. */
    readonly rssOf: Readonly<Record<string, readonly number[]>>;
}

export interface StreamLoadResult {
    readonly connections: number;
    readonly openFailures: number;
    readonly openFailureReasons: Readonly<Record<string, number>>;
    /** From the first connect until every connection was established or had failed. */
    readonly openSeconds: number;
    /** Most generations streaming at the same moment. */
    readonly peakConcurrentStreams: number;
    readonly streamFailures: number;
    readonly streamFailureReasons: Readonly<Record<string, number>>;
    readonly incompleteAnswers: number;
    readonly ttftP50Ms: number;
    readonly ttftP99Ms: number;
    readonly gapP50Ms: number;
    readonly gapP99Ms: number;
    /** The whole load, first connect to last token. */
    readonly seconds: number;
    /** Peak resident memory while the streams ran over the memory before any connection was open, per stream at the peak. */
    readonly rssKiBPerStream: Readonly<Record<string, number>>;
}

/** Resident KiB of a process and its direct children (nginx master and workers; the filter). */
export function processTreeRssKiB(rootPid: number): number {
    return processTreeFiles(rootPid, "status").reduce((kib, status) => kib + Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0), 0);
}

/** Generated tokens in an NDJSON answer: every frame that is not the final `done: true` one. */
function tokensIn(body: Buffer): number {
    let n = 0;
    for (const line of body.toString("utf8").split("\n")) if (line.trim() && !/"done"\s*:\s*true/.test(line)) n++;
    return n;
}

const rssNow = (rssOf: StreamLoad["rssOf"]) => Object.fromEntries(Object.entries(rssOf).map(([name, pids]) => [name, pids.reduce((sum, pid) => sum + processTreeRssKiB(pid), 0)]));

export async function runStreamLoad(load: StreamLoad): Promise<StreamLoadResult> {
    const rssBefore = rssNow(load.rssOf);
    const rssPeak = { ...rssBefore };
    const sampler = setInterval(() => {
        for (const [name, kib] of Object.entries(rssNow(load.rssOf))) rssPeak[name] = Math.max(rssPeak[name], kib);
    }, 250);
    const openReasons: Record<string, number> = {};
    const streamReasons: Record<string, number> = {};
    const count = (into: Record<string, number>, reason: string) => (into[reason] = (into[reason] ?? 0) + 1);
    const ttft: number[] = [];
    const gaps: number[] = [];
    let incomplete = 0;
    let inFlight = 0;
    let peakInFlight = 0;
    const started = performance.now();
    // Phase 1: every connection opened at once (failures here are the listen backlog or a
    // descriptor limit). The gateway under test must keep idle connections longer than this
    // phase takes (gateway.clientTimeoutSeconds), or it closes the first ones before they send.
    const open = await Promise.all(
        load.clients.flatMap((ep) =>
            Array.from({ length: load.perClient }, () =>
                Connection.open(ep).then(
                    (conn) => ({ ep, conn }),
                    (e: NodeJS.ErrnoException) => void count(openReasons, e.code ?? e.message),
                ),
            ),
        ),
    );
    const openSeconds = (performance.now() - started) / 1000;
    // Phase 2: every connected client starts its generation at the same moment.
    await Promise.all(
        open.map(async (c) => {
            if (!c) return;
            peakInFlight = Math.max(peakInFlight, ++inFlight);
            try {
                const r = await c.conn.request(requestBytes(c.ep, "POST", "/api/generate", load.body), true);
                if (r.status !== 200) return void count(streamReasons, `HTTP ${r.status}`);
                if (tokensIn(r.body!) < load.tokens) incomplete++;
                ttft.push(r.firstBodyMs);
                for (let i = 1; i < r.bodyReadsMs.length; i++) gaps.push(r.bodyReadsMs[i] - r.bodyReadsMs[i - 1]);
            } catch (e) {
                count(streamReasons, (e as Error).message);
            } finally {
                inFlight--;
                c.conn.close();
            }
        }),
    );
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    ttft.sort((a, b) => a - b);
    gaps.sort((a, b) => a - b);
    const total = (reasons: Record<string, number>) => Object.values(reasons).reduce((a, b) => a + b, 0);
    return {
        connections: load.clients.length * load.perClient,
        openFailures: total(openReasons),
        openFailureReasons: openReasons,
        openSeconds: round(openSeconds, 2),
        peakConcurrentStreams: peakInFlight,
        streamFailures: total(streamReasons),
        streamFailureReasons: streamReasons,
        incompleteAnswers: incomplete,
        ttftP50Ms: round(percentile(ttft, 50), 1),
        ttftP99Ms: round(percentile(ttft, 99), 1),
        gapP50Ms: round(percentile(gaps, 50), 1),
        gapP99Ms: round(percentile(gaps, 99), 1),
        seconds: round(seconds, 2),
        rssKiBPerStream: Object.fromEntries(Object.keys(rssBefore).map((name) => [name, round((rssPeak[name] - rssBefore[name]) / Math.max(1, peakInFlight), 1)])),
    };
}
