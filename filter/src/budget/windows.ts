/**
 * Budget windows: calendar hours, days and months in the configured time zone. A request is
 * charged to the windows its admission time falls in, so a window's use is a plain sum and its
 * reset is the window's end.
 */
import type { FilterRules } from "../../../components/filter/rules";

export type BudgetRules = FilterRules["budgets"];
export type Limits = BudgetRules["groups"][string];
export const WINDOW_KINDS = ["hour", "day", "month"] as const;
export type WindowKind = (typeof WINDOW_KINDS)[number];
export const LIMIT_KEY = { hour: "tokensPerHour", day: "tokensPerDay", month: "tokensPerMonth" } as const satisfies Record<WindowKind, keyof Limits>;

export interface Window {
    readonly kind: WindowKind;
    /** Epoch ms, inclusive. */
    readonly start: number;
    /** Epoch ms, exclusive: when the window's use resets. */
    readonly end: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
    let f = formatters.get(timeZone);
    if (!f) {
        f = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" });
        formatters.set(timeZone, f);
    }
    return f;
}

/** The wall-clock fields of instant `t` in `timeZone`. */
function wallClock(t: number, timeZone: string): { y: number; mo: number; d: number; h: number; mi: number; s: number } {
    const p: Record<string, number> = {};
    for (const part of formatter(timeZone).formatToParts(t)) if (part.type !== "literal") p[part.type] = Number(part.value);
    return { y: p.year!, mo: p.month!, d: p.day!, h: p.hour!, mi: p.minute!, s: p.second! };
}

/** The instant whose wall clock in `timeZone` reads the given fields (the earlier one across a DST fold). */
function instantOf(timeZone: string, y: number, mo: number, d: number, h = 0): number {
    const naive = Date.UTC(y, mo - 1, d, h);
    let t = naive;
    // Two corrections settle on the zone's offset at that wall time (offsets change at most once nearby).
    for (let i = 0; i < 2; i++) {
        const w = wallClock(t, timeZone);
        t -= Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - naive;
    }
    return t;
}

/** The window of `kind` that contains instant `t`. */
export function windowAt(kind: WindowKind, t: number, timeZone: string): Window {
    const w = wallClock(t, timeZone);
    switch (kind) {
        case "hour": {
            // Every zone's offset is a whole number of minutes; cutting minutes and seconds keeps the hour.
            const start = t - (w.mi * 60 + w.s) * 1000 - (t % 1000);
            return { kind, start, end: start + 3_600_000 };
        }
        case "day": {
            const next = new Date(Date.UTC(w.y, w.mo - 1, w.d + 1));
            return { kind, start: instantOf(timeZone, w.y, w.mo, w.d), end: instantOf(timeZone, next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate()) };
        }
        case "month": {
            const next = new Date(Date.UTC(w.y, w.mo, 1));
            return { kind, start: instantOf(timeZone, w.y, w.mo, 1), end: instantOf(timeZone, next.getUTCFullYear(), next.getUTCMonth() + 1, 1) };
        }
        default: {
            const never: never = kind;
            throw new Error(`unknown window ${String(never)}`);
        }
    }
}

/**
 * The limits that apply to a member of `groups`: per window, the most generous value of the
 * budget groups they belong to ("*" included; a group without the window does not limit it), or
 * with mode strictest the smallest value any of them sets. Undefined when no budget group applies.
 */
export function effectiveLimits(rules: BudgetRules, groups: readonly string[]): Limits | undefined {
    const applying = ["*", ...groups].filter((g, i, all) => all.indexOf(g) === i && rules.groups[g] !== undefined).map((g) => rules.groups[g]!);
    if (!applying.length) return undefined;
    const out: Record<string, number> = {};
    for (const key of ["tokensPerHour", "tokensPerDay", "tokensPerMonth", "concurrentRequests"] as const) {
        const values = applying.map((l) => l[key]);
        const set = values.filter((v): v is number => v !== undefined);
        if (rules.mode === "strictest") {
            if (set.length) out[key] = Math.min(...set);
        } else if (set.length === values.length) out[key] = Math.max(...set);
    }
    return out;
}
