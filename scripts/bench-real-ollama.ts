/**
 * `npm run bench:real-ollama [-- --kinds nginx,haproxy] [--runs 30] [--ollama <binary>]`
 *
 * Time to first token (TTFT) of the real Ollama (the pinned binary, the tests' tiny model, CPU)
 * reached directly versus through each gateway kind with the filter, in one sandbox per kind on
 * 127.0.0.1. Each run is one streamed /api/generate (4 tokens) over a kept-alive connection; the
 * runs alternate direct and gateway so machine load hits both alike. TTFT is from writing the
 * request to the first body bytes holding a token. Prints one JSON document: p50/p90 per path
 * and the gateway's added p50.
 */
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadStackConfig } from "../components/config";
import { startSandbox, type RunningSandbox } from "./sandbox/run";
import { TINY_MODEL } from "./sandbox/real-ollama";
import { toolPath } from "./lib/tools";

const BODY = JSON.stringify({ model: TINY_MODEL, prompt: "hello", options: { num_predict: 4 } });
const WARMUP = 3;

interface Target {
    readonly url: URL;
    readonly tls?: { ca: Buffer; cert: Buffer; key: Buffer };
    readonly agent: HttpAgent;
}

/** ms from sending the request to the first body bytes that carry a token. */
function ttft(t: Target): Promise<number> {
    return new Promise((done, fail) => {
        const send = t.tls ? httpsRequest : httpRequest;
        const started = performance.now();
        let first: number | undefined;
        const req = send(
            t.url,
            { method: "POST", agent: t.agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(BODY) }, ...(t.tls ?? {}), timeout: 60_000 },
            (res) => {
                if (res.statusCode !== 200) fail(new Error(`${t.url.host}: HTTP ${res.statusCode}`));
                res.on("data", (b: Buffer) => {
                    if (first === undefined && b.toString().includes('"response":"')) first = performance.now() - started;
                });
                res.on("end", () => (first === undefined ? fail(new Error(`${t.url.host}: no token`)) : done(first)));
            },
        );
        req.on("timeout", () => req.destroy(new Error("no answer within 60 s")));
        req.on("error", fail);
        req.end(BODY);
    });
}

const percentile = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return Number(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2));
};

async function measureKind(kind: "nginx" | "haproxy", runs: number, ollama: string): Promise<Record<string, unknown>> {
    const stateDir = mkdtempSync(join(tmpdir(), `zto-bench-real-${kind}-`));
    const cfg = loadStackConfig({
        domain: "ollama.localhost",
        devices: [{ name: "bench", owner: "bench@example.com" }],
        gateway: { kind, rateLimitPerMinute: 100000, burst: 1000 },
        identity: { provider: "none" },
        ollama: { gpus: "none" },
        filter: { enabled: true, modelsByGroup: { "*": [TINY_MODEL] } },
    });
    let sb: RunningSandbox | undefined;
    try {
        sb = await startSandbox(cfg, { stateDir, ollama });
        const d = sb.info.devices.bench;
        const direct: Target = { url: new URL(`${sb.info.ollama}/api/generate`), agent: new HttpAgent({ keepAlive: true, maxSockets: 1 }) };
        const gateway: Target = {
            url: new URL(`${sb.info.url}/api/generate`),
            tls: { ca: readFileSync(sb.info.ca), cert: readFileSync(d.cert), key: readFileSync(d.key) },
            agent: new HttpsAgent({ keepAlive: true, maxSockets: 1 }),
        };
        for (let i = 0; i < WARMUP; i++) {
            await ttft(direct);
            await ttft(gateway);
        }
        const times = { direct: [] as number[], gateway: [] as number[] };
        for (let i = 0; i < runs; i++) {
            times.direct.push(await ttft(direct));
            times.gateway.push(await ttft(gateway));
        }
        direct.agent.destroy();
        gateway.agent.destroy();
        const summary = (xs: number[]) => ({ p50Ms: percentile(xs, 50), p90Ms: percentile(xs, 90), minMs: percentile(xs, 0) });
        return {
            direct: summary(times.direct),
            gatewayAndFilter: summary(times.gateway),
            addedP50Ms: Number((percentile(times.gateway, 50) - percentile(times.direct, 50)).toFixed(2)),
        };
    } finally {
        await sb?.stop();
        rmSync(stateDir, { recursive: true, force: true });
    }
}

const USAGE = "usage: npm run bench:real-ollama [-- --kinds nginx,haproxy] [--runs 30] [--ollama <binary>]";

async function main(): Promise<void> {
    const { values } = parseArgs({ options: { kinds: { type: "string", default: "nginx,haproxy" }, runs: { type: "string", default: "30" }, ollama: { type: "string" }, help: { type: "boolean" } }, strict: true });
    if (values.help) {
        process.stdout.write(USAGE + "\n");
        return;
    }
    const kinds = values.kinds!.split(",");
    for (const k of kinds) if (k !== "nginx" && k !== "haproxy") throw new Error(`--kinds: unknown gateway kind "${k}" (nginx, haproxy)`);
    const runs = Number(values.runs);
    if (!Number.isInteger(runs) || runs < 5) throw new Error(`--runs must be a whole number >= 5 (got "${values.runs}")`);
    const ollama = values.ollama ?? toolPath("ollama");
    const out: Record<string, unknown> = { ollama, model: TINY_MODEL, runs, tokensPerAnswer: 4 };
    for (const k of kinds as ("nginx" | "haproxy")[]) out[k] = await measureKind(k, runs, ollama);
    process.stdout.write(JSON.stringify(out, null, 2) + "\n");
}

main().catch((e: unknown) => {
    process.stderr.write(`bench:real-ollama: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
});
