/**
 * Soak of the GPU node pool (`npm run soak:nodes -- [--duration-s 60] [--concurrency 8]`): the
 * three-node sandbox (real gateway and enclave nginx, stub Ollamas) under steady load of metadata
 * calls and generations, with one node's Ollama stopped and started again halfway. Prints JSON:
 * status counts per phase, metadata 5xx after failover settled, and the gateway nginx workers'
 * open file descriptors and resident memory at the start and the end of the run.
 */
import { readdirSync, readFileSync } from "node:fs";
import { Agent, request as httpsRequest } from "node:https";
import { nodePoolStack, POOL_MODELS } from "./lib/node-pool-stack";
import { delay } from "./sandbox/processes";
import { startSandbox, type RunningSandbox } from "./sandbox/run";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cleanUpOnSignal, exitWithUsageIfAsked } from "./lib/cli";

export interface SoakOptions {
    readonly durationS: number;
    readonly concurrency: number;
    /** Node whose Ollama is stopped at half time and started again `downS` later. */
    readonly restartNode: string;
    readonly downS: number;
    readonly failTimeoutS: number;
}

interface ProcessSample {
    readonly pid: number;
    readonly fds: number;
    readonly rssKiB: number;
}

export interface SoakReport {
    readonly durationS: number;
    readonly concurrency: number;
    readonly restart: { readonly node: string; readonly stoppedAtS: number; readonly startedAtS: number; readonly settledAtS: number };
    readonly requests: { readonly total: number; readonly perSecond: number; readonly metadata: Record<string, number>; readonly generate: Record<string, number> };
    /** Requests each node's Ollama received per phase (the restarted node: none while down). */
    readonly nodeRequests: Readonly<Record<"beforeStop" | "whileDown" | "afterRestart", Record<string, number>>>;
    /** Metadata answers with status >= 500 (or no answer) after failover settled (node back + fail timeout + 2 s). */
    readonly metadata5xxAfterSettle: number;
    /** Same, over the whole run. */
    readonly metadata5xxTotal: number;
    readonly gatewayWorkers: { readonly start: readonly ProcessSample[]; readonly end: readonly ProcessSample[]; readonly fdGrowth: number; readonly rssGrowthKiB: number };
}

/** The gateway's nginx workers: children of its master process. */
function workersOf(masterPid: number): number[] {
    return readdirSync("/proc")
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
            try {
                // Field 4 of /proc/<pid>/stat is the parent pid (after the parenthesised command).
                const stat = readFileSync(`/proc/${d}/stat`, "utf8");
                return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === masterPid;
            } catch {
                return false;
            }
        })
        .map(Number);
}

function sample(pid: number): ProcessSample {
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return { pid, fds: readdirSync(`/proc/${pid}/fd`).length, rssKiB: rss ? Number(rss[1]) : 0 };
}

