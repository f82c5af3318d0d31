/**
 * `npm run bench:filter`: prints one JSON document with
 * - decisions/s and p50/p99 decision latency (the pure `decide()`: JSON parse, shape, bounds,
 *   allowlist, jailbreak, PII) for 1 KiB, 8 KiB and 64 KiB chat bodies, on this one thread;
 * - the worst time per rule on 1 MiB adversarial inputs (several crafted inputs per rule), and
 *   the worst full decision on a 1 MiB adversarial body;
 * - time to first token through filter -> stub Ollama vs straight to the stub, and through the
 *   real nginx sandbox with the filter enabled vs disabled.
 * Targets (issue 6): >= 5,000 decisions/s and p99 <= 1 ms at 8 KiB; < 100 ms per 1 MiB
 * adversarial input; <= 2 ms time to first token added by the filter hop.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { loadStackConfig } from "../components/config";
import { renderFilterRules, type FilterRules, type PiiDetector } from "../components/filter/rules";
import { AuditSink } from "../filter/src/audit";
import { compilePolicy, decide } from "../filter/src/decide";
import { findJailbreak, JAILBREAK_RULES, TEMPLATE_TOKEN_RULE, TEMPLATE_TOKENS } from "../filter/src/jailbreak";
import { findPii } from "../filter/src/pii";
import { createFilterServer } from "../filter/src/server";
import { startStubOllama } from "./sandbox/stub-ollama";
import { startSandbox } from "../test/e2e/harness";

const MiB = 1024 * 1024;

function percentile(sorted: number[], p: number): number {
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const round = (x: number, digits = 3) => Number(x.toFixed(digits));

const rules: FilterRules = (() => {
    const r = renderFilterRules(loadStackConfig({ domain: "bench.internal", filter: { pii: "block", jailbreak: "block", maxPromptChars: 10_000_000, maxMessages: 10000 } }));
    return { ...r, limits: { ...r.limits, maxBodyBytes: 8 * MiB } };
})();
const policy = compilePolicy(rules);

/** English-like prose with numbers that are not PII (versions, dates, amounts), deterministic. */
function prose(chars: number): string {
    const words = ["the", "model", "should", "summarise", "this", "report", "about", "quarterly", "revenue", "growth", "in", "region", "north", "and", "compare", "it", "with", "version", "2.4.1", "released", "on", "2024-03-15", "costs", "rose", "by", "12.5%", "to", "$1,250", "while", "latency", "fell", "under", "load", "please", "explain", "why", "kubernetes", "pods", "restart", "after", "deploy"];
    let out = "";
    let seed = 7;
    while (out.length < chars) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        out += words[seed % words.length] + (seed % 11 === 0 ? ". " : " ");
    }
    return out.slice(0, chars);
}

function chatBody(bytes: number): Buffer {
    const overhead = JSON.stringify({ model: "llama3.2:3b", messages: [{ role: "system", content: "" }, { role: "user", content: "" }] }).length;
    const text = prose(bytes - overhead);
    const system = text.slice(0, 200);
    return Buffer.from(JSON.stringify({ model: "llama3.2:3b", messages: [{ role: "system", content: system }, { role: "user", content: text.slice(200) }] }));
}

