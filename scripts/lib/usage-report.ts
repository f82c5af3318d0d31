/**
 * The operator's view of the budget ledger: tokens per user, group and model per day (UTC), as a
 * text table and as one self-contained HTML page (inline CSS and SVG bars; no script, no font,
 * no network). Pure functions of the ledger rows, so tests feed them hand-built rows.
 */
import type { UsageRow } from "../../filter/src/budget/store";

export interface UsageLine {
    readonly day: string;
    readonly user: string;
    readonly group: string;
    readonly model: string;
    readonly requests: number;
    readonly inputTokens: number;
    readonly outputTokens: number;
    /** Tokens charged against budgets (settled, or the full reservation for requests open at a crash). */
    readonly charged: number;
}

/** One line per day, user, group and model; a request counts for each of its groups ("-" without one). */
export function usageLines(rows: readonly UsageRow[]): UsageLine[] {
    const lines = new Map<string, { -readonly [K in keyof UsageLine]: UsageLine[K] }>();
    for (const r of rows) {
        const day = new Date(r.startedAt).toISOString().slice(0, 10);
        for (const group of r.groups.length ? r.groups : ["-"]) {
            const key = JSON.stringify([day, r.subject, group, r.model]);
            let l = lines.get(key);
            if (!l) lines.set(key, (l = { day, user: r.subject, group, model: r.model, requests: 0, inputTokens: 0, outputTokens: 0, charged: 0 }));
            l.requests++;
            l.inputTokens += r.inputTokens ?? 0;
            l.outputTokens += r.outputTokens ?? 0;
            l.charged += r.charged;
        }
    }
    return [...lines.values()].sort((a, b) => a.day.localeCompare(b.day) || a.user.localeCompare(b.user) || a.group.localeCompare(b.group) || a.model.localeCompare(b.model));
}

const COLUMNS = ["day", "user", "group", "model", "requests", "inputTokens", "outputTokens", "charged"] as const;
const HEADINGS: Record<(typeof COLUMNS)[number], string> = { day: "day", user: "user", group: "group", model: "model", requests: "requests", inputTokens: "input", outputTokens: "output", charged: "charged" };

/** Fixed-width text table, numbers right-aligned. */
export function usageTable(lines: readonly UsageLine[]): string {
    const cells = [COLUMNS.map((c) => HEADINGS[c]), ...lines.map((l) => COLUMNS.map((c) => String(l[c])))];
    const widths = COLUMNS.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
    const numeric = (i: number) => i >= 4;
    return cells.map((row) => row.map((v, i) => (numeric(i) ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join("  ").trimEnd()).join("\n") + "\n";
}

/** Charged tokens per user or model, largest first (each request once, whatever its groups). */
export function totalsBy(rows: readonly UsageRow[], key: "subject" | "model"): [string, number][] {
    const totals = new Map<string, number>();
    for (const r of rows) totals.set(r[key], (totals.get(r[key]) ?? 0) + r.charged);
    return [...totals].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

function barChart(title: string, totals: readonly [string, number][]): string {
    const max = Math.max(1, ...totals.map(([, v]) => v));
    const rowHeight = 24;
    const bars = totals
        .map(([label, value], i) => {
            const width = Math.max(1, Math.round((value / max) * 400));
            const y = i * rowHeight;
            return `<text x="0" y="${y + 16}" class="label">${escapeHtml(label)}</text><rect x="220" y="${y + 4}" width="${width}" height="16" class="bar"/><text x="${226 + width}" y="${y + 16}">${value}</text>`;
        })
        .join("");
    return `<section><h2>${escapeHtml(title)}</h2><svg role="img" aria-label="${escapeHtml(title)}" width="720" height="${Math.max(rowHeight, totals.length * rowHeight)}" xmlns="http://www.w3.org/2000/svg">${bars}</svg></section>`;
}

/** The whole report as one HTML document with nothing to fetch. */
export function usageHtml(rows: readonly UsageRow[], generatedAt: Date): string {
    const lines = usageLines(rows);
    const head = COLUMNS.map((c) => `<th>${HEADINGS[c]}</th>`).join("");
    const body = lines.map((l) => `<tr>${COLUMNS.map((c) => `<td${typeof l[c] === "number" ? ' class="n"' : ""}>${escapeHtml(String(l[c]))}</td>`).join("")}</tr>`).join("\n");
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Token usage</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}.bar{fill:#3b6ea5}svg text{font:12px system-ui,sans-serif}</style>
</head><body>
<h1>Token usage</h1>
<p>Generated ${escapeHtml(generatedAt.toISOString())}. Days are UTC; "charged" is what budgets count (Ollama's own counts; the full reservation for requests open at a crash).</p>
${barChart("Charged tokens per user", totalsBy(rows, "subject"))}
${barChart("Charged tokens per model", totalsBy(rows, "model"))}
<section><h2>Per day, user, group and model</h2><table><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table></section>
</body></html>
`;
}
