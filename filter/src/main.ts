/**
 * Filter entry point.
 *   tsx filter/src/main.ts --rules <rules.json> --listen <host:port> --upstream http://<host:port> [--audit-log <file>] [--budget-store <file>] [--workers <n>]
 * Prints exactly one stdout line `listening <host>:<port>` when ready (port 0 picks a free
 * port); after that stdout carries only audit events, one JSON object per line.
 * `--workers` (default: one per core, os.availableParallelism()) HTTP processes share the listen
 * socket (node:cluster); the budget ledger stays in the one primary process (see workers.ts).
 */
import cluster from "node:cluster";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseFilterRules, type FilterRules } from "../../components/filter/rules";
import { AuditSink } from "./audit";
import { BudgetLedger } from "./budget/ledger";
import { BudgetStore } from "./budget/store";
import type { BudgetService } from "./budget/gate";
import { createFilterServer } from "./server";
import { parseSyslogAddress, SyslogClient } from "./syslog";
import { isFilterMessage, PrimaryBudgets, runPrimary, send, type ToWorker } from "./workers";

const LISTEN_BACKLOG = 4096;

const USAGE = "usage: main.ts --rules <rules.json> --listen <host:port> --upstream http://<host:port> [--audit-log <file>] [--budget-store <file>] [--workers <n>]";
/** More HTTP processes than this is a typo, not a machine. */
const MAX_WORKERS = 256;

export interface CliArgs {
    readonly rules: string;
    readonly listen: { host: string; port: number };
    readonly upstream: URL;
    readonly auditLog?: string;
    /** SQLite file of the token budget ledger (required when the rules set budgets). */
    readonly budgetStore?: string;
    /** HTTP processes; 1 serves in this process (no cluster). */
    readonly workers: number;
}

