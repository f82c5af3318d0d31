/**
 * Reserve, then settle. Admission checks and records the reservation synchronously (no await
 * between the check and the durable write), so concurrent requests from one user are admitted one
 * after another against the same totals and can never overspend. The in-memory totals are rebuilt
 * from the store at start; the store is the record, memory the index.
 */
import type { Usage } from "../usage";
import type { Cost } from "./cost";
import type { BudgetStore } from "./store";
import { effectiveLimits, LIMIT_KEY, WindowCalendar, type BudgetRules, type Limits, type Window, type WindowKind } from "./windows";

/** Longest window (a calendar month) plus a day of zone offsets: older rows cannot count. */
const LOOKBACK_MS = 33 * 24 * 3_600_000;
/** Retry-After for a caller at its concurrency limit: a running request's end cannot be known. */
const CONCURRENCY_RETRY_SECONDS = 1;

export interface WindowStatus {
    readonly window: WindowKind;
    readonly limit: number;
    readonly used: number;
    readonly remaining: number;
    /** ISO time when the window's use resets. */
    readonly resetsAt: string;
}

export interface BudgetStatus {
    readonly subject: string;
    readonly windows: readonly WindowStatus[];
    readonly concurrentRequests?: { readonly limit: number; readonly open: number };
}

export interface Reservation {
    /** The store's row. */
    readonly id: number;
    readonly subject: string;
    readonly startedAt: number;
    /** The windows the request is charged to (those of its admission), settled against the same. */
    readonly windows: readonly Window[];
    readonly reserved: number;
    readonly promptTokens: number;
    /** The caller's limits (undefined: recorded, not limited). */
    readonly limited: boolean;
}

export type Admission =
    | { readonly admitted: true; readonly reservation: Reservation; readonly status?: BudgetStatus }
    | { readonly admitted: false; readonly rule: string; readonly retryAfterSeconds?: number; readonly status: BudgetStatus };

/** How the response ended, for settlement. */
export interface Outcome {
    readonly usage: Usage;
    /** Content frames relayed (NDJSON lines or SSE events): what Ollama generated when no count came. */
    readonly frames: number;
    readonly clientAborted: boolean;
    /** True when Ollama answered nothing a model produced (4xx/5xx, unreachable). */
    readonly nothingGenerated: boolean;
}

/**
 * Tokens to charge: Ollama's own count when the response carried it; on a client abort without
 * one, the prompt bound plus one token per relayed frame (never more than the reservation);
 * otherwise the reservation stands.
 */
export function settledTokens(r: Reservation, o: Outcome): number {
    if (o.nothingGenerated) return 0;
    const { inputTokens, outputTokens } = o.usage;
    if (inputTokens !== undefined && (outputTokens !== undefined || !o.clientAborted)) return inputTokens + (outputTokens ?? 0);
    if (o.clientAborted && o.frames > 0) return Math.min(r.reserved, r.promptTokens + o.frames);
    return r.reserved;
}

interface SubjectUse {
    open: number;
    /** `${kind}:${start}` -> tokens charged (settled or reserved). */
    readonly used: Map<string, number>;
}

export class BudgetLedger {
    private readonly subjects = new Map<string, SubjectUse>();
    private readonly calendar: WindowCalendar;

    constructor(
        private readonly rules: BudgetRules,
        private readonly store: BudgetStore,
        private readonly now: () => number = Date.now,
    ) {
        this.calendar = new WindowCalendar(rules.timeZone);
        for (const row of store.chargesSince(this.now() - LOOKBACK_MS)) this.charge(row.subject, this.calendar.at(row.startedAt), row.charged);
    }

    private use(subject: string): SubjectUse {
        let u = this.subjects.get(subject);
        if (!u) this.subjects.set(subject, (u = { open: 0, used: new Map() }));
        return u;
    }

    private charge(subject: string, windows: readonly Window[], tokens: number): void {
        const u = this.use(subject);
        for (const w of windows) {
            const key = `${w.kind}:${w.start}`;
            u.used.set(key, (u.used.get(key) ?? 0) + tokens);
        }
    }

