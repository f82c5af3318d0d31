/**
 * `npm run usage -- --store <budgets.db> [--since YYYY-MM-DD] [--html <out.html>]`
 *
 * Tokens per user, group and model per day (UTC) from the filter's budget ledger, as a table on
 * stdout; `--html` also writes a self-contained report with a bar chart per user and per model.
 * The store is opened read-only (a copy taken from the filter's volume, or the sandbox's
 * `<state>/filter-budgets.db`). Exit 0 on success, 2 on bad input (message names it).
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { BudgetStore } from "../filter/src/budget/store";
import { exitWithUsageIfAsked, fromUserCwd } from "./lib/cli";
import { usageHtml, usageLines, usageTable } from "./lib/usage-report";

const USAGE = `usage: npm run usage -- --store <budgets.db> [--since YYYY-MM-DD] [--html <out.html>]
  --store <file>   the filter's budget ledger (SQLite; its marker <file>.id must be beside it)
  --since <date>   only requests admitted on or after this UTC day (default: all)
  --html <file>    also write a self-contained HTML report (no network, no scripts)
Exit codes: 0 success, 2 invalid input.`;

function main(argv: string[]): void {
    exitWithUsageIfAsked(argv, USAGE);
    const { values } = parseArgs({ args: argv, options: { store: { type: "string" }, since: { type: "string" }, html: { type: "string" } }, strict: true, allowPositionals: false });
    if (!values.store) throw new Error(`--store is required\n${USAGE}`);
    let since = 0;
    if (values.since !== undefined) {
        since = /^\d{4}-\d\d-\d\d$/.test(values.since) ? Date.parse(`${values.since}T00:00:00Z`) : NaN;
        if (Number.isNaN(since)) throw new Error(`--since must be a day like 2026-01-31 (got "${values.since}")`);
    }
    const store = BudgetStore.open(fromUserCwd(values.store), { readOnly: true });
    try {
        const rows = store.usageSince(since);
        process.stdout.write(usageTable(usageLines(rows)));
        if (values.html) writeFileSync(fromUserCwd(values.html), usageHtml(rows, new Date()));
    } finally {
        store.close();
    }
}

try {
    main(process.argv.slice(2));
} catch (e) {
    process.stderr.write(`npm run usage: ${(e as Error).message}\n`);
    process.exit(2);
}
