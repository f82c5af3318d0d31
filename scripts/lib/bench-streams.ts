/**
 * Many simultaneous streaming generations (issue 22 item 3): every client opens all its connections
 * at once (what a fleet of laptops does after a gateway restart), then every connection sends one
 * streaming /api/generate at the same moment. What is measured per target:
 *   open      connections that failed while all were being opened (a full listen backlog, a
 *             descriptor limit), and how long opening took
 *   streams   answers that failed or lost a token, time to first token once connected, gaps
 *             between body reads (the pacing of tokens), the most streams open at one moment,
 *             and the RSS each of those costs the processes named in `rssOf`
 *   cpu       CPU seconds (user+system, /proc/<pid>/stat) each process tree named in `cpuOf`
 *             and this load generator spent in each phase; in the stream phase also per chunk
 *             delivered, and the offered load (streams x chunks / interval) against the cores
 */
import { cpus } from "node:os";
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
    /** Process trees whose CPU time is measured per phase, by name (this process is added as `loadGenerator`). */
    readonly cpuOf?: Readonly<Record<string, readonly number[]>>;
    /** The upstream's pause between tokens: with the streams, the offered chunk rate. */
    readonly tokenIntervalMs: number;
}

/** One component's CPU in the stream phase. */
export interface ComponentCpu {
    readonly cpuSeconds: number;
    /** cpuSeconds over the phase's wall time: how many cores it kept busy. */
    readonly cores: number;
    readonly microsPerChunk: number;
}

export interface StreamCpu {
    /** Opening every connection (TLS handshakes when the target speaks TLS). */
    readonly openPhase: Readonly<Record<string, number>>;
    readonly streamPhase: {
        readonly seconds: number;
        /** NDJSON frames received (tokens and each answer's final frame). */
        readonly chunks: number;
        readonly byComponent: Readonly<Record<string, ComponentCpu>>;
        readonly total: ComponentCpu;
    };
    /**
     * What the load asks for: every stream sends a chunk each interval, so streams / interval
     * chunks per second, all at once; and what it leaves per chunk on this machine's cores.
     */
    readonly offered: {
        readonly chunksPerSecond: number;
        readonly coresAvailable: number;
        readonly cpuBudgetMicrosPerChunk: number;
        /** The measured total cost per chunk times the offered rate: the cores the load needs paced. */
        readonly coresNeededAtMeasuredCost: number;
    };
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
    readonly cpu: StreamCpu;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user+system) used so far by a process and its direct children (nginx master + workers, the filter's workers). */
export function processTreeCpuSeconds(rootPid: number): number {
    // Fields after the parenthesised command: state ppid ... utime(14) stime(15), 1-based.
    const ticks = processTreeFiles(rootPid, "stat").reduce((sum, stat) => {
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return sum + Number(fields[11]) + Number(fields[12]);
    }, 0);
    return ticks / CLOCK_TICKS_PER_SECOND;
}

/** CPU seconds so far of every named process tree, and of this process as `loadGenerator`. */
function cpuNow(cpuOf: StreamLoad["cpuOf"]): Record<string, number> {
    const own = process.cpuUsage();
    return { ...Object.fromEntries(Object.entries(cpuOf ?? {}).map(([name, pids]) => [name, pids.reduce((sum, pid) => sum + processTreeCpuSeconds(pid), 0)])), loadGenerator: (own.user + own.system) / 1e6 };
}

const cpuDelta = (after: Record<string, number>, before: Record<string, number>) => Object.fromEntries(Object.keys(after).map((name) => [name, round(after[name] - before[name], 2)]));

/** Resident KiB of a process and its direct children (nginx master and workers; the filter). */
export function processTreeRssKiB(rootPid: number): number {
    return processTreeFiles(rootPid, "status").reduce((kib, status) => kib + Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0), 0);
}

/** Frames of an NDJSON answer, and the generated tokens among them (every frame but the final `done: true` one). */
function framesIn(body: Buffer): { frames: number; tokens: number } {
    let frames = 0;
    let tokens = 0;
    for (const line of body.toString("utf8").split("\n")) {
        if (!line.trim()) continue;
        frames++;
        if (!/"done"\s*:\s*true/.test(line)) tokens++;
    }
    return { frames, tokens };
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
    let chunks = 0;
    let inFlight = 0;
    let peakInFlight = 0;
    const cpuAtStart = cpuNow(load.cpuOf);
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
    const cpuAfterOpen = cpuNow(load.cpuOf);
    const streamsStarted = performance.now();
    // Phase 2: every connected client starts its generation at the same moment.
    await Promise.all(
        open.map(async (c) => {
            if (!c) return;
            peakInFlight = Math.max(peakInFlight, ++inFlight);
            try {
                const r = await c.conn.request(requestBytes(c.ep, "POST", "/api/generate", load.body), true);
                if (r.status !== 200) return void count(streamReasons, `HTTP ${r.status}`);
                const got = framesIn(r.body!);
                chunks += got.frames;
                if (got.tokens < load.tokens) incomplete++;
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
    const streamSeconds = (performance.now() - streamsStarted) / 1000;
    const cpuAfterStreams = cpuNow(load.cpuOf);
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
        cpu: streamCpu(cpuDelta(cpuAfterOpen, cpuAtStart), cpuDelta(cpuAfterStreams, cpuAfterOpen), streamSeconds, chunks, open.filter(Boolean).length, load.tokenIntervalMs),
    };
}

function streamCpu(openPhase: Record<string, number>, streamPhase: Record<string, number>, seconds: number, chunks: number, streams: number, intervalMs: number): StreamCpu {
    const component = (cpuSeconds: number): ComponentCpu => ({ cpuSeconds: round(cpuSeconds, 2), cores: round(cpuSeconds / seconds, 2), microsPerChunk: round((cpuSeconds * 1e6) / Math.max(1, chunks), 1) });
    const total = component(Object.values(streamPhase).reduce((a, b) => a + b, 0));
    const chunksPerSecond = round(streams / (intervalMs / 1000), 0);
    const coresAvailable = cpus().length;
    return {
        openPhase,
        streamPhase: { seconds: round(seconds, 2), chunks, byComponent: Object.fromEntries(Object.entries(streamPhase).map(([name, cpu]) => [name, component(cpu)])), total },
        offered: { chunksPerSecond, coresAvailable, cpuBudgetMicrosPerChunk: round((coresAvailable * 1e6) / chunksPerSecond, 1), coresNeededAtMeasuredCost: round((total.microsPerChunk * chunksPerSecond) / 1e6, 2) },
    };
}