    get chargeBy(): BudgetRules["chargeBy"] {
        return this.rules.chargeBy;
    }

    /** True when a budget group applies to a member of `groups`. */
    limits(groups: readonly string[]): boolean {
        return effectiveLimits(this.rules, groups) !== undefined;
    }

    /** The caller's windows now (only those its limits set). */
    status(subject: string, groups: readonly string[]): BudgetStatus {
        return this.statusWith(subject, effectiveLimits(this.rules, groups) ?? {}, this.calendar.at(this.now()));
    }

    private statusWith(subject: string, limits: Limits, at: readonly Window[]): BudgetStatus {
        const u = this.subjects.get(subject);
        const windows: WindowStatus[] = [];
        for (const w of at) {
            const limit = limits[LIMIT_KEY[w.kind]];
            if (limit === undefined) continue;
            const used = u?.used.get(`${w.kind}:${w.start}`) ?? 0;
            windows.push({ window: w.kind, limit, used, remaining: Math.max(0, limit - used), resetsAt: new Date(w.end).toISOString() });
        }
        const concurrency = limits.concurrentRequests === undefined ? {} : { concurrentRequests: { limit: limits.concurrentRequests, open: u?.open ?? 0 } };
        return { subject, windows, ...concurrency };
    }

    /** Admit and durably reserve, or refuse naming the limit. Synchronous by design (see the file comment). */
    admit(req: { subject: string; groups: readonly string[]; model: string; endpoint: string; cost: Cost }): Admission {
        const t = this.now();
        const at = this.calendar.at(t);
        const limits = effectiveLimits(this.rules, req.groups);
        const reserved = req.cost.promptTokens + req.cost.outputTokens;
        if (limits) {
            const status = this.statusWith(req.subject, limits, at);
            if (status.concurrentRequests && status.concurrentRequests.open >= status.concurrentRequests.limit) {
                return { admitted: false, rule: "budget.concurrentRequests", retryAfterSeconds: CONCURRENCY_RETRY_SECONDS, status };
            }
            for (const w of status.windows) {
                // A request larger than the whole window can never fit: no Retry-After would help.
                if (reserved > w.limit) return { admitted: false, rule: `budget.${LIMIT_KEY[w.window]}.request-too-large`, status };
            }
            const full = status.windows.filter((w) => reserved > w.remaining);
            if (full.length) {
                const resetAt = Math.max(...full.map((w) => Date.parse(w.resetsAt)));
                return { admitted: false, rule: `budget.${LIMIT_KEY[full[0]!.window]}`, retryAfterSeconds: Math.max(1, Math.ceil((resetAt - t) / 1000)), status };
            }
        }
        const id = this.store.reserve({ subject: req.subject, groups: req.groups, model: req.model, endpoint: req.endpoint, startedAt: t, reserved });
        this.charge(req.subject, at, reserved);
        this.use(req.subject).open++;
        const reservation: Reservation = { id, subject: req.subject, startedAt: t, windows: at, reserved, promptTokens: req.cost.promptTokens, limited: limits !== undefined };
        return { admitted: true, reservation, ...(limits ? { status: this.statusWith(req.subject, limits, at) } : {}) };
    }

    /** Replace the reservation with what the response cost; returns the tokens charged. */
    settle(r: Reservation, outcome: Outcome): number {
        const charged = settledTokens(r, outcome);
        this.store.settle(r.id, outcome.usage.inputTokens, outcome.usage.outputTokens, charged);
        this.charge(r.subject, r.windows, charged - r.reserved);
        const u = this.use(r.subject);
        u.open = Math.max(0, u.open - 1);
        return charged;
    }
}

/** The smallest remaining window and its reset, for the response headers; undefined when nothing limits tokens. */
export function tightestWindow(status: BudgetStatus | undefined): WindowStatus | undefined {
    return status?.windows.reduce<WindowStatus | undefined>((min, w) => (min === undefined || w.remaining < min.remaining ? w : min), undefined);
}
