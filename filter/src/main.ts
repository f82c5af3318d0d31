/**
 * Filter entry point.
 *   tsx filter/src/main.ts --rules <rules.json> --listen <host:port> --upstream http://<host:port> [--audit-log <file>] [--budget-store <file>]
 * Prints exactly one stdout line `listening <host>:<port>` when ready (port 0 picks a free
 * port); after that stdout carries only audit events, one JSON object per line.
 */
import { readFileSync } from "node:fs";
import { parseFilterRules } from "../../components/filter/rules";
import { AuditSink } from "./audit";
import { BudgetLedger } from "./budget/ledger";
import { BudgetStore } from "./budget/store";
import { createFilterServer } from "./server";
import { parseSyslogAddress, SyslogClient } from "./syslog";

const LISTEN_BACKLOG = 4096;

const USAGE = "usage: main.ts --rules <rules.json> --listen <host:port> --upstream http://<host:port> [--audit-log <file>] [--budget-store <file>]";

export interface CliArgs {
    readonly rules: string;
    readonly listen: { host: string; port: number };
    readonly upstream: URL;
    readonly auditLog?: string;
    /** SQLite file of the token budget ledger (required when the rules set budgets). */
    readonly budgetStore?: string;
}

export function parseArgs(argv: readonly string[]): CliArgs {
    const values = new Map<string, string>();
    for (let i = 0; i < argv.length; i += 2) {
        const flag = argv[i]!;
        if (!["--rules", "--listen", "--upstream", "--audit-log", "--budget-store"].includes(flag)) throw new Error(`unknown argument "${flag}"\n${USAGE}`);
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
    return { rules: values.get("--rules")!, listen: { host: listen[1]!.replace(/^\[|\]$/g, ""), port: Number(listen[2]) }, upstream, auditLog: values.get("--audit-log"), budgetStore: values.get("--budget-store") };
}

async function main(): Promise<void> {
    const args = parseArgs(process.argv.slice(2));
    const rules = parseFilterRules(readFileSync(args.rules, "utf8"));
    const syslog = rules.audit.syslogAddress ? new SyslogClient(parseSyslogAddress(rules.audit.syslogAddress)) : undefined;
    const audit = new AuditSink({ stdout: true, file: args.auditLog, syslog, appName: rules.audit.appName });
    if (Object.keys(rules.budgets.groups).length && !args.budgetStore) throw new Error("the rules set token budgets: --budget-store <file> is required (budgets are never kept in memory only)");
    const store = args.budgetStore ? BudgetStore.open(args.budgetStore) : undefined;
    if (store?.recoveredOpen) process.stderr.write(`zto-filter: ${store.recoveredOpen} request(s) open at the last stop counted at their full reservation\n`);
    const budgets = store ? new BudgetLedger(rules.budgets, store) : undefined;
    const { server, close } = createFilterServer({ rules, upstream: args.upstream, audit, budgets });
    server.on("error", (e) => {
        process.stderr.write(`zto-filter: cannot listen on ${args.listen.host}:${args.listen.port}: ${e.message}\n`);
        process.exit(2);
    });
    // Every stream the gateway opens at once is a new connection here (its keep-alive pool is small);
    // Node's default accept queue (511) overflows in a burst of thousands and the gateway then sees
    // resets and connect timeouts. The kernel caps this at net.core.somaxconn (4096 in a container's
    // network namespace on current kernels).
    server.listen({ port: args.listen.port, host: args.listen.host, backlog: LISTEN_BACKLOG }, () => {
        const addr = server.address();
        if (addr && typeof addr === "object") {
            const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
            process.stdout.write(`listening ${host}:${addr.port}\n`);
        }
    });
    const stop = () => {
        void close()
            .then(() => store?.close())
            .then(() => syslog?.close()).finally(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

if (require.main === module) {
    main().catch((e: Error) => {
        process.stderr.write(`zto-filter: ${e.message}\n`);
        process.exit(2);
    });
}