function benchDecisions(bytes: number, iterations: number) {
    const body = chatBody(bytes);
    const req = { method: "POST", path: "/api/chat", identity: { groups: ["staff"] }, body };
    if (decide(policy, req).action !== "forward") throw new Error(`benchmark body of ${bytes} bytes was refused; fix the generator`);
    for (let i = 0; i < Math.min(iterations, 500); i++) decide(policy, req);
    const times = new Array<number>(iterations);
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    for (let i = 0; i < iterations; i++) {
        const t = performance.now();
        decide(policy, req);
        times[i] = performance.now() - t;
    }
    const wallMs = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    times.sort((a, b) => a - b);
    // Per-decision CPU time (getrusage, microsecond resolution): unlike the wall-clock percentiles
    // it does not count time slices other processes got while a decision was running.
    const cpuTimes = new Array<number>(Math.min(iterations, 2000));
    for (let i = 0; i < cpuTimes.length; i++) {
        const c = process.cpuUsage();
        decide(policy, req);
        const d = process.cpuUsage(c);
        cpuTimes[i] = (d.user + d.system) / 1000;
    }
    cpuTimes.sort((a, b) => a - b);
    return {
        bodyBytes: body.length,
        iterations,
        // CPU time of this single thread: "per core" even when other processes compete for the CPU.
        decisionsPerSecondCpu: Math.round(iterations / (cpuMs / 1000)),
        decisionsPerSecondWall: Math.round(iterations / (wallMs / 1000)),
        p50Ms: round(percentile(times, 50), 4),
        p99Ms: round(percentile(times, 99), 4),
        cpuP50Ms: round(percentile(cpuTimes, 50), 4),
        cpuP99Ms: round(percentile(cpuTimes, 99), 4),
    };
}

const fill = (unit: string, size = MiB) => unit.repeat(Math.ceil(size / unit.length)).slice(0, size);

/** Inputs crafted to make each detector do the most work per byte (near misses, long runs). */
const PII_ADVERSARIAL: Record<PiiDetector, Record<string, string>> = {
    email: { "local-runs": fill("a".repeat(63) + "@"), "at-storm": fill("@"), "dotted-domain": fill("a@" + "b.".repeat(60) + " "), "no-tld": fill("x@y-y-y-y-y "), "single-at-long-domain": "a@" + fill("b", MiB - 2) },
    phone: { "plus-digits": fill("+1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 "), "nanp-near-miss": fill("(555) 123-456 "), "plus-storm": fill("+"), "digit-run": fill("5") },
    "payment-card": { "digit-space": fill("4 "), "near-luhn": fill("4111 1111 1111 111 "), "long-run": fill("4"), "dash-groups": fill("4111-") },
    iban: { "prefix-storm": fill("DE89 "), "near-miss": fill("DE89 3704 0044 0532 0130 0 "), "long-alnum": "DE89" + fill("A", MiB - 4), "grouped-long": fill("GB82 WEST 1234 5698 7654 32X ") },
    "us-ssn": { "near-miss": fill("123-45-678 "), "dash-digits": fill("1-"), "digit-run": fill("1") },
    "aws-access-key": { "prefix-storm": fill("AKIA"), "short-by-one": fill("AKIA" + "A".repeat(15) + " ") },
    "aws-secret-key": { "name-storm": fill("aws_secret_access_key="), "short-by-one": fill("aws secret key: " + "a".repeat(39) + " "), "word-storm": fill("aws ") },
    "github-token": { "prefix-storm": fill("ghp_"), "near-miss": fill("ghp_" + "a".repeat(35) + " "), "one-long-token": "ghp_" + fill("a", MiB - 4) },
    "slack-token": { "prefix-storm": fill("xoxb-"), "one-long-token": "xoxb-" + fill("a", MiB - 5), "webhook-storm": fill("https://hooks.slack.com/services/") },
    "private-key": { "begin-storm": fill("-----BEGIN "), "unterminated": fill("-----BEGIN PRIVATE KEY-----"), "dash-storm": fill("-"), "begin-cert-storm": fill("-----BEGIN CERTIFICATE-----\n") },
};

/** Per jailbreak rule: its trigger words repeated (every word starts a match attempt) and near misses. */
function jailbreakAdversarial(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const rule of JAILBREAK_RULES) {
        const entry = (out[rule.id] ??= {});
        const steps = rule.steps.map((s) => s.words[0]!);
        entry[`trigger-storm-${Object.keys(entry).length}`] = fill(steps[0] + " ");
        // All but the last step, repeated: every start walks its windows and fails at the end.
        entry[`near-miss-${Object.keys(entry).length}`] = fill(steps.slice(0, -1).join(" ") + " filler ");
    }
    out[TEMPLATE_TOKEN_RULE] = { "partial-tokens": fill(TEMPLATE_TOKENS.map((t) => t.slice(0, -1)).join(" ")), "angle-storm": fill("<|") };
    out["normalisation"] = { "non-ascii-words": fill("ｉｇｎｏｒｅ\u200b "), "invisible-storm": fill("\u200b") };
    return out;
}