export function parseArgs(argv: readonly string[]): CliArgs {
    const values = new Map<string, string>();
    for (let i = 0; i < argv.length; i += 2) {
        const flag = argv[i]!;
        if (!["--rules", "--listen", "--upstream", "--audit-log", "--budget-store", "--workers"].includes(flag)) throw new Error(`unknown argument "${flag}"\n${USAGE}`);
        const value = argv[i + 1];
        if (value === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
        values.set(flag, value);
    }
    for (const required of ["--rules", "--listen", "--upstream"]) if (!values.has(required)) throw new Error(`${required} is required\n${USAGE}`);
    const listen = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(values.get("--listen")!);
    if (!listen || Number(listen[2]) > 65535) throw new Error(`--listen must be host:port (got "${values.get("--listen")}")`);
    let upstream: URL;
    try {
        upstream = new URL(values.get("--upstream")!);
    } catch {
        throw new Error(`--upstream must be an http:// URL (got "${values.get("--upstream")}")`);
    }
    if (upstream.protocol !== "http:" || upstream.pathname !== "/" || upstream.search) throw new Error(`--upstream must be http://host:port with no path (got "${values.get("--upstream")}")`);
    const workers = values.get("--workers") ?? String(availableParallelism());
    if (!/^[1-9]\d{0,2}$/.test(workers) || Number(workers) > MAX_WORKERS) throw new Error(`--workers must be a whole number from 1 to ${MAX_WORKERS} (got "${workers}")`);
    return { rules: values.get("--rules")!, listen: { host: listen[1]!.replace(/^\[|\]$/g, ""), port: Number(listen[2]) }, upstream, auditLog: values.get("--audit-log"), budgetStore: values.get("--budget-store"), workers: Number(workers) };
}

function openAudit(rules: FilterRules, args: CliArgs): { audit: AuditSink; syslog?: SyslogClient } {
    const syslog = rules.audit.syslogAddress ? new SyslogClient(parseSyslogAddress(rules.audit.syslogAddress)) : undefined;
    return { audit: new AuditSink({ stdout: true, file: args.auditLog, syslog, appName: rules.audit.appName }), syslog };
}

/** Serve HTTP in this process; returns how to stop (listener closed, every request audited and settled). */
function serve(args: CliArgs, rules: FilterRules, budgets: BudgetService | undefined, port: number, onListening: (host: string, port: number) => void): () => Promise<void> {
    const { audit, syslog } = openAudit(rules, args);
    const { server, close } = createFilterServer({ rules, upstream: args.upstream, audit, budgets });
    server.on("error", (e) => {
        process.stderr.write(`zto-filter: cannot listen on ${args.listen.host}:${args.listen.port}: ${e.message}\n`);
        process.exit(2);
    });
    // Every stream the gateway opens at once is a new connection here (its keep-alive pool is small);
    // Node's default accept queue (511) overflows in a burst of thousands and the gateway then sees
    // resets and connect timeouts. The kernel caps this at net.core.somaxconn (4096 in a container's
    // network namespace on current kernels). With workers the primary's shared socket gets it.
    server.listen({ port, host: args.listen.host, backlog: LISTEN_BACKLOG }, () => {
        const addr = server.address();
        if (addr && typeof addr === "object") onListening(addr.family === "IPv6" ? `[${addr.address}]` : addr.address, addr.port);
    });
    return () => close().then(() => syslog?.close());
}

const announce = (host: string, port: number) => process.stdout.write(`listening ${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}\n`);

function onStopSignal(stop: () => void): void {
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
}

async function main(): Promise<void> {
    const args = parseArgs(process.argv.slice(2));
    if (cluster.isWorker) return runWorker(args);
    const rulesText = readFileSync(args.rules, "utf8");
    const rules = parseFilterRules(rulesText);
    if (Object.keys(rules.budgets.groups).length && !args.budgetStore) throw new Error("the rules set token budgets: --budget-store <file> is required (budgets are never kept in memory only)");
    const store = args.budgetStore ? BudgetStore.open(args.budgetStore) : undefined;
    if (store?.recoveredOpen) process.stderr.write(`zto-filter: ${store.recoveredOpen} request(s) open at the last stop counted at their full reservation\n`);
    const ledger = store ? new BudgetLedger(rules.budgets, store) : undefined;
    if (args.workers === 1) {
        const stop = serve(args, rules, ledger, args.listen.port, announce);
        return onStopSignal(() => void stop().then(() => store?.close()).finally(() => process.exit(0)));
    }
    const primary = runPrimary({
        workers: args.workers,
        rulesText,
        rules,
        listen: args.listen,
        ledger,
        ready: announce,
        fatal: (message) => {
            process.stderr.write(`zto-filter: ${message}\n`);
            void primary.drain().then(() => store?.close()).finally(() => process.exit(2));
        },
        log: (line) => process.stderr.write(line + "\n"),
    });
    onStopSignal(() => void primary.drain().then(() => store?.close()).finally(() => process.exit(0)));
}

/** A worker: waits for the primary's rules, serves, asks the primary's ledger, stops when told (or signalled). */
function runWorker(args: CliArgs): void {
    let budgets: PrimaryBudgets | undefined;
    let stop: (() => Promise<void>) | undefined;
    const exit = () => {
        if (!stop) process.exit(0);
        const closing = stop;
        stop = undefined;
        // Exit once the last settlement is on the channel (messages are written in order).
        void closing().finally(() => send({ zto: "stopped" }, () => process.exit(0)));
    };
    process.on("message", (m: unknown) => {
        if (!isFilterMessage(m)) return;
        const message = m as ToWorker;
        switch (message.zto) {
            case "start": {
                const rules = parseFilterRules(message.rulesText);
                budgets = message.budgets ? new PrimaryBudgets(rules.budgets) : undefined;
                stop = serve(args, rules, budgets, message.port, () => undefined);
                return;
            }
            case "reply":
                return budgets?.answer(message);
            case "drain":
                return exit();
            default:
                // A primary of another build: this worker cannot know what it was asked, so it stops.
                process.stderr.write(`zto-filter: the primary sent an unknown message ${JSON.stringify((message satisfies never as { zto: string }).zto)}\n`);
                process.exit(2);
        }
    });
    onStopSignal(exit);
    send({ zto: "hello" });
}

if (require.main === module) {
    main().catch((e: Error) => {
        process.stderr.write(`zto-filter: ${e.message}\n`);
        process.exit(2);
    });
}
