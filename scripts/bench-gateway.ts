/**
 * `npm run bench:gateway [-- --kinds nginx,haproxy] [--seconds 3] [--concurrency 16] [--only handshakes|streams]`
 * (default: both kinds, every part; docs/benchmarks.md)
 *
 * Measures, in one run on 127.0.0.1, what the zero-trust gateway costs over Ollama reached
 * directly, and over a bare TLS-terminating `proxy_pass` nginx, and prints one JSON document:
 *   throughput  requests/s, p50/p99 latency; keep-alive and one new connection per request,
 *               for (a) the stub Ollama direct, (b) bare nginx (server TLS only, rendered here)
 *               and, with haproxy, a bare TLS-terminating haproxy too,
 *               (c) the full gateway of each kind (mTLS, allowlist, limits lifted, headers, log),
 *               (d) the same gateway with the inline filter (`gateway:<kind>+filter`, one filter
 *               worker per core); `keepAliveChat8k` is the keep-alive load with an 8 KiB
 *               non-streaming /api/chat instead (the stub answers it at once)
 *   sequential  one request at a time over keep-alive: added p50 latency of (c) over (a)
 *   streaming   time to first token and gaps between tokens, direct vs through the gateway
 *   handshakes  (full gateways) new mTLS connections/s, one request each, full handshakes against
 *               TLS 1.3 resumption (the ticket of the thread's previous connection), interleaved
 *               rounds, from a small C client (scripts/lib/handshake-client.c) so the load
 *               generator is not the limit; with the gateway's and the client's CPU per connection
 *   manyStreams (--streams) enrolled devices each holding many streaming generations at once,
 *               through gateway + filter and straight to the stub: failures while connecting,
 *               lost tokens, pacing, time to first token, resident memory per open stream, and
 *               the CPU each component spends per chunk against the offered chunk rate
 *   targets     the issue's targets, each with the measured value and met: true/false (the
 *               filter's: `gateway:<kind>+filter`, over bare nginx and over the same gateway)
 *   nodePool    (with nginx) the full nginx gateway routing over a GPU node pool (ollama.nodes):
 *               `pool:1-node` and `pool:3-nodes`, each node a real enclave nginx (mTLS with the
 *               gateway's client certificate) in front of the same stub Ollama as the others
 *
 * The full gateway is the renderer's own config (the sandbox's prepareGateway starts it), so a
 * new gateway kind gets a column by being passed in --kinds. The load generator is a small
 * keep-alive HTTP/1.1 client on raw sockets (scripts/lib/bench-http.ts).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cleanUpOnSignal, exitWithUsageIfAsked } from "./lib/cli";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Connection, percentile, requestBytes, round, type Endpoint } from "./lib/bench-http";
import { loadStackConfig, nodePoolSettings } from "../components/config";
import { GATEWAY_KINDS, isGatewayKind, type GatewayKind } from "../components/gateway/kinds";
import { deriveGatewaySpec, type GatewayPlacement, type GatewaySpec } from "../components/gateway/spec";
import { prepareGateway, REPO_ROOT, waitForListener } from "./sandbox/gateway";
import { startEnclaves } from "./sandbox/nodes";
import { renderFilterRules } from "../components/filter/rules";
import { buildSync } from "esbuild";
import { freePort } from "./sandbox/run";
import { certIdentity } from "../components/certs";
import { createCa, issueCert, type CertPair } from "./sandbox/pki";
import { startStubOllama } from "./sandbox/stub-ollama";
import { startFilter } from "./sandbox/filter";
import { Supervisor } from "./sandbox/processes";
import { processTreeCpuSeconds, runStreamLoad, type StreamLoadResult } from "./lib/bench-streams";
import { handshakeClient, runHandshakes, type HandshakeRun, type HandshakeTarget } from "./lib/handshake-client";

const STUB_FLAG = "--serve-stub-ollama";
const STREAM_TOKENS = 10;
const STREAM_INTERVAL_MS = 20;
const STREAM_RUNS = 15;
/** Measurement rounds per target and mode (the --seconds budget is split across them). */
const ROUNDS = 5;
const MODEL = "llama3.2:3b";

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------


interface LoadResult {
    /**
     * CPU time (user+system) the server's processes spent per request: unlike requests/s, not
     * skewed by other load on the machine or by the load generator being the bottleneck.
     */
    readonly serverCpuMicrosPerRequest?: number;
    readonly requestsPerSecond: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly requests: number;
    readonly errors: number;
}

/** A request the load loops send: GET /api/version unless a mode says otherwise. */
interface BenchRequest {
    readonly method: "GET" | "POST";
    readonly path: string;
    readonly body?: string;
}
const VERSION: BenchRequest = { method: "GET", path: "/api/version" };
/**
 * A non-streaming chat with an 8 KiB user message of plain prose: what the filter parses, checks
 * (limits, model, jailbreak, PII) and re-serialises on every inference request.
 */
const CHAT_8K: BenchRequest = {
    method: "POST",
    path: "/api/chat",
    body: JSON.stringify({ model: MODEL, stream: false, messages: [{ role: "user", content: "Please summarise the quarterly planning notes for the platform team. ".repeat(120).slice(0, 8192) }] }),
};

/** Requests sent to a filter-backed target before any figure is taken, per request shape. */
const FILTER_WARM_UP: readonly (readonly [BenchRequest, number])[] = [
    [VERSION, 8_000],
    [CHAT_8K, 3_000],
];

/** `concurrency` loops, each sending `request` for `seconds` (or until `maxRequests` are sent): on one connection, or a new one per request. */
async function load(ep: Endpoint, opts: { seconds: number; concurrency: number; newConnectionEach: boolean; request?: BenchRequest; maxRequests?: number }): Promise<LoadResult> {
    const deadline = performance.now() + opts.seconds * 1000;
    const latencies: number[] = [];
    let errors = 0;
    let issued = 0;
    const request = opts.request ?? VERSION;
    const req = requestBytes(ep, request.method, request.path, request.body, opts.newConnectionEach);
    const loop = async () => {
        let conn: Connection | undefined;
        while (performance.now() < deadline && issued++ < (opts.maxRequests ?? Infinity)) {
            const t0 = performance.now();
            try {
                if (!conn || conn.closed) {
                    conn?.close();
                    conn = await Connection.open(ep);
                }
                const r = await conn.request(req);
                if (r.status !== 200) errors++;
                else latencies.push(performance.now() - t0);
            } catch {
                errors++;
                conn = undefined;
            }
            if (opts.newConnectionEach) {
                conn?.close();
                conn = undefined;
            }
        }
        conn?.close();
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: opts.concurrency }, loop));
    const elapsed = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    return { requestsPerSecond: round(latencies.length / elapsed, 1), p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)), requests: latencies.length, errors };
}