/** CPU milliseconds of this thread for one call: wall clock would also count time other processes ran. */
function cpuMsOf(fn: () => unknown): number {
    const before = process.cpuUsage();
    fn();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1000;
}

function benchAdversarial() {
    const perRule: Record<string, { worstCpuMs: number; worstInput: string }> = {};
    const record = (rule: string, input: string, ms: number) => {
        if (!perRule[rule] || perRule[rule]!.worstCpuMs < ms) perRule[rule] = { worstCpuMs: round(ms, 2), worstInput: input };
    };
    for (const [detector, inputs] of Object.entries(PII_ADVERSARIAL) as [PiiDetector, Record<string, string>][]) {
        for (const [name, text] of Object.entries(inputs)) {
            findPii(text.slice(0, 1000), [detector]); // warm the code path, not the input
            record(`pii.${detector}`, name, cpuMsOf(() => findPii(text, [detector])));
        }
    }
    for (const [rule, inputs] of Object.entries(jailbreakAdversarial())) {
        for (const [name, text] of Object.entries(inputs)) record(rule, name, cpuMsOf(() => findJailbreak(text)));
    }
    // The whole decision (every rule) on a 1 MiB adversarial body, worst over all inputs above.
    let worstDecision = { cpuMs: 0, input: "" };
    const all = [...Object.entries(PII_ADVERSARIAL).flatMap(([d, inputs]) => Object.entries(inputs).map(([n, t]) => [`pii.${d}/${n}`, t] as const)), ...Object.entries(jailbreakAdversarial()).flatMap(([r, inputs]) => Object.entries(inputs).map(([n, t]) => [`${r}/${n}`, t] as const))];
    for (const [name, text] of all) {
        const body = Buffer.from(JSON.stringify({ model: "llama3.2:3b", messages: [{ role: "user", content: text }] }));
        const ms = cpuMsOf(() => decide(policy, { method: "POST", path: "/api/chat", identity: { groups: [] }, body }));
        if (ms > worstDecision.cpuMs) worstDecision = { cpuMs: round(ms, 2), input: name };
    }
    const worst = Math.max(...Object.values(perRule).map((r) => r.worstCpuMs));
    return { inputBytes: MiB, perRule, worstRuleCpuMs: worst, worstFullDecision: worstDecision };
}

/** Time from sending the request to the first body byte, over a keep-alive connection. */
function ttft(request: (done: (ms: number) => void) => void): Promise<number> {
    return new Promise((resolve) => request(resolve));
}

async function sampleTtft(label: string, runs: number, one: () => Promise<number>) {
    for (let i = 0; i < 30; i++) await one();
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(await one());
    times.sort((a, b) => a - b);
    return { label, runs, p50Ms: round(percentile(times, 50)), p99Ms: round(percentile(times, 99)) };
}

const STREAM_BODY = JSON.stringify({ model: "llama3.2:3b", messages: [{ role: "user", content: "hello there" }], stream: true });

function httpTtft(base: string, agent: http.Agent): Promise<number> {
    return ttft((done) => {
        const t = performance.now();
        const req = http.request(base + "/api/chat", { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
            let first = true;
            res.on("data", () => {
                if (first) done(performance.now() - t);
                first = false;
            });
            res.resume();
        });
        req.end(STREAM_BODY);
    });
}

