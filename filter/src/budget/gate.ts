/**
 * The budget step of the request path, kept out of server.ts: who is charged, admission with its
 * refusal, the headers that tell the caller what is left, and settlement when the response ends.
 */
import type { BudgetAudit } from "../audit";
import type { Forward, Identity, Refuse } from "../decide";
import { requestCost } from "./cost";
import { tightestWindow, type Admission, type BudgetLedger, type BudgetStatus, type Outcome, type Reservation } from "./ledger";
import { UsageChunkStripper } from "./sse-usage";
import { parseIsoTime } from "./windows";

/** Endpoint id of GET /v1/budget, answered by the filter itself (never forwarded). */
export const BUDGET_ENDPOINT_ID = "v1-budget";

/**
 * The budget holder: the signed-in user, or with identity.provider none the enrolled device (the
 * gateway then sends the device owner as user, and one owner's devices keep separate budgets).
 */
export function budgetSubject(identity: Identity, chargeBy: "user" | "device"): string | undefined {
    if (chargeBy === "device") return identity.device === undefined ? undefined : `device:${identity.device}`;
    const user = identity.user ?? identity.email;
    return user === undefined ? undefined : `user:${user}`;
}

/** `X-Budget-Remaining-Tokens` (smallest remaining window) and `X-Budget-Reset` (seconds until it resets). */
export function budgetHeaders(status: BudgetStatus | undefined, now = Date.now()): Record<string, string> {
    const w = tightestWindow(status);
    if (!w) return {};
    return { "x-budget-remaining-tokens": String(w.remaining), "x-budget-reset": String(Math.max(0, Math.ceil((parseIsoTime(w.resetsAt) - now) / 1000))) };
}

export type Gate =
    | { readonly admitted: false; readonly refusal: Refuse; readonly headers: Record<string, string>; readonly audit: BudgetAudit }
    | {
          readonly admitted: true;
          /** The body to forward (the cap and include_usage may have been added). */
          readonly body: Buffer | undefined;
          readonly headers: Record<string, string>;
          /** Set when the usage chunk the filter asked for must be removed from the stream. */
          readonly stripper?: UsageChunkStripper;
          readonly settle: (outcome: Outcome) => BudgetAudit;
      };

/**
 * What the request path needs of a ledger: the BudgetLedger itself in a single filter process, or
 * with several processes the primary's one ledger asked over IPC (filter/src/workers.ts). Either
 * answers an admission once the reservation is committed. `settle` returns the tokens charged.
 */
export interface BudgetService {
    readonly chargeBy: BudgetLedger["chargeBy"];
    limits(groups: readonly string[]): boolean;
    admit(req: AdmitRequest): Admission | Promise<Admission>;
    settle(r: Reservation, outcome: Outcome): number;
    status(subject: string, groups: readonly string[]): BudgetStatus | Promise<BudgetStatus>;
}

export type AdmitRequest = Parameters<BudgetLedger["admit"]>[0];

/**
 * Admit an inference request against the caller's budget, or say why not. Resolves once the
 * reservation is durable (the request may be forwarded), or with a refusal: 403 when nobody can be
 * charged, 429 when the budget does not fit, 503 when the reservation could not be committed.
 */
export async function admitInference(service: BudgetService, decision: Forward, identity: Identity, maxOutputTokens: number): Promise<Gate> {
    const facts = { endpoint: decision.endpoint, model: decision.model, promptChars: decision.promptChars, items: decision.items };
    const subject = budgetSubject(identity, service.chargeBy);
    if (subject === undefined) {
        return { admitted: false, refusal: { action: "refuse", status: 403, code: "budget_identity_missing", rule: "budget.identity", ...facts }, headers: {}, audit: { decision: "refused", subject: "-" } };
    }
    const cost = requestCost(decision, maxOutputTokens, service.limits(identity.groups));
    const a = await service.admit({ subject, groups: identity.groups, model: decision.model ?? "", endpoint: decision.endpoint.id, cost });
    if (!a.admitted && a.cause === "store") {
        return { admitted: false, refusal: { action: "refuse", status: 503, code: "budget_store_unavailable", rule: a.rule, ...facts }, headers: {}, audit: { decision: "refused", subject, reservedTokens: cost.promptTokens + cost.outputTokens } };
    }
    if (!a.admitted) {
        const headers = { ...budgetHeaders(a.status), ...(a.retryAfterSeconds === undefined ? {} : { "retry-after": String(a.retryAfterSeconds) }) };
        return { admitted: false, refusal: { action: "refuse", status: 429, code: "token_budget_exceeded", rule: a.rule, ...facts }, headers, audit: { decision: "refused", subject, reservedTokens: cost.promptTokens + cost.outputTokens } };
    }
    const r = a.reservation;
    let settled: BudgetAudit | undefined;
    return {
        admitted: true,
        body: cost.body,
        headers: budgetHeaders(a.status),
        ...(cost.stripUsageChunk ? { stripper: new UsageChunkStripper() } : {}),
        // Idempotent: every end of the request path may call it; only the first settles. (A method,
        // not an arrow property: under tsx every arrow property is wrapped to keep its name, per request.)
        settle(outcome) {
            return (settled ??= { decision: r.limited ? "admitted" : "unlimited", subject, reservedTokens: r.reserved, chargedTokens: service.settle(r, outcome) });
        },
    };
}
