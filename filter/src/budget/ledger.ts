/**
 * Reserve, then settle. Admission checks the caller's windows and charges the reservation to the
 * in-memory totals synchronously (no await between the check and the charge), so concurrent
 * requests from one user are admitted one after another against the same totals and can never
 * overspend. The durable write is group-committed (store.ts): `admit` answers once the batch
 * holding the reservation has committed, so an admitted request is durable before it is
 * forwarded; when the commit fails, the charge is released and the request refused (cause
 * "store"). The in-memory totals are rebuilt from the store at start; the store is the record,
 * memory the index.
 */
import type { Usage } from "../usage";
import type { Cost } from "./cost";
import type { BudgetStore } from "./store";
import { effectiveLimits, isoTime, LIMIT_KEY, WindowCalendar, type BudgetRules, type Limits, type Window, type WindowKind } from "./windows";

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
    /** `cause` "budget": the caller's limits do not fit the request; "store": its reservation could not be committed. */
    | { readonly admitted: false; readonly cause: "budget" | "store"; readonly rule: string; readonly retryAfterSeconds?: number; readonly status: BudgetStatus };

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
    /** Per window kind: the window's start (epoch ms) -> tokens charged (settled or reserved). */
    readonly used: Record<WindowKind, Map<number, number>>;
}

/** Distinct group sets whose limits are remembered (a set's limits never change while the filter runs). */
const LIMITS_CACHE_SIZE = 1024;

export class BudgetLedger {
    private readonly subjects = new Map<string, SubjectUse>();
    private readonly calendar: WindowCalendar;
    /** effectiveLimits by group set: computed once per set instead of twice per request. */
    private readonly limitsByGroups = new Map<string, Limits | undefined>();

    constructor(
        private readonly rules: BudgetRules,
        private readonly store: BudgetStore,
        private readonly now: () => number = Date.now,
    ) {
        this.calendar = new WindowCalendar(rules.timeZone);
        for (const row of store.chargesSince(this.now() - LOOKBACK_MS)) this.charge(this.use(row.subject), this.calendar.at(row.startedAt), row.charged);
    }

    private use(subject: string): SubjectUse {
        let u = this.subjects.get(subject);
        if (!u) this.subjects.set(subject, (u = { open: 0, used: { hour: new Map(), day: new Map(), month: new Map() } }));
        return u;
    }

    private charge(u: SubjectUse, windows: readonly Window[], tokens: number): void {
        for (const w of windows) {
            const used = u.used[w.kind];
            used.set(w.start, (used.get(w.start) ?? 0) + tokens);
        }
    }

    private limitsOf(groups: readonly string[]): Limits | undefined {
        const key = JSON.stringify(groups);
        if (this.limitsByGroups.has(key)) return this.limitsByGroups.get(key);
        const limits = effectiveLimits(this.rules, groups);
        if (this.limitsByGroups.size >= LIMITS_CACHE_SIZE) this.limitsByGroups.clear();
        this.limitsByGroups.set(key, limits);
        return limits;
    }

    get chargeBy(): BudgetRules["chargeBy"] {
        return this.rules.chargeBy;
    }

    /** True when a budget group applies to a member of `groups`. */
    limits(groups: readonly string[]): boolean {
        return this.limitsOf(groups) !== undefined;
    }

    /** The caller's windows now (only those its limits set). */
    status(subject: string, groups: readonly string[]): BudgetStatus {
        return this.statusWith(subject, this.limitsOf(groups) ?? {}, this.calendar.at(this.now()));
    }

    private statusWith(subject: string, limits: Limits, at: readonly Window[]): BudgetStatus {
        const u = this.subjects.get(subject);
        const windows: WindowStatus[] = [];
        for (const w of at) {
            const limit = limits[LIMIT_KEY[w.kind]];
            if (limit === undefined) continue;
            const used = u?.used[w.kind].get(w.start) ?? 0;
            windows.push({ window: w.kind, limit, used, remaining: Math.max(0, limit - used), resetsAt: isoTime(w.end) });
        }
        const concurrency = limits.concurrentRequests === undefined ? {} : { concurrentRequests: { limit: limits.concurrentRequests, open: u?.open ?? 0 } };
        return { subject, windows, ...concurrency };
    }

