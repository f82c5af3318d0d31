/**
 * Starting the prompt filter between the gateway and the stub Ollama, per its CLI contract:
 * `filter/src/main.ts --rules <json> --listen 127.0.0.1:0 --upstream <url> [--audit-log <file>]`,
 * ready when it prints `listening 127.0.0.1:<port>`. The rules file is rendered by the same
 * `renderFilterRules(cfg)` the Pulumi component uses.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StackConfig } from "../../components/config";
import { renderFilterRules } from "../../components/filter/rules";
import type { Upstream } from "../../components/gateway/spec";
import { REPO_ROOT } from "./gateway";
import type { Supervisor } from "./processes";

const FILTER_MAIN = "filter/src/main.ts";

export interface RunningFilter extends Upstream {
    readonly pid: number;
    readonly rulesFile: string;
    readonly auditLog: string;
    readonly outputLog: string;
}

export async function startFilter(supervisor: Supervisor, cfg: StackConfig, stateDir: string, ollamaUrl: string): Promise<RunningFilter> {
    const rulesFile = join(stateDir, "filter-rules.json");
    writeFileSync(rulesFile, JSON.stringify(renderFilterRules(cfg), null, 2) + "\n", { mode: 0o600 });
    const auditLog = join(stateDir, "logs", "filter-audit.log");
    const outputLog = join(stateDir, "logs", "filter.out");
    const { ready, pid } = await supervisor.spawn(
        "filter",
        process.execPath,
        ["--import", "tsx", join(REPO_ROOT, FILTER_MAIN), "--rules", rulesFile, "--listen", "127.0.0.1:0", "--upstream", ollamaUrl, "--audit-log", auditLog, "--budget-store", join(stateDir, "filter-budgets.db")],
        // Ready once its primary and every worker (one per core, each loading the TypeScript under
        // tsx) listen: on a loaded machine with several sandboxes starting at once that takes far
        // longer than one process did. A bound, not a measurement.
        { cwd: REPO_ROOT, logFile: outputLog, readyLine: /^listening (127\.0\.0\.1):(\d+)$/, readyTimeoutMs: 80_000 },
    );
    return { host: ready![1], port: Number(ready![2]), pid, rulesFile, auditLog, outputLog };
}
