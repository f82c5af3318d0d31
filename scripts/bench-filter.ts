/**
 * `npm run bench:filter`: prints one JSON document with
 * - decisions/s and p50/p99 decision latency (the pure `decide()`: JSON parse, shape, bounds,
 *   allowlist, jailbreak, PII) for 1 KiB, 8 KiB and 64 KiB chat bodies, on this one thread;
 * - the jailbreak check alone (phrase rules and model) on 8 KiB of text;
 * - the worst time per rule on 1 MiB adversarial inputs (several crafted inputs per rule), and
 *   the worst full decision on a 1 MiB adversarial body;
 * - time to first token through filter -> stub Ollama vs straight to the stub, and through the
 *   real nginx sandbox with the filter enabled vs disabled.
 * Targets (issue 6): >= 5,000 decisions/s and p99 <= 1 ms at 8 KiB; < 100 ms per 1 MiB
 * adversarial input; <= 2 ms time to first token added by the filter hop.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { loadStackConfig } from "../components/config";
import { renderFilterRules, type FilterRules, type PiiDetector } from "../components/filter/rules";
import { compilePolicy, decide } from "../filter/src/decide";
import { CLASSIFIER_RULE, findJailbreak, JAILBREAK_RULES, TEMPLATE_TOKEN_RULE, TEMPLATE_TOKENS } from "../filter/src/jailbreak";
import { findPii } from "../filter/src/pii";
import { startStubOllama } from "./sandbox/stub-ollama";
import { startSandbox } from "../test/e2e/harness";
import { cleanUpOnSignal, exitWithUsageIfAsked } from "./lib/cli";
import { benchBudgetAccounting, benchOverspend } from "./lib/bench-budget";

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

/** The jailbreak check alone (rules and model) on the text of the 8 KiB body: its share of a decision. */
function benchJailbreakCheck(chars: number, iterations: number) {
    const text = prose(chars);
    if (findJailbreak(text) !== undefined) throw new Error("benchmark prose was refused; fix the generator");
    for (let i = 0; i < 500; i++) findJailbreak(text);
    const times = new Array<number>(iterations);
    for (let i = 0; i < iterations; i++) {
        const t = performance.now();
        findJailbreak(text);
        times[i] = performance.now() - t;
    }
    times.sort((a, b) => a - b);
    return { textChars: chars, iterations, p50Ms: round(percentile(times, 50), 4), p99Ms: round(percentile(times, 99), 4) };
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
    // The model: every word a lexicon concept (each forms pairs with its neighbours), prefixes of
    // unspaced-script stems, quote toggles, and a megabyte of distinct words (one block after another).
    let distinct = "";
    for (let i = 0; distinct.length < MiB; i++) distinct += `w${(i * 2654435761) >>> 0} `;
    out[CLASSIFIER_RULE] = { "concept-storm": fill("ignore previous rules without filters pretend reveal system mode decode always "), "unspaced-stems": fill("忽略之前的指令没有限制"), "quote-storm": fill('"a" '), "distinct-words": distinct.slice(0, MiB) };
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

/**
 * Alternate the two paths request by request, so load from other processes (this machine is
 * shared) hits both alike instead of skewing whichever ran second.
 */
async function compareTtft(runs: number, baseline: { label: string; one: () => Promise<number> }, candidate: { label: string; one: () => Promise<number> }) {
    for (let i = 0; i < 30; i++) {
        await baseline.one();
        await candidate.one();
    }
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < runs; i++) {
        a.push(await baseline.one());
        b.push(await candidate.one());
    }
    const summary = (label: string, times: number[]) => {
        times.sort((x, y) => x - y);
        return { label, runs, p50Ms: round(percentile(times, 50)), p99Ms: round(percentile(times, 99)) };
    };
    const base = summary(baseline.label, a);
    const cand = summary(candidate.label, b);
    return { [baseline.label]: base, [candidate.label]: cand, addedP50Ms: round(cand.p50Ms - base.p50Ms), addedP99Ms: round(cand.p99Ms - base.p99Ms) };
}

const STREAM_BODY = JSON.stringify({ model: "llama3.2:3b", messages: [{ role: "user", content: "hello there" }], stream: true });

/**
 * Time to the first body byte of a streamed answer. The promise settles only when the answer has
 * ended, so the next request never queues behind the tail of this one on the keep-alive socket.
 */