export async function runSoak(sb: RunningSandbox, opts: SoakOptions): Promise<SoakReport> {
    const info = sb.info;
    const u = new URL(info.url);
    const device = Object.values(info.devices)[0];
    const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency, ca: readFileSync(info.ca), cert: readFileSync(device.cert), key: readFileSync(device.key) });
    const call = (path: string, body?: object) =>
        new Promise<number>((done) => {
            const req = httpsRequest({ host: u.hostname, port: Number(u.port), path, method: body ? "POST" : "GET", agent, headers: body ? { "Content-Type": "application/json" } : {}, timeout: 30_000 }, (res) => {
                res.resume();
                res.on("end", () => done(res.statusCode ?? 0));
                res.on("error", () => done(0));
            });
            req.on("timeout", () => req.destroy());
            req.on("error", () => done(0));
            req.end(body ? JSON.stringify(body) : undefined);
        });

    const node = sb.nodes!.find((n) => n.name === opts.restartNode);
    if (!node) throw new Error(`no node ${opts.restartNode}`);
    const t0 = Date.now();
    const at = () => (Date.now() - t0) / 1000;
    const stopAt = opts.durationS / 2;
    const restart = { node: opts.restartNode, stoppedAtS: stopAt, startedAtS: stopAt + opts.downS, settledAtS: stopAt + opts.downS + opts.failTimeoutS + 2 };
    const counts = { metadata: {} as Record<string, number>, generate: {} as Record<string, number> };
    let metadata5xxAfterSettle = 0;
    let metadata5xxTotal = 0;
    let total = 0;

    const workers = workersOf(info.gateway.masterPid);
    // Both samples are taken under the same load: the first once every pool's keepalive
    // connections exist (a fifth into the run), the last just before the load stops.
    let start: ProcessSample[] = [];
    let end: ProcessSample[] = [];
    const sampler = (async () => {
        await delay(opts.durationS * 200);
        start = workers.map(sample);
        await delay(opts.durationS * 1000 - opts.durationS * 200 - 500);
        end = workers.map(sample);
    })();

    // Requests each node's Ollama received: before the stop, while the node was down, after it was back.
    const received = () => Object.fromEntries(sb.nodes!.map((n) => [n.name, readFileSync(n.ollamaLog, "utf8").split("\n").filter((l) => l.includes('"kind":"request"')).length]));
    const marks: Record<string, number>[] = [];
    const restarter = (async () => {
        await delay(stopAt * 1000);
        marks.push(received());
        await node.stopOllama();
        await delay(opts.downS * 1000);
        await node.startOllama();
        marks.push(received());
    })();
    const metadataPaths = ["/api/tags", "/api/version", "/v1/models", "/api/ps"];
    const worker = async (w: number) => {
        for (let i = 0; at() < opts.durationS; i++) {
            const isMetadata = (i + w) % 4 !== 0;
            const status = isMetadata ? await call(metadataPaths[(i + w) % metadataPaths.length]) : await call("/api/generate", { model: POOL_MODELS.shared, prompt: "soak", stream: false });
            const bucket = isMetadata ? counts.metadata : counts.generate;
            bucket[String(status)] = (bucket[String(status)] ?? 0) + 1;
            total++;
            if (isMetadata && (status >= 500 || status === 0)) {
                metadata5xxTotal++;
                if (at() >= restart.settledAtS) metadata5xxAfterSettle++;
            }
        }
    };
    await Promise.all(Array.from({ length: opts.concurrency }, (_, w) => worker(w)));
    await Promise.all([restarter, sampler]);
    marks.push(received());
    agent.destroy();
    const phase = (from: Record<string, number> | undefined, to: Record<string, number>) => Object.fromEntries(Object.entries(to).map(([n, c]) => [n, c - (from?.[n] ?? 0)]));
    const sum = (xs: readonly ProcessSample[], k: "fds" | "rssKiB") => xs.reduce((a, x) => a + x[k], 0);
    return {
        durationS: opts.durationS,
        concurrency: opts.concurrency,
        restart,
        requests: { total, perSecond: Math.round((total / opts.durationS) * 10) / 10, ...counts },
        nodeRequests: { beforeStop: phase(undefined, marks[0]), whileDown: phase(marks[0], marks[1]), afterRestart: phase(marks[1], marks[2]) },
        metadata5xxAfterSettle,
        metadata5xxTotal,
        gatewayWorkers: { start, end, fdGrowth: sum(end, "fds") - sum(start, "fds"), rssGrowthKiB: sum(end, "rssKiB") - sum(start, "rssKiB") },
    };
}

const USAGE = `usage: npm run soak:nodes -- [--duration-s <n>] [--concurrency <n>]
  --duration-s <n>    seconds of load (default 60); one node's Ollama is stopped at half time
  --concurrency <n>   parallel clients (default 8)
  Runs the three-node sandbox on 127.0.0.1 and prints one JSON report. Ctrl-C stops every
  process it started and removes its temp dir.`;

function positive(flag: string, value: string | undefined, fallback: number): number {
    if (value === undefined) return fallback;
    const v = Number(value);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} must be a positive number (got "${value}")\n${USAGE}`);
    return v;
}

async function main(argv: string[]): Promise<void> {
    exitWithUsageIfAsked(argv, USAGE);
    let values;
    try {
        ({ values } = parseArgs({ args: argv, options: { "duration-s": { type: "string" }, concurrency: { type: "string" } }, strict: true, allowPositionals: false }));
    } catch (e) {
        throw new Error(`${(e as Error).message}\n${USAGE}`);
    }
    const durationS = positive("--duration-s", values["duration-s"], 60);
    const concurrency = positive("--concurrency", values.concurrency, 8);
    const failTimeoutS = 5;
    const stateDir = mkdtempSync(join(tmpdir(), "zto-soak-"));
    let starting: Promise<RunningSandbox> | undefined;
    // Once only, whether the run ends or a signal comes first (or both). A signal during start-up
    // waits for the start to finish (or fail), so every process it spawned is stopped.
    let cleaning: Promise<void> | undefined;
    const cleanup = () =>
        (cleaning ??= (async () => {
            const sb = await starting?.catch(() => undefined);
            await sb?.stop();
            rmSync(stateDir, { recursive: true, force: true });
        })());
    cleanUpOnSignal("soak:nodes", cleanup);
    try {
        starting = startSandbox(nodePoolStack({ failTimeoutSeconds: failTimeoutS }), { stateDir, tokenIntervalMs: 5, tokens: 8 });
        const sb = await starting;
        process.stderr.write(`soak:nodes: running for ${durationS} s (state ${stateDir})\n`);
        const report = await runSoak(sb, { durationS, concurrency, restartNode: "gpu-b", downS: 3, failTimeoutS });
        process.stdout.write(JSON.stringify(report, null, 2) + "\n");
    } finally {
        await cleanup();
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).catch((e) => {
        process.stderr.write(`soak:nodes: ${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
    });
}