    /**
     * Check and charge now, synchronously (see the file comment); the answer comes once the
     * reservation is committed, or refuses naming the limit (at once) or the failed commit.
     */
    admit(req: { subject: string; groups: readonly string[]; model: string; endpoint: string; cost: Cost }): Promise<Admission> {
        const t = this.now();
        const at = this.calendar.at(t);
        const limits = this.limitsOf(req.groups);
        const reserved = req.cost.promptTokens + req.cost.outputTokens;
        const u = this.use(req.subject);
        if (limits) {
            const refusal = this.refusal(u, limits, at, reserved, t);
            if (refusal) return Promise.resolve({ admitted: false, cause: "budget", ...refusal, status: this.statusWith(req.subject, limits, at) });
        }
        const { id, committed } = this.store.reserve({ subject: req.subject, groups: req.groups, model: req.model, endpoint: req.endpoint, startedAt: t, reserved });
        this.charge(u, at, reserved);
        u.open++;
        const reservation: Reservation = { id, subject: req.subject, startedAt: t, windows: at, reserved, promptTokens: req.cost.promptTokens, limited: limits !== undefined };
        return committed.then(
            (): Admission => ({ admitted: true, reservation, ...(limits ? { status: this.statusWith(req.subject, limits, at) } : {}) }),
            (): Admission => {
                // Nothing was forwarded: the request is refused and its charge released.
                this.charge(u, at, -reserved);
                u.open = Math.max(0, u.open - 1);
                return { admitted: false, cause: "store", rule: "budget.store.commit", status: this.statusWith(req.subject, limits ?? {}, at) };
            },
        );
    }

    /** The limit a reservation of `reserved` tokens would break now, with its Retry-After; undefined when it fits. */
    private refusal(u: SubjectUse, limits: Limits, at: readonly Window[], reserved: number, t: number): { rule: string; retryAfterSeconds?: number } | undefined {
        if (limits.concurrentRequests !== undefined && u.open >= limits.concurrentRequests) return { rule: "budget.concurrentRequests", retryAfterSeconds: CONCURRENCY_RETRY_SECONDS };
        let full: WindowKind | undefined;
        let resetAt = 0;
        for (const w of at) {
            const limit = limits[LIMIT_KEY[w.kind]];
            if (limit === undefined) continue;
            // A request larger than the whole window can never fit: no Retry-After would help.
            if (reserved > limit) return { rule: `budget.${LIMIT_KEY[w.kind]}.request-too-large` };
            if (reserved > limit - (u.used[w.kind].get(w.start) ?? 0)) {
                full ??= w.kind;
                resetAt = Math.max(resetAt, w.end);
            }
        }
        return full === undefined ? undefined : { rule: `budget.${LIMIT_KEY[full]}`, retryAfterSeconds: Math.max(1, Math.ceil((resetAt - t) / 1000)) };
    }

    /** Replace the reservation with what the response cost; returns the tokens charged. */
    settle(r: Reservation, outcome: Outcome): number {
        const charged = settledTokens(r, outcome);
        this.store.settle(r.id, outcome.usage.inputTokens, outcome.usage.outputTokens, charged);
        const u = this.use(r.subject);
        this.charge(u, r.windows, charged - r.reserved);
        u.open = Math.max(0, u.open - 1);
        return charged;
    }
}

/** The smallest remaining window and its reset, for the response headers; undefined when nothing limits tokens. */
export function tightestWindow(status: BudgetStatus | undefined): WindowStatus | undefined {
    return status?.windows.reduce<WindowStatus | undefined>((min, w) => (min === undefined || w.remaining < min.remaining ? w : min), undefined);
}