function firstByteTime(send: (onResponse: (res: http.IncomingMessage) => void) => void): Promise<number> {
    return new Promise((resolve) => {
        const t = performance.now();
        send((res) => {
            let first = -1;
            res.on("data", () => {
                if (first < 0) first = performance.now() - t;
            });
            res.on("end", () => resolve(first));
        });
    });
}

function httpTtft(base: string, agent: http.Agent): Promise<number> {
    return firstByteTime((onResponse) => http.request(base + "/api/chat", { method: "POST", agent, headers: { "content-type": "application/json" } }, onResponse).end(STREAM_BODY));
}

/** Child-process mode: serve a stub Ollama and print its URL (the bench then runs it out of process). */
const STUB_FLAG = "--serve-stub-ollama";

/** Processes and temp dirs this bench started, stopped and removed on exit (a signal included). */
const started = new Set<ChildProcess>();
const tempDirs: string[] = [];
function stopStarted(): void {
    for (const c of started) c.kill("SIGTERM");
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

/** Start `argv` with tsx and resolve the first stdout line matching `ready`. */
function spawnReady(args: string[], ready: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
    const child = spawn(process.execPath, ["--import", "tsx", ...args], { stdio: ["ignore", "pipe", "inherit"] });
    started.add(child);
    child.once("exit", () => started.delete(child));
    return new Promise((resolve, reject) => {
        let out = "";
        const onData = (d: Buffer) => {
            out += d.toString();
            const m = ready.exec(out);
            if (m) {
                child.stdout!.off("data", onData);
                child.stdout!.resume(); // audit lines keep coming; never let the pipe fill
                resolve({ child, match: m });
            }
        };
        child.stdout!.on("data", onData);
        child.on("exit", (code) => reject(new Error(`${args[0]} exited with ${code} before it was ready`)));
    });
}

/**
 * Filter hop as deployed: the stub Ollama and the filter (its CLI) each in their own process, as
 * in the sandbox, so both paths pay for crossing processes and the difference is the hop itself.
 */
async function benchFilterHop(runs: number) {
    const dir = mkdtempSync(join(tmpdir(), "zto-bench-"));
    tempDirs.push(dir);
    const rulesFile = join(dir, "rules.json");
    writeFileSync(rulesFile, JSON.stringify(rules));
    const stub = await spawnReady([__filename, STUB_FLAG, dir], /^stub (http:\/\/\S+)$/m);
    const stubUrl = stub.match[1]!;
    const filter = await spawnReady([join(__dirname, "..", "filter", "src", "main.ts"), "--rules", rulesFile, "--listen", "127.0.0.1:0", "--upstream", stubUrl], /^listening (127\.0\.0\.1:\d+)$/m);
    const filterUrl = `http://${filter.match[1]}`;
    const directAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const filterAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
        return await compareTtft(runs, { label: "direct to stub Ollama", one: () => httpTtft(stubUrl, directAgent) }, { label: "filter -> stub Ollama", one: () => httpTtft(filterUrl, filterAgent) });
    } finally {
        directAgent.destroy();
        filterAgent.destroy();
        filter.child.kill("SIGTERM");
        stub.child.kill("SIGTERM");
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
    const path = (sb: typeof withFilter, label: string) => {
        const device = sb.info.devices["bench-laptop"]!;
        const url = new URL(sb.info.url);
        const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(sb.info.ca), cert: readFileSync(device.cert), key: readFileSync(device.key) });
        const one = () => firstByteTime((onResponse) => https.request({ host: url.hostname, port: Number(url.port), path: "/api/chat", method: "POST", agent, headers: { "content-type": "application/json" } }, onResponse).end(STREAM_BODY));
        return { label, one, agent };
    };
    const plain = path(without, "nginx -> stub Ollama");
    const filtered = path(withFilter, "nginx -> filter -> stub Ollama");
    try {
        return await compareTtft(runs, plain, filtered);
    } finally {
        plain.agent.destroy();
        filtered.agent.destroy();
        await Promise.all([withFilter.stop(), without.stop()]);
    }
}