async function benchFilterHop(runs: number) {
    const dir = mkdtempSync(join(tmpdir(), "zto-bench-"));
    const stub = await startStubOllama({ logFile: join(dir, "ollama.log"), tokenIntervalMs: 0, tokens: 4 });
    const { server, close } = createFilterServer({ rules, upstream: new URL(stub.url), audit: new AuditSink({ stdout: false, file: join(dir, "audit.log"), appName: "zto-filter" }) });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const filterUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
        const direct = await sampleTtft("direct to stub Ollama", runs, () => httpTtft(stub.url, agent));
        const viaFilter = await sampleTtft("filter -> stub Ollama", runs, () => httpTtft(filterUrl, agent));
        return { direct, viaFilter, addedP50Ms: round(viaFilter.p50Ms - direct.p50Ms), addedP99Ms: round(viaFilter.p99Ms - direct.p99Ms) };
    } finally {
        agent.destroy();
        await close();
        await stub.close();
    }
}

async function benchGatewayPath(runs: number) {
    const base = {
        domain: "ollama.test",
        devices: [{ name: "bench-laptop", owner: "bench@example.com", groups: [] }],
        gateway: { kind: "nginx", rateLimitPerMinute: 100000, burst: 10000 },
        identity: { provider: "none" },
        pki: { keyAlgorithm: "ECDSA-P256" },
    };
    const args = ["--token-interval-ms", "0", "--tokens", "4"];
    const [withFilter, without] = await Promise.all([
        startSandbox({ config: { ...base, filter: { enabled: true, modelsByGroup: { "*": ["llama3.2:3b"] } } }, extraArgs: args }),
        startSandbox({ config: { ...base, filter: { enabled: false } }, extraArgs: args }),
    ]);
    const measure = async (sb: typeof withFilter, label: string) => {
        const device = sb.info.devices["bench-laptop"]!;
        const url = new URL(sb.info.url);
        const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(sb.info.ca), cert: readFileSync(device.cert), key: readFileSync(device.key) });
        const one = () =>
            ttft((done) => {
                const t = performance.now();
                const req = https.request({ host: url.hostname, port: Number(url.port), path: "/api/chat", method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
                    let first = true;
                    res.on("data", () => {
                        if (first) done(performance.now() - t);
                        first = false;
                    });
                    res.resume();
                });
                req.end(STREAM_BODY);
            });
        try {
            return await sampleTtft(label, runs, one);
        } finally {
            agent.destroy();
        }
    };
    try {
        const noFilter = await measure(without, "nginx -> stub Ollama");
        const filtered = await measure(withFilter, "nginx -> filter -> stub Ollama");
        return { without: noFilter, with: filtered, addedP50Ms: round(filtered.p50Ms - noFilter.p50Ms), addedP99Ms: round(filtered.p99Ms - noFilter.p99Ms) };
    } finally {
        await Promise.all([withFilter.stop(), without.stop()]);
    }
}

async function main(): Promise<void> {
    const loadAvgAtStart = loadavg().map((x) => round(x, 2));
    const decisions = { "1KiB": benchDecisions(1024, 20000), "8KiB": benchDecisions(8 * 1024, 10000), "64KiB": benchDecisions(64 * 1024, 1000) };
    const adversarial = benchAdversarial();
    const filterHop = await benchFilterHop(300);
    const gatewayPath = await benchGatewayPath(200);
    const eight = decisions["8KiB"];
    const report = {
        node: process.version,
        // Other work on the machine inflates wall-clock latencies; read p99s with this in mind.
        loadAverageAtStart: loadAvgAtStart,
        decisions,
        adversarial1MiB: adversarial,
        ttft: { filterHop, gatewayPath },
        targets: {
            "decisionsPerSecond8KiB>=5000": eight.decisionsPerSecondCpu >= 5000,
            "p99At8KiB<=1ms": eight.p99Ms <= 1,
            "cpuP99At8KiB<=1ms": eight.cpuP99Ms <= 1,
            "adversarial1MiB<100ms": adversarial.worstRuleCpuMs < 100,
            "filterHopAddedTtftP50<=2ms": filterHop.addedP50Ms <= 2,
        },
    };
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}

main().catch((e: Error) => {
    process.stderr.write(`bench-filter: ${e.message}\n`);
    process.exit(1);
});