const median = (sorted: readonly number[]) => percentile(sorted, 50);

/** Rounds of one target: median requests/s, latency percentiles over every request of every round. */
function combine(results: readonly LoadResult[]): LoadResult & { readonly rounds: number } {
    const rps = results.map((r) => r.requestsPerSecond).sort((a, b) => a - b);
    const cpu = results.flatMap((r) => (r.serverCpuMicrosPerRequest === undefined ? [] : [r.serverCpuMicrosPerRequest])).sort((a, b) => a - b);
    return {
        serverCpuMicrosPerRequest: cpu.length ? median(cpu) : undefined,
        requestsPerSecond: median(rps),
        // Percentiles of the per-round percentiles would hide tails; the medians are close enough for p50.
        p50Ms: round(median(results.map((r) => r.p50Ms).sort((a, b) => a - b))),
        p99Ms: round(Math.max(...results.map((r) => r.p99Ms))),
        requests: results.reduce((n, r) => n + r.requests, 0),
        errors: results.reduce((n, r) => n + r.errors, 0),
        rounds: results.length,
    };
}

interface StreamResult {
    readonly ttftP50Ms: number;
    readonly ttftP99Ms: number;
    readonly gapP50Ms: number;
    readonly gapMaxMs: number;
    /** Median number of socket reads carrying body bytes per answer (one per token when unbuffered). */
    readonly readsPerAnswer: number;
}

async function streaming(ep: Endpoint): Promise<StreamResult> {
    const conn = await Connection.open(ep);
    const body = JSON.stringify({ model: MODEL, prompt: "benchmark", stream: true });
    const ttft: number[] = [];
    const gaps: number[] = [];
    const reads: number[] = [];
    try {
        for (let i = 0; i < STREAM_RUNS; i++) {
            const r = await conn.request(requestBytes(ep, "POST", "/api/generate", body));
            if (r.status !== 200) throw new Error(`streaming request answered ${r.status}`);
            ttft.push(r.firstBodyMs);
            reads.push(r.bodyReadsMs.length);
            for (let j = 1; j < r.bodyReadsMs.length; j++) gaps.push(r.bodyReadsMs[j] - r.bodyReadsMs[j - 1]);
        }
    } finally {
        conn.close();
    }
    ttft.sort((a, b) => a - b);
    gaps.sort((a, b) => a - b);
    reads.sort((a, b) => a - b);
    return { ttftP50Ms: round(percentile(ttft, 50)), ttftP99Ms: round(percentile(ttft, 99)), gapP50Ms: round(percentile(gaps, 50)), gapMaxMs: round(gaps[gaps.length - 1] ?? NaN), readsPerAnswer: percentile(reads, 50) };
}

// ---------------------------------------------------------------------------------------------
// The processes under test
// ---------------------------------------------------------------------------------------------

// Every process the bench starts is this supervisor's, stopped on every way out (done, failed, a
// signal); exiting then removes the temp dir.
const supervisor = new Supervisor((reason) => console.error(`bench:gateway: ${reason}`));
cleanUpOnSignal("bench:gateway", () => supervisor.stopAll());
/** The bench's servers run as the bench's user; as root, nginx and haproxy workers need an explicit one. */
const WORKER_USER = process.getuid?.() === 0 ? "root" : undefined;

interface StubShape {
    readonly tokens: number;
    readonly tokenIntervalMs: number;
}

const STUB_READY = /^listening (\d+)$/;

/**
 * The filter's image entry point, bundled as filter/Dockerfile bundles it (esbuild, SQLite binding
 * external). Under tsx every arrow function the request path creates is wrapped to keep its name,
 * which the image does not pay. Written inside the repository so the binding resolves from its
 * node_modules; built once per run.
 */
function bundleFilter(): string {
    const outfile = join(REPO_ROOT, "node_modules", ".cache", "zto-bench", `filter-${process.pid}.js`);
    buildSync({ entryPoints: [join(REPO_ROOT, "filter/src/main.ts")], bundle: true, platform: "node", target: "node20", external: ["better-sqlite3"], outfile, logLevel: "error" });
    process.on("exit", () => rmSync(outfile, { force: true }));
    return outfile;
}
let filterBundle: string | undefined;

/**
 * The filter as its container runs it (components/filter.ts): the bundle, no --audit-log, audit
 * events on stdout, which goes to a file here as it goes to the container runtime's log there
 * (never through the supervisor's pipe into the load generator, whose event loop would then pay
 * for every event), and a ledger.
 */
