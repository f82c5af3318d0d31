/**
 * Audit events: one JSON line per request, with Elastic Common Schema field names so a SIEM
 * indexes them without custom parsing (ECS `gen_ai.*` for model and token counts; filter facts
 * that ECS has no field for live under the custom `zto.*` namespace). Events carry sizes,
 * counts and rule ids, never prompt or completion text.
 */
import { openSync, writeSync } from "node:fs";
import type { PiiDetector } from "../../components/filter/rules";
import type { Decision, Identity } from "./decide";
import { formatSyslog, type SyslogClient } from "./syslog";
import type { Usage } from "./usage";

export const ECS_VERSION = "8.17.0";

export interface AuditFacts {
    readonly requestId: string;
    readonly method: string;
    readonly path: string;
    readonly identity: Identity;
    readonly decision: Decision;
    /** HTTP status sent to the client. */
    readonly status: number;
    /** Set when the upstream failed or timed out (then `decision` was forward). */
    readonly upstreamError?: string;
    /** True when the client went away before the response finished. */
    readonly clientAborted?: boolean;
    readonly usage?: Usage;
    readonly startedAt: Date;
    readonly durationMs: number;
    readonly requestBytes: number;
    readonly responseBytes?: number;
    /** The budget decision and the tokens reserved and finally charged (filter/src/budget). */
    readonly budget?: BudgetAudit;
}

export interface BudgetAudit {
    readonly decision: "admitted" | "refused" | "unlimited";
    readonly subject: string;
    readonly reservedTokens?: number;
    readonly chargedTokens?: number;
}

const OPERATION: Record<string, string> = {
    generate: "text_completion",
    "v1-completions": "text_completion",
    chat: "chat",
    "v1-chat-completions": "chat",
    "v1-responses": "chat",
    "v1-messages": "chat",
    embed: "embeddings",
    embeddings: "embeddings",
    "v1-embeddings": "embeddings",
};

const RULE_CATEGORY = (rule: string) => rule.split(".")[0]!;
/** Refusals that are security detections (ECS event.kind "alert"); the rest are policy denials. */
const isDetection = (rule: string) => ["pii", "jailbreak", "injection"].includes(RULE_CATEGORY(rule));

/**
 * Drop undefined values and objects left empty, so absent facts are absent fields. Runs once per
 * request: a plain key loop (no entries arrays), and an object left empty comes back undefined.
 */
function compact(v: unknown): unknown {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
    let out: Record<string, unknown> | undefined;
    const o = v as Record<string, unknown>;
    for (const k in o) {
        const c = compact(o[k]);
        if (c !== undefined) (out ??= {})[k] = c;
    }
    return out;
}

/** What the filter did: refused, forwarded with values redacted, or forwarded unchanged. */
export function decisionName(d: Decision): "refuse" | "redact" | "forward" {
    if (d.action === "refuse") return "refuse";
    return Object.keys(d.redactions).length ? "redact" : "forward";
}

/** The ECS document for one request; absent facts are left out. */
export function auditEvent(f: AuditFacts): Record<string, unknown> {
    const d = f.decision;
    const refused = d.action === "refuse";
    const failed = refused || f.upstreamError !== undefined || f.status >= 400;
    const rule = refused ? d.rule : f.upstreamError ? "upstream" : undefined;
    const u = f.usage ?? {};
    const redactions = d.action === "forward" && Object.keys(d.redactions).length ? (d.redactions as Record<PiiDetector, number>) : undefined;
    const detection = refused && isDetection(rule!);
    return (compact({
        "@timestamp": f.startedAt.toISOString(),
        ecs: { version: ECS_VERSION },
        event: {
            kind: detection ? "alert" : "event",
            category: detection ? ["intrusion_detection", "web"] : ["web"],
            type: refused ? ["denied"] : ["allowed", "access"],
            action: `filter-${decisionName(d)}`,
            outcome: failed ? "failure" : "success",
            reason: refused ? d.code : f.upstreamError,
            duration: Math.round(f.durationMs * 1e6),
            dataset: "zto.filter",
        },
        http: {
            request: { id: f.requestId, method: f.method, bytes: f.requestBytes },
            response: { status_code: f.status, bytes: f.responseBytes },
        },
        url: { path: f.path },
        user: { name: f.identity.user, email: f.identity.email, roles: f.identity.groups.length ? [...f.identity.groups] : undefined },
        device: f.identity.device ? { id: f.identity.device } : undefined,
        rule: rule ? { id: rule, category: RULE_CATEGORY(rule), ruleset: "zto-filter" } : undefined,
        gen_ai: d.model
            ? {
                  system: "ollama",
                  operation: d.endpoint ? { name: OPERATION[d.endpoint.id] } : undefined,
                  request: { model: { id: d.model } },
                  usage: u.inputTokens !== undefined || u.outputTokens !== undefined ? { input_tokens: u.inputTokens, output_tokens: u.outputTokens } : undefined,
                  response: u.finishReason ? { finish_reasons: [u.finishReason] } : undefined,
              }
            : undefined,
        zto: {
            filter: {
                decision: decisionName(d),
                endpoint: d.endpoint?.id,
                prompt_chars: d.promptChars,
                items: d.items,
                stream: d.action === "forward" ? d.stream : undefined,
                redactions,
                client_aborted: f.clientAborted || undefined,
            },
            budget: f.budget ? { decision: f.budget.decision, subject: f.budget.subject, reserved_tokens: f.budget.reservedTokens, charged_tokens: f.budget.chargedTokens } : undefined,
            ollama:
                u.totalDurationNs !== undefined
                    ? { total_duration_ns: u.totalDurationNs, load_duration_ns: u.loadDurationNs, prompt_eval_duration_ns: u.promptEvalDurationNs, eval_duration_ns: u.evalDurationNs }
                    : undefined,
        },
    }) ?? {}) as Record<string, unknown>;
}

export interface AuditSinkOptions {
    /** Write each event as a line to stdout (the container's log stream). */
    readonly stdout: boolean;
    /** Also append each event to this file. */
    readonly file?: string;
    readonly syslog?: SyslogClient;
    /** APP-NAME for syslog records. */
    readonly appName: string;
}

export class AuditSink {
    /** The file, opened once for appending (a reopen per event cost two extra syscalls per request); several processes may share it, each line is one write. */
    private readonly fd: number | undefined;

    constructor(private readonly opts: AuditSinkOptions) {
        this.fd = opts.file === undefined ? undefined : openSync(opts.file, "a");
    }

    emit(event: Record<string, unknown>): void {
        const line = JSON.stringify(event);
        const text = line + "\n";
        if (this.opts.stdout) process.stdout.write(text);
        if (this.fd !== undefined) writeSync(this.fd, text);
        if (this.opts.syslog) {
            const e = event.event as { kind?: string };
            this.opts.syslog.send(formatSyslog({ severity: e.kind === "alert" ? "warning" : "info", appName: this.opts.appName, msgId: "audit", message: line }));
        }
    }
}