const USAGE = `usage: npm run bench:filter [-- --accounting]
  Measures the prompt filter's decision throughput and latency, ReDoS worst cases and the time
  to first token it adds (filter hop and through the nginx sandbox), and prints one JSON
  document. --accounting measures only the budget accounting (and its targets), in about a
  minute. Targets 127.0.0.1 only. Ctrl-C stops every process it started.`;

async function benchBudgets() {
    return {
        accounting8KiB: await benchBudgetAccounting(policy, rules, chatBody(8 * 1024), 5000, 1),
        accounting8KiB16PerTurn: await benchBudgetAccounting(policy, rules, chatBody(8 * 1024), 5000, 16),
        overspend50x10: await benchOverspend(rules),
    };
}

function budgetTargets(budgets: Awaited<ReturnType<typeof benchBudgets>>) {
    return {
        "budgetAccountingCost<=10%": budgets.accounting8KiB.accountingCostPercent <= 10,
        "budgetAddedP99<=0.3ms": budgets.accounting8KiB.addedP99Ms <= 0.3,
        "budgetAccountingCost16PerTurn<=10%": budgets.accounting8KiB16PerTurn.accountingCostPercent <= 10,
        "budgetAddedP99At16PerTurn<=0.3ms": budgets.accounting8KiB16PerTurn.addedP99Ms <= 0.3,
        "budgetNoOverspend": !budgets.overspend50x10.overspent,
    };
}

/** `--accounting`: the budget figures alone, for comparing ledger changes back to back. */
async function mainAccounting(): Promise<void> {
    const loadAvgAtStart = loadavg().map((x) => round(x, 2));
    const budgets = await benchBudgets();
    const report = { node: process.version, loadAverageAtStart: loadAvgAtStart, loadAverageAtEnd: loadavg().map((x) => round(x, 2)), budgets, targets: budgetTargets(budgets) };
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}

async function main(): Promise<void> {
    const loadAvgAtStart = loadavg().map((x) => round(x, 2));
    const decisions = { "1KiB": benchDecisions(1024, 20000), "8KiB": benchDecisions(8 * 1024, 10000), "64KiB": benchDecisions(64 * 1024, 1000) };
    const jailbreakCheck8KiB = benchJailbreakCheck(8 * 1024 - 100, 5000);
    const budgets = await benchBudgets();
    const adversarial = benchAdversarial();
    const filterHop = await benchFilterHop(300);
    const gatewayPath = await benchGatewayPath(200);
    const eight = decisions["8KiB"];
    const report = {
        node: process.version,
        // Other work on the machine inflates wall-clock latencies; read p99s with this in mind.
        loadAverageAtStart: loadAvgAtStart,
        decisions,
        jailbreakCheck8KiB,
        adversarial1MiB: adversarial,
        ttft: { filterHop, gatewayPath },
        budgets,
        targets: {
            "decisionsPerSecond8KiB>=5000": eight.decisionsPerSecondCpu >= 5000,
            "p99At8KiB<=1ms": eight.p99Ms <= 1,
            "cpuP99At8KiB<=1ms": eight.cpuP99Ms <= 1,
            "adversarial1MiB<100ms": adversarial.worstRuleCpuMs < 100,
            "filterHopAddedTtftP50<=2ms": filterHop.addedP50Ms <= 2,
            ...budgetTargets(budgets),
        },
    };
    process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}

if (process.argv[2] === STUB_FLAG) {
    void startStubOllama({ logFile: join(process.argv[3]!, "ollama.log"), tokenIntervalMs: 0, tokens: 4 }).then((s) => process.stdout.write(`stub ${s.url}\n`));
    process.on("SIGTERM", () => process.exit(0));
} else {
    const args = process.argv.slice(2);
    exitWithUsageIfAsked(args, USAGE);
    const unknown = args.find((a) => a !== "--accounting");
    if (unknown !== undefined) {
        process.stderr.write(`bench-filter: unknown argument ${JSON.stringify(unknown)}\n${USAGE}\n`);
        process.exit(2);
    }
    // The e2e harness's own exit handler stops the sandboxes it started.
    process.on("exit", stopStarted);
    cleanUpOnSignal("bench:filter", stopStarted);
    (args.includes("--accounting") ? mainAccounting() : main()).then(stopStarted, (e: Error) => {
        process.stderr.write(`bench-filter: ${e.message}\n`);
        process.exit(1);
    });
}