async function startContainerLikeFilter(cfg: ReturnType<typeof benchStackConfig>, stateDir: string, stubPort: number): Promise<{ host: string; port: number; pid: number }> {
    const rulesFile = join(stateDir, "filter-rules.json");
    writeFileSync(rulesFile, JSON.stringify(renderFilterRules(cfg)));
    const out = join(stateDir, "filter.out");
    writeFileSync(out, "");
    filterBundle ??= bundleFilter();
    const argv = [process.execPath, filterBundle, "--rules", rulesFile, "--listen", "127.0.0.1:0", "--upstream", `http://127.0.0.1:${stubPort}`, "--budget-store", join(stateDir, "budgets.db")];
    const child = await supervisor.spawn("filter", "sh", ["-c", 'out="$1"; shift; exec "$@" >>"$out"', "sh", out, ...argv], { logFile: join(stateDir, "filter.err") });
    // A bound, not a measurement: the primary and its workers starting on a loaded machine.
    for (let i = 0; i < 1200; i++) {
        const m = /^listening (127\.0\.0\.1):(\d+)$/m.exec(readFileSync(out, "utf8"));
        if (m) return { host: m[1], port: Number(m[2]), pid: child.pid };
        if (!child.running()) throw new Error(`the filter exited: ${child.lastOutput()}`);
        await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("the filter did not start");
}

/** The stub Ollama in its own process (its own directory), so it does not share the load generator's event loop. */
async function startStubProcess(dir: string, shape: StubShape): Promise<{ port: number; pid: number }> {
    mkdirSync(dir, { recursive: true });
    // The ready bound is not a measurement: tsx start-up on a loaded machine takes seconds.
    const child = await supervisor.spawn("stub Ollama", process.execPath, ["--import", "tsx", __filename, STUB_FLAG, dir, String(shape.tokens), String(shape.tokenIntervalMs)], { logFile: join(dir, "stub.out"), readyLine: STUB_READY, readyTimeoutMs: 60_000 });
    return { port: Number(child.ready![1]), pid: child.pid };
}


/**
 * What an operator writes by hand: TLS termination and proxy_pass, nothing else. nginx's own
 * default access log (combined format, one line per request) stays on, as it does in any
 * hand-written config that does not switch it off.
 */
function bareNginxConf(dir: string, port: number, stubPort: number, tls: { cert: string; key: string }): string {
    return `worker_processes auto;
pid ${dir}/bare.pid;
events { worker_connections 4096; }
http {
    access_log ${dir}/bare-access.log combined;
    client_body_temp_path ${dir}/bare-body;
    proxy_temp_path ${dir}/bare-proxy;
    fastcgi_temp_path ${dir}/bare-fastcgi;
    uwsgi_temp_path ${dir}/bare-uwsgi;
    scgi_temp_path ${dir}/bare-scgi;
    upstream ollama { server 127.0.0.1:${stubPort}; keepalive 32; }
    server {
        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${tls.cert};
        ssl_certificate_key ${tls.key};
        ssl_protocols TLSv1.3;
        location / {
            proxy_pass http://ollama;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
`;
}

/**
 * The haproxy counterpart of bareNginxConf (measured with --kinds haproxy): what a seed-002
 * operator writes by hand, TLS termination and forwarding only. `pem` holds certificate and key.
 */
function bareHaproxyCfg(port: number, stubPort: number, pem: string): string {
    return `defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 600s
frontend bare
    bind 127.0.0.1:${port} ssl crt ${pem} ssl-min-ver TLSv1.3 alpn http/1.1
    default_backend ollama
backend ollama
    server ollama 127.0.0.1:${stubPort}
`;
}

async function startBareHaproxy(dir: string, stubPort: number, tls: CertPair): Promise<{ port: number; pid: number }> {
    const port = await freePort();
    const pem = join(dir, "bare-haproxy.pem");
    writeFileSync(pem, readFileSync(tls.cert, "utf8") + readFileSync(tls.key, "utf8"), { mode: 0o600 });
    const config = join(dir, "bare-haproxy.cfg");
    writeFileSync(config, bareHaproxyCfg(port, stubPort, pem));
    return { port, pid: await startServer(supervisor, "bare haproxy", GATEWAY_KINDS.haproxy.run(config, { errorLog: "stderr" }), port, join(dir, "bare-haproxy.out")) };
}

/** Start `argv` and wait until it listens on 127.0.0.1:`port`; returns its pid. */
async function startServer(owner: Supervisor, name: string, argv: readonly string[], port: number, logFile: string): Promise<number> {
    const [command, ...args] = argv;
    const child = await owner.spawn(name, command, args, { logFile });
    await waitForListener("127.0.0.1", port, child.running);
    return child.pid;
}

/** Start a gateway from its derived spec with limits lifted, so the bench measures cost, not throttling; returns its pid. */
async function startBenchGateway(owner: Supervisor, derived: GatewaySpec, stateDir: string): Promise<number> {
    const spec: GatewaySpec = { ...derived, limits: { ...derived.limits, ratePerMinute: 60_000_000, burst: 1_000_000, connectionsPerClient: 10_000 } };
    const prepared = prepareGateway(spec, stateDir);
    return startServer(owner, `gateway ${spec.kind}`, [prepared.command, ...prepared.args], spec.listen.port, join(stateDir, "gateway.out"));
}

/** Where a bench gateway in `stateDir` listens, logs and finds the server's TLS files. */
function benchPlacement(stateDir: string, port: number, pki: { server: CertPair; ca: CertPair }): Pick<GatewayPlacement, "listen" | "tlsFiles" | "runtimeDir" | "accessLog" | "errorLog" | "workerUser"> {
    return {
        listen: { host: "127.0.0.1", port },
        tlsFiles: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
        runtimeDir: join(stateDir, "run"),
        accessLog: join(stateDir, "access.log"),
        errorLog: join(stateDir, "error.log"),
        workerUser: WORKER_USER,
    };
}

/** Who the full gateway serves: its enrolled devices and, with the filter on, where the filter listens. */
interface GatewayClients {
    readonly devices: readonly { readonly name: string; readonly cert: string }[];
    readonly filter?: { readonly host: string; readonly port: number };
    readonly clientTimeoutSeconds?: number;
}

/**
 * The program's config for a bench gateway: the given devices, no identity provider. The
 * many-streams load keeps connections idle while all of them are being opened, longer than the
 * default client timeout (10 s) on a loaded machine, so it raises gateway.clientTimeoutSeconds.
 */
const benchStackConfig = (kind: GatewayKind, clients: GatewayClients) =>
    loadStackConfig({
        domain: "ollama.bench",
        devices: clients.devices.map((d) => ({ name: d.name, owner: `${d.name}@example.com`, groups: ["bench"] })),
        gateway: { kind, ...(clients.clientTimeoutSeconds ? { clientTimeoutSeconds: clients.clientTimeoutSeconds } : {}) },
        identity: { provider: "none" },
        filter: { enabled: clients.filter !== undefined },
    });

/** The full gateway of one kind: the program's renderer, limits lifted so the bench measures cost, not throttling. */
async function startFullGateway(owner: Supervisor, kind: GatewayKind, stateDir: string, stubPort: number, pki: { server: CertPair; ca: CertPair }, clients: GatewayClients): Promise<{ port: number; pid: number }> {
    const port = await freePort();
    const cfg = benchStackConfig(kind, clients);
    const facts = Object.fromEntries(
        clients.devices.map((d) => {
            const id = certIdentity(readFileSync(d.cert, "utf8"));
            return [d.name, { fingerprintSha1: id.sha1, serial: id.serial }];
        }),
    );
    mkdirSync(stateDir, { recursive: true });
    const derived = deriveGatewaySpec(cfg, facts, {
        ...benchPlacement(stateDir, port, pki),
        // As deployed: tickets on (prepareGateway writes fresh keys); full handshakes offer none.
        sessionTicketKeys: join(stateDir, "session-ticket.keys"),
        ollama: { host: "127.0.0.1", port: stubPort },
        ...(clients.filter ? { filter: clients.filter } : {}),
    });
    return { port, pid: await startBenchGateway(owner, derived, stateDir) };
}

/**
 * The full nginx gateway over a node pool of `nodes` enclaves (ollama.nodes): the sandbox's
 * enclaves, each in front of the shared stub; limits lifted as for startFullGateway. Returns
 * every server pid (gateway and enclaves) so CPU per request covers the whole path.
 */
async function startPoolGateway(nodes: number, dir: string, stubPort: number, pki: { server: CertPair; ca: CertPair; device: CertPair }): Promise<{ port: number; pids: number[] }> {
    const stateDir = join(dir, `pool-${nodes}`);
    mkdirSync(stateDir, { recursive: true });
    const cfg = loadStackConfig({
        domain: "ollama.bench",
        devices: [{ name: "bench-device", owner: "bench@example.com", groups: ["bench"], tailscaleDeviceId: "nBench0001" }],
        identity: { provider: "none" },
        filter: { enabled: false },
        tailscale: { enabled: true },
        ollama: { nodes: Array.from({ length: nodes }, (_, i) => ({ name: `node-${i + 1}`, dockerHost: `ssh://bench@node-${i + 1}`, tailscaleAddress: `100.64.0.${i + 1}`, models: [MODEL] })) },
    });
    const router = { host: "127.0.0.1", port: await freePort() };
    const pool = await startEnclaves(supervisor, cfg, nodePoolSettings(cfg)!, stateDir, pki.ca, { router, ollamaOf: () => ({ host: "127.0.0.1", port: stubPort }), workerUser: WORKER_USER, freePort });
    const port = await freePort();
    const id = certIdentity(readFileSync(pki.device.cert, "utf8"));
    const derived = deriveGatewaySpec(cfg, { "bench-device": { fingerprintSha1: id.sha1, serial: id.serial } }, { ...benchPlacement(stateDir, port, pki), ollama: router, nodePool: pool.nodePool });
    return { port, pids: [await startBenchGateway(supervisor, derived, stateDir), ...pool.enclaves.map((e) => e.pid)] };
}

// ---------------------------------------------------------------------------------------------

async function serveStub(dir: string, shape: StubShape): Promise<void> {
    // Non-streamed answers at once: the chat load measures what the proxies cost, not generation time.
    const stub = await startStubOllama({ logFile: join(dir, "ollama.jsonl"), tokenIntervalMs: shape.tokenIntervalMs, tokens: shape.tokens, models: [MODEL], instantNonStreaming: true });
    process.stdout.write(`listening ${stub.port}\n`);
}

/** First line the kind's version command prints (nginx writes it to stderr, haproxy to stdout). */
function binaryVersion(kind: GatewayKind): string {
    const [command, ...args] = GATEWAY_KINDS[kind].version;
    const r = spawnSync(command, args, { encoding: "utf8" });
    return `${r.stdout}${r.stderr}`.trim().split("\n")[0].trim();
}

/** Client timeout of the many-streams gateways: opening 2,000 mTLS connections from one load generator takes tens of seconds here. */
const IDLE_WHILE_OPENING_SECONDS = 300;

/** The many-streams load: tokens and pacing of each answer, as the issue states it. */
const MANY_STREAMS: StubShape = { tokens: 40, tokenIntervalMs: 25 };

/**
 * `devices` enrolled devices, each opening `perDevice` connections at once and streaming one
 * generation on each, through gateway + filter (each kind) and straight to the stub, in one run.
 */
async function manyStreams(kinds: readonly GatewayKind[], dir: string, pki: { server: CertPair; ca: CertPair }, devices: number, perDevice: number) {
    const stub = await startStubProcess(join(dir, "stub-many"), MANY_STREAMS);
    const day = new Date(Date.now() + 86_400_000);
    mkdirSync(join(dir, "devices"));
    const enrolled = Array.from({ length: devices }, (_, i) => {
        const name = `bench-${String(i + 1).padStart(4, "0")}`;
        const pair = { cert: join(dir, "devices", `${name}.crt`), key: join(dir, "devices", `${name}.key`) };
        issueCert(pki.ca, pair, { commonName: name, usage: "client", notAfter: day });
        return { name, ...pair };
    });
    const body = JSON.stringify({ model: MODEL, prompt: "benchmark", stream: true });
    const shape = { perClient: perDevice, body, tokens: MANY_STREAMS.tokens, tokenIntervalMs: MANY_STREAMS.tokenIntervalMs };
    const directEndpoint: Endpoint = { host: "127.0.0.1", port: stub.port, hostHeader: `127.0.0.1:${stub.port}` };
    const results: Record<string, StreamLoadResult> = {};
    // Each target first serves one stream per device (JIT, connection pools, heap growth), unmeasured.
    const measured = async (clients: Endpoint[], rssOf: Record<string, number[]>, cpuOf: Record<string, number[]>) => {
        await runStreamLoad({ ...shape, perClient: 1, clients, rssOf: {} });
        return runStreamLoad({ ...shape, clients, rssOf, cpuOf });
    };
    results.direct = await measured(enrolled.map(() => directEndpoint), { stubOllama: [stub.pid] }, { stubOllama: [stub.pid] });
    const ca = readFileSync(pki.ca.cert);
    for (const kind of kinds) {
        const stateDir = join(dir, `streams-${kind}`);
        mkdirSync(join(stateDir, "logs"), { recursive: true });
        // Each kind's gateway and filter are stopped before the next kind's start.
        const streamsSupervisor = new Supervisor((reason) => console.error(`bench:gateway: ${reason}`));
        try {
            const filterRules = benchStackConfig(kind, { devices: enrolled, filter: { host: "127.0.0.1", port: 0 } });
            const filter = await startFilter(streamsSupervisor, filterRules, stateDir, `http://127.0.0.1:${stub.port}`);
            const gateway = await startFullGateway(streamsSupervisor, kind, stateDir, stub.port, pki, { devices: enrolled, filter, clientTimeoutSeconds: IDLE_WHILE_OPENING_SECONDS });
            const clients = enrolled.map((d): Endpoint => ({ host: "127.0.0.1", port: gateway.port, hostHeader: `127.0.0.1:${gateway.port}`, tls: { ca, cert: readFileSync(d.cert), key: readFileSync(d.key) } }));
            results[`gateway:${kind}+filter`] = await measured(clients, { gatewayProcesses: [gateway.pid], filter: [filter.pid] }, { gatewayProcesses: [gateway.pid], filter: [filter.pid], stubOllama: [stub.pid] });
        } finally {
            await streamsSupervisor.stopAll();
        }
    }
    const direct = results.direct;
    const targets = Object.fromEntries(
        Object.entries(results)
            .filter(([name]) => name !== "direct")
            .map(([name, r]) => {
                const paced = Math.abs(r.gapP50Ms - MANY_STREAMS.tokenIntervalMs) <= 0.2 * MANY_STREAMS.tokenIntervalMs;
                const ttftP50 = r.ttftP50Ms / direct.ttftP50Ms;
                const ttftP99 = r.ttftP99Ms / direct.ttftP99Ms;
                const filterKiB = r.rssKiBPerStream.filter;
                return [
                    name,
                    {
                        noFailureWhileOpening: { value: r.openFailures, met: r.openFailures === 0 },
                        allCompleteWithEveryToken: { value: { failed: r.streamFailures, incomplete: r.incompleteAnswers }, met: r.streamFailures === 0 && r.incompleteAnswers === 0 },
                        chunkGapsPaced: { value: r.gapP50Ms, target: `p50 within 20% of ${MANY_STREAMS.tokenIntervalMs} ms`, met: paced },
                        ttftVsDirect: { value: { p50: round(ttftP50, 2), p99: round(ttftP99, 2) }, target: "<= 1.5 at p50 and at p99", met: ttftP50 <= 1.5 && ttftP99 <= 1.5 },
                        filterRssPerStreamKiB: { value: filterKiB, target: "<= 50", met: filterKiB <= 50 },
                        pacingWithinCpuBudget: cpuBudget(r, direct),
                    },
                ];
            }),
    );
    return { settings: { devices, perDevice, streams: devices * perDevice, ...MANY_STREAMS }, results, targets };
}

/**
 * Whether this machine's cores can pace the load at all: every chunk of every stream passes the
 * stub, the filter, the gateway and the load generator, all on the same cores, so their CPU per
 * chunk (stream phase) times the offered chunk rate must fit in the cores. Measured under
 * overload, where writes coalesce, the cost per chunk is if anything lower than when paced.
 */
function cpuBudget(r: StreamLoadResult, direct: StreamLoadResult) {
    const { offered, streamPhase } = r.cpu;
    return {
        value: {
            offeredChunksPerSecond: offered.chunksPerSecond,
            cpuBudgetMicrosPerChunk: offered.cpuBudgetMicrosPerChunk,
            measuredMicrosPerChunk: streamPhase.total.microsPerChunk,
            byComponent: Object.fromEntries(Object.entries(streamPhase.byComponent).map(([name, c]) => [name, c.microsPerChunk])),
            directMicrosPerChunk: direct.cpu.streamPhase.total.microsPerChunk,
            coresNeededAtMeasuredCost: offered.coresNeededAtMeasuredCost,
            coresAvailable: offered.coresAvailable,
        },
        note: "every component shares these cores; paced delivery needs coresNeededAtMeasuredCost <= coresAvailable (the direct run needs its stub and load generator only)",
        met: offered.coresNeededAtMeasuredCost <= offered.coresAvailable,
    };
}

const USAGE = `usage: npm run bench:gateway -- [--kinds nginx,haproxy] [--seconds <n>] [--concurrency <n>] [--streams <devices>x<per-device>|off]
  --kinds <list>       gateway kinds to measure (default nginx,haproxy)
  --seconds <n>        seconds per load phase (default 5)
  --concurrency <n>    parallel connections (default 16)
  --streams <d>x<n>    d enrolled devices each streaming n generations at once, through gateway +
                       filter and straight to the stub (default 100x20; off to skip)
  --only <part>        run one part alone: handshakes (full vs resumed mTLS connections/s of
                       the full gateways) or streams (the --streams load)
  Prints one JSON document; targets 127.0.0.1 only. Ctrl-C stops every process it started.`;

/** Connections per handshake-client run (one round of one mode): about a second of full handshakes here. */
const HANDSHAKES_PER_ROUND = 600;
/**
 * Client threads: the gateway's workers (one per core) each always have a handshake to do, and a
 * blocked thread (waiting for the answer) leaves the CPU to the gateway.
 */
const HANDSHAKE_THREADS = 4;

interface HandshakeRound extends HandshakeRun {
    /** CPU (user+system) the gateway's processes spent per connection. */
    readonly gatewayCpuMicrosPerConnection: number;
    readonly clientCpuMicrosPerConnection: number;
}

/**
 * Full handshakes and resumed ones against one gateway, in alternating runs of the C client
 * (same rounds, same background load), each measured with the gateway's CPU spent meanwhile.
 */
async function handshakeRounds(binary: string, target: HandshakeTarget, gatewayCpu: () => number): Promise<{ full: HandshakeRound[]; resumed: HandshakeRound[] }> {
    const measured = async (resume: boolean): Promise<HandshakeRound> => {
        const before = gatewayCpu();
        const run = await runHandshakes(binary, target, { connections: HANDSHAKES_PER_ROUND, threads: HANDSHAKE_THREADS, resume, timeoutMs: 120_000 });
        const per = (cpuSeconds: number) => round((cpuSeconds * 1e6) / Math.max(1, run.ok), 1);
        return { ...run, gatewayCpuMicrosPerConnection: per(gatewayCpu() - before), clientCpuMicrosPerConnection: per(run.clientCpuSeconds) };
    };
    // Warm-up (worker start-up, the first tickets), unmeasured.
    await runHandshakes(binary, target, { connections: 100, threads: HANDSHAKE_THREADS, resume: true, timeoutMs: 120_000 });
    const full: HandshakeRound[] = [];
    const resumed: HandshakeRound[] = [];
    for (let r = 0; r < ROUNDS; r++) {
        // Alternating which goes first: neither always meets the tail of the other's load.
        for (const resume of r % 2 ? [true, false] : [false, true]) (resume ? resumed : full).push(await measured(resume));
    }
    return { full, resumed };
}

/** The bench device connecting to a gateway on 127.0.0.1:`port`. */
const deviceAt = (port: number, pki: { ca: CertPair; device: CertPair }): HandshakeTarget => ({ host: "127.0.0.1", port, ca: pki.ca.cert, cert: pki.device.cert, key: pki.device.key });

/** New connections/s with resumption over full handshakes, per round, and what each costs the gateway and the client. */
function resumptionTarget({ full, resumed }: { full: readonly HandshakeRound[]; resumed: readonly HandshakeRound[] }) {
    const sortedMedian = (xs: readonly number[]) => median([...xs].sort((a, b) => a - b));
    const ratios = resumed.map((x, i) => x.perSecond / full[i].perSecond).sort((a, b) => a - b);
    const ratio = median(ratios);
    const sum = (rs: readonly HandshakeRound[], key: "connections" | "ok" | "errors" | "resumed") => rs.reduce((n, r) => n + r[key], 0);
    const gatewayFull = sortedMedian(full.map((r) => r.gatewayCpuMicrosPerConnection));
    const gatewayResumed = sortedMedian(resumed.map((r) => r.gatewayCpuMicrosPerConnection));
    return {
        value: round(ratio),
        perRound: ratios.map((x) => round(x)),
        fullHandshakePerSecond: sortedMedian(full.map((r) => r.perSecond)),
        resumedPerSecond: sortedMedian(resumed.map((r) => r.perSecond)),
        connections: { full: sum(full, "connections"), resumedRuns: sum(resumed, "connections"), errors: sum(full, "errors") + sum(resumed, "errors"), fullThatResumed: sum(full, "resumed") },
        resumedShareOfConnections: round(sum(resumed, "resumed") / Math.max(1, sum(resumed, "connections"))),
        cpuMicrosPerConnection: {
            gateway: { full: gatewayFull, resumed: gatewayResumed, fullOverResumed: round(gatewayFull / gatewayResumed, 2) },
            client: { full: sortedMedian(full.map((r) => r.clientCpuMicrosPerConnection)), resumed: sortedMedian(resumed.map((r) => r.clientCpuMicrosPerConnection)) },
            note: "medians of per-round figures; the gateway's CPU per connection bounds its connection rate on this machine's cores once the client is not the limit (one request of GET /api/version per connection, access log included)",
        },
        target: ">= 2 (median of per-round ratios; one request per connection)",
        met: ratio >= 2,
    };
}

/** Parts that `--only` runs alone (a short run while iterating on one of them). */
const ONLY_PARTS = ["handshakes", "streams"] as const;
type OnlyPart = (typeof ONLY_PARTS)[number];
const isOnlyPart = (x: string): x is OnlyPart => (ONLY_PARTS as readonly string[]).includes(x);

/** One part alone: the full gateways' handshakes (with their own stub), or the many-streams load. */
async function onlyPart(part: OnlyPart, kinds: readonly GatewayKind[], dir: string, pki: { server: CertPair; ca: CertPair; device: CertPair }, client: string, streamsShape: RegExpExecArray | null | undefined) {
    switch (part) {
        case "streams":
            return { manyStreams: await manyStreams(kinds, dir, pki, Number(streamsShape![1]), Number(streamsShape![2])) };
        case "handshakes": {
            const stub = await startStubProcess(join(dir, "stub"), { tokens: STREAM_TOKENS, tokenIntervalMs: STREAM_INTERVAL_MS });
            const handshakes: Record<string, ReturnType<typeof resumptionTarget>> = {};
            for (const kind of kinds) {
                const { port, pid } = await startFullGateway(supervisor, kind, join(dir, `gateway-${kind}`), stub.port, pki, { devices: [{ name: "bench-device", cert: pki.device.cert }] });
                handshakes[`gateway:${kind}`] = resumptionTarget(await handshakeRounds(client, deviceAt(port, pki), () => processTreeCpuSeconds(pid)));
            }
            return { handshakes };
        }
    }
    const unknown: never = part;
    throw new Error(`unknown part ${String(unknown)}`);
}

async function main(): Promise<void> {
    exitWithUsageIfAsked(process.argv.slice(2), USAGE);
    const { values } = parseArgs({ options: { kinds: { type: "string", default: "nginx,haproxy" }, seconds: { type: "string", default: "5" }, concurrency: { type: "string", default: "16" }, streams: { type: "string", default: "100x20" }, only: { type: "string" } } });
    const kinds = values.kinds!.split(",").map((name): GatewayKind => {
        const k = name.trim();
        if (!isGatewayKind(k)) throw new Error(`--kinds: unknown gateway kind "${k}" (${Object.keys(GATEWAY_KINDS).join(", ")})`);
        return k;
    });
    const seconds = Number(values.seconds);
    const concurrency = Number(values.concurrency);
    const streamsShape = values.streams === "off" ? undefined : /^([1-9]\d{0,3})x([1-9]\d{0,2})$/.exec(values.streams!);
    if (values.streams !== "off" && !streamsShape) throw new Error(`--streams: expected <devices>x<per-device> (e.g. 100x20) or off, got "${values.streams}"`);
    const only = values.only;
    if (only !== undefined && !isOnlyPart(only)) throw new Error(`--only: expected one of ${ONLY_PARTS.join(", ")}, got "${only}"`);
    if (only === "streams" && !streamsShape) throw new Error("--only streams: --streams is off");
    for (const bin of new Set(["nginx", "openssl", ...kinds.map((k) => GATEWAY_KINDS[k].binary)])) {
        try {
            execFileSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" });
        } catch {
            throw new Error(`${bin} is not installed: apt-get install ${bin} (the bench installs nothing itself)`);
        }
    }

    // Built (or found in the tools cache) before anything starts: a missing compiler fails at once.
    const client = handshakeClient();
    const loadAtStart = loadavg()[0];
    const dir = mkdtempSync(join(tmpdir(), "zto-bench-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
    const pki = { ca: { cert: join(dir, "ca.crt"), key: join(dir, "ca.key") }, server: { cert: join(dir, "server.crt"), key: join(dir, "server.key") }, device: { cert: join(dir, "device.crt"), key: join(dir, "device.key") } };
    createCa(pki.ca, "bench CA", 2);
    const day = new Date(Date.now() + 86_400_000);
    issueCert(pki.ca, pki.server, { commonName: "bench gateway", usage: "server", dnsNames: ["ollama.bench", "localhost"], ipAddresses: ["127.0.0.1"], notAfter: day });
    issueCert(pki.ca, pki.device, { commonName: "bench-device", usage: "client", notAfter: day });

    const machine = () => ({ cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version, nginx: binaryVersion("nginx"), haproxy: kinds.includes("haproxy") ? binaryVersion("haproxy") : undefined, loadAverage1m: { atStart: round(loadAtStart, 2), atEnd: round(loadavg()[0], 2), note: "other processes competing for the CPUs make figures noisy" } });
    if (only) return void process.stdout.write(JSON.stringify({ machine: machine(), only, ...(await onlyPart(only, kinds, dir, pki, client, streamsShape)) }, null, 2) + "\n");

    const stub = await startStubProcess(join(dir, "stub"), { tokens: STREAM_TOKENS, tokenIntervalMs: STREAM_INTERVAL_MS });
    const stubPort = stub.port;
    const barePort = await freePort();
    writeFileSync(join(dir, "bare.conf"), bareNginxConf(dir, barePort, stubPort, pki.server));
    const serverPids: Record<string, number> = { direct: stub.pid, bareNginx: await startServer(supervisor, "bare nginx", GATEWAY_KINDS.nginx.run(join(dir, "bare.conf"), { prefix: dir, errorLog: join(dir, "bare.err") }), barePort, join(dir, "bare.err")) };

    const ca = readFileSync(pki.ca.cert);
    const targets: Record<string, Endpoint> = {
        direct: { host: "127.0.0.1", port: stubPort, hostHeader: `127.0.0.1:${stubPort}` },
        bareNginx: { host: "127.0.0.1", port: barePort, hostHeader: `127.0.0.1:${barePort}`, tls: { ca } },
    };
    if (kinds.includes("haproxy")) {
        const bare = await startBareHaproxy(dir, stubPort, pki.server);
        serverPids.bareHaproxy = bare.pid;
        targets.bareHaproxy = { host: "127.0.0.1", port: bare.port, hostHeader: `127.0.0.1:${bare.port}`, tls: { ca } };
    }
    const benchDevices = [{ name: "bench-device", cert: pki.device.cert }];
    const deviceTls = { ca, cert: readFileSync(pki.device.cert), key: readFileSync(pki.device.key) };
    for (const kind of kinds) {
        const { port, pid } = await startFullGateway(supervisor, kind, join(dir, `gateway-${kind}`), stubPort, pki, { devices: benchDevices });
        serverPids[`gateway:${kind}`] = pid;
        targets[`gateway:${kind}`] = { host: "127.0.0.1", port, hostHeader: `127.0.0.1:${port}`, tls: deviceTls };
    }
    // The same gateway with the inline filter (its default process model: one worker per core) in
    // front of the same stub; the filter's processes count in the column's server CPU.
    const filterPids: Record<string, number> = {};
    for (const kind of kinds) {
        const name = `gateway:${kind}+filter`;
        const stateDir = join(dir, `gateway-${kind}-filter`);
        mkdirSync(stateDir, { recursive: true });
        const filter = await startContainerLikeFilter(benchStackConfig(kind, { devices: benchDevices, filter: { host: "127.0.0.1", port: 0 } }), stateDir, stubPort);
        const { port, pid } = await startFullGateway(supervisor, kind, stateDir, stubPort, pki, { devices: benchDevices, filter });
        serverPids[name] = pid;
        filterPids[name] = filter.pid;
        targets[name] = { host: "127.0.0.1", port, hostHeader: `127.0.0.1:${port}`, tls: deviceTls };
    }

    // Node pool columns: the same nginx gateway routing over 1 and 3 enclaves (same stub behind each).
    const poolPids: Record<string, number[]> = {};
    if (kinds.includes("nginx")) {
        for (const nodes of [1, 3]) {
            const name = `pool:${nodes}-node${nodes === 1 ? "" : "s"}`;
            const pool = await startPoolGateway(nodes, dir, stubPort, pki);
            serverPids[name] = pool.pids[0];
            poolPids[name] = pool.pids;
            targets[name] = { host: "127.0.0.1", port: pool.port, hostHeader: `127.0.0.1:${pool.port}`, tls: { ca, cert: readFileSync(pki.device.cert), key: readFileSync(pki.device.key) } };
        }
    }
    // A pool's server CPU is its gateway's and its enclaves' together (separate process trees).
    const serverCpu = (name: string) => (poolPids[name] ?? [serverPids[name], ...(filterPids[name] ? [filterPids[name]] : [])]).reduce((sum, pid) => sum + processTreeCpuSeconds(pid), 0);

    // Warm up every target (connection pools, JIT) before measuring. The filter's JIT needs
    // thousands of requests, not seconds: after 300 requests it still cost about twice its
    // steady-state CPU per request, after 6,000 it had settled. Its targets are warmed by count
    // (each worker sees about half), in both request shapes, within a bound in time.
    for (const [name, ep] of Object.entries(targets)) {
        await load(ep, { seconds: 0.5, concurrency: 4, newConnectionEach: false });
        if (!filterPids[name]) continue;
        for (const [request, maxRequests] of FILTER_WARM_UP) await load(ep, { seconds: 30, concurrency: 4, newConnectionEach: false, request, maxRequests });
    }

    // Interleaved rounds: every target is measured in every round, in rotating order, so a burst of
    // background load on this 2-core machine hits all targets alike; per-round ratios keep that.
    const modes = {
        keepAlive: { concurrency, newConnectionEach: false },
        keepAliveChat8k: { concurrency, newConnectionEach: false, request: CHAT_8K },
        newConnection: { concurrency, newConnectionEach: true },
        sequential: { concurrency: 1, newConnectionEach: false },
    } as const;
    const names = Object.keys(targets);
    const fullGateways = kinds.map((k) => `gateway:${k}`);
    const withFilter = Object.keys(filterPids);
    // The modes each target is measured in: new connections cost the same TLS with or without the
    // filter behind (skipped there); the chat load compares the proxies with and without the filter.
    const measuredIn = (mode: keyof typeof modes, name: string) => {
        if (mode === "newConnection") return !withFilter.includes(name);
        if (mode === "keepAliveChat8k") return !poolPids[name];
        return true;
    };
    const rounds: Record<keyof typeof modes, Record<string, LoadResult[]>> = { keepAlive: {}, keepAliveChat8k: {}, newConnection: {}, sequential: {} };
    for (let r = 0; r < ROUNDS; r++) {
        for (const [mode, opts] of Object.entries(modes) as [keyof typeof modes, (typeof modes)[keyof typeof modes]][]) {
            for (let i = 0; i < names.length; i++) {
                const name = names[(i + r) % names.length];
                if (!measuredIn(mode, name)) continue;
                const cpuBefore = serverCpu(name);
                const result = await load(targets[name], { seconds: seconds / ROUNDS, concurrency: opts.concurrency, newConnectionEach: opts.newConnectionEach, request: "request" in opts ? opts.request : undefined });
                const cpu = serverCpu(name) - cpuBefore;
                (rounds[mode][name] ??= []).push({ ...result, serverCpuMicrosPerRequest: round((cpu * 1e6) / Math.max(1, result.requests), 1) });
            }
        }
    }
    const summary = (mode: keyof typeof modes) => Object.fromEntries(names.filter((n) => rounds[mode][n]).map((n) => [n, combine(rounds[mode][n])]));
    const throughput = { keepAlive: summary("keepAlive"), keepAliveChat8k: summary("keepAliveChat8k"), newConnection: summary("newConnection") };
    // Resumption is the full gateways' (the bare proxies and the pools are not what it measures).
    const handshakes: Record<string, ReturnType<typeof resumptionTarget>> = {};
    for (const name of fullGateways) handshakes[name] = resumptionTarget(await handshakeRounds(client, deviceAt(targets[name].port, pki), () => serverCpu(name)));
    const sequential = summary("sequential");
    const stream: Record<string, StreamResult> = {};
    for (const name of ["direct", ...fullGateways, ...withFilter, ...Object.keys(poolPids)]) stream[name] = await streaming(targets[name]);

    const targetsMet: Record<string, unknown> = {};
    for (const kind of kinds) {
        const g = `gateway:${kind}`;
        const roundRatios = rounds.keepAlive[g].map((x, i) => x.requestsPerSecond / rounds.keepAlive.bareNginx[i].requestsPerSecond).sort((a, b) => a - b);
        const ratio = median(roundRatios);
        const addedP50 = sequential[g].p50Ms - sequential.direct.p50Ms;
        const addedTtft = stream[g].ttftP50Ms - stream.direct.ttftP50Ms;
        const gapDelta = Math.abs(stream[g].gapP50Ms - stream.direct.gapP50Ms);
        targetsMet[g] = {
            keepAliveThroughputVsBare: { value: round(ratio), perRound: roundRatios.map((x) => round(x)), target: ">= 0.8 (median of per-round ratios)", met: ratio >= 0.8 },
            keepAliveServerCpuPerRequestVsBare: {
                value: round(throughput.keepAlive[g].serverCpuMicrosPerRequest! / throughput.keepAlive.bareNginx.serverCpuMicrosPerRequest!),
                note: "CPU the gateway spends per request relative to bare nginx; its inverse bounds the throughput ratio when the server, not the client, is the bottleneck",
            },
            addedSequentialP50Ms: { value: round(addedP50), target: "<= 0.25", met: addedP50 <= 0.25 },
            newConnectionsResumedVsFullHandshake: handshakes[g],
            addedTtftP50Ms: { value: round(addedTtft), target: "<= 2", met: addedTtft <= 2 },
            chunkGapsPreserved: {
                value: { gapP50DeltaMs: round(gapDelta), readsPerAnswer: stream[g].readsPerAnswer, readsPerAnswerDirect: stream.direct.readsPerAnswer },
                target: `gap p50 within 2 ms of direct (${STREAM_INTERVAL_MS} ms tokens), every token its own read`,
                met: gapDelta <= 2 && stream[g].readsPerAnswer >= STREAM_TOKENS,
            },
            // Same binary on both sides: what the gateway's policy costs over a hand-written haproxy.
            ...(kind === "haproxy"
                ? {
                      keepAliveThroughputVsBareHaproxy: { value: round(median(rounds.keepAlive[g].map((x, i) => x.requestsPerSecond / rounds.keepAlive.bareHaproxy[i].requestsPerSecond).sort((a, b) => a - b))), note: "informational (median of per-round ratios)" },
                      keepAliveServerCpuPerRequestVsBareHaproxy: { value: round(throughput.keepAlive[g].serverCpuMicrosPerRequest! / throughput.keepAlive.bareHaproxy.serverCpuMicrosPerRequest!), note: "informational" },
                  }
                : {}),
        };
    }

    for (const kind of kinds) {
        const g = `gateway:${kind}`;
        const f = `${g}+filter`;
        const vsBare = (mode: "keepAlive" | "keepAliveChat8k") => median(rounds[mode][f].map((x, i) => x.requestsPerSecond / rounds[mode].bareNginx[i].requestsPerSecond).sort((a, b) => a - b));
        const version = vsBare("keepAlive");
        const chat = vsBare("keepAliveChat8k");
        const addedP50 = sequential[f].p50Ms - sequential[g].p50Ms;
        const addedTtft = stream[f].ttftP50Ms - stream[g].ttftP50Ms;
        targetsMet[f] = {
            keepAliveVersionThroughputVsBare: { value: round(version), target: ">= 0.6 (GET /api/version, median of per-round ratios over bare nginx)", met: version >= 0.6 },
            keepAliveChat8kThroughputVsBare: { value: round(chat), target: ">= 0.5 (8 KiB non-streaming /api/chat, median of per-round ratios over bare nginx)", met: chat >= 0.5 },
            addedSequentialP50MsOverGateway: { value: round(addedP50), target: "<= 0.35 (the filter hop: gateway + filter over the same gateway without it)", met: addedP50 <= 0.35 },
            addedTtftP50MsOverGateway: { value: round(addedTtft), target: "<= 0.5", met: addedTtft <= 0.5 },
            serverCpuMicrosPerRequest: {
                value: { version: throughput.keepAlive[f].serverCpuMicrosPerRequest, chat8k: throughput.keepAliveChat8k[f].serverCpuMicrosPerRequest, versionWithoutFilter: throughput.keepAlive[g].serverCpuMicrosPerRequest, chat8kWithoutFilter: throughput.keepAliveChat8k[g].serverCpuMicrosPerRequest },
                note: "gateway and filter processes together; the difference is what the filter costs per request",
            },
        };
    }

    const streams = streamsShape ? await manyStreams(kinds, dir, pki, Number(streamsShape[1]), Number(streamsShape[2])) : undefined;

    const report = {
        machine: machine(),
        settings: { secondsPerMeasurement: seconds, concurrency, request: "GET /api/version (keepAliveChat8k: POST /api/chat, 8 KiB message, stream false)", streaming: { runs: STREAM_RUNS, tokens: STREAM_TOKENS, tokenIntervalMs: STREAM_INTERVAL_MS }, loadGenerator: "Node raw-socket HTTP/1.1 client (same process for every target); new-connection handshakes (targets.*.newConnectionsResumedVsFullHandshake): scripts/lib/handshake-client.c, " + `${HANDSHAKES_PER_ROUND} connections per round from ${HANDSHAKE_THREADS} threads` },
        throughput,
        sequential,
        streaming: stream,
        targets: targetsMet,
        ...(streams ? { manyStreams: streams } : {}),
        ...(poolPids["pool:3-nodes"]
            ? {
                  nodePool: {
                      note: "GET /api/version through the nginx gateway's pool router and an enclave (mTLS) to the stub; every node shares the one stub and this machine's cores, so a pool measures routing cost, not added GPU capacity",
                      keepAlive: Object.fromEntries(["gateway:nginx", "pool:1-node", "pool:3-nodes"].map((n) => [n, throughput.keepAlive[n]])),
                      sequential: Object.fromEntries(["gateway:nginx", "pool:1-node", "pool:3-nodes"].map((n) => [n, sequential[n]])),
                      threeNodesVsOneNodeKeepAliveThroughput: round(median(rounds.keepAlive["pool:3-nodes"].map((x, i) => x.requestsPerSecond / rounds.keepAlive["pool:1-node"][i].requestsPerSecond).sort((a, b) => a - b))),
                      addedSequentialP50MsOfPoolOverSingleNode: round(sequential["pool:1-node"].p50Ms - sequential["gateway:nginx"].p50Ms),
                  },
              }
            : {}),
    };
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}

if (process.argv[2] === STUB_FLAG) {
    void serveStub(process.argv[3], { tokens: Number(process.argv[4]), tokenIntervalMs: Number(process.argv[5]) });
} else {
    main().then(
        async () => {
            await supervisor.stopAll();
            process.exit(0);
        },
        async (e: Error) => {
            console.error(`bench:gateway: ${e.message}`);
            await supervisor.stopAll();
            process.exit(1);
        },
    );
}
