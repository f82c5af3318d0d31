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

/** The wall-clock fields of instant `t` in `timeZone` (UTC, the default, without Intl: it has no offsets to look up). */
function wallClock(t: number, timeZone: string): { y: number; mo: number; d: number; h: number; mi: number; s: number } {
    if (timeZone === "UTC") {
        const u = new Date(t);
        return { y: u.getUTCFullYear(), mo: u.getUTCMonth() + 1, d: u.getUTCDate(), h: u.getUTCHours(), mi: u.getUTCMinutes(), s: u.getUTCSeconds() };
    }
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

type WallClock = ReturnType<typeof wallClock>;

function hourWindow(t: number, w: WallClock): Window {
    // Every zone's offset is a whole number of minutes; cutting minutes and seconds keeps the hour.
    const start = t - (w.mi * 60 + w.s) * 1000 - (t % 1000);
    return { kind: "hour", start, end: start + 3_600_000 };
}

function dayWindow(w: WallClock, timeZone: string): Window {
    const next = new Date(Date.UTC(w.y, w.mo - 1, w.d + 1));
    return { kind: "day", start: instantOf(timeZone, w.y, w.mo, w.d), end: instantOf(timeZone, next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate()) };
}

function monthWindow(w: WallClock, timeZone: string): Window {
    const next = new Date(Date.UTC(w.y, w.mo, 1));
    return { kind: "month", start: instantOf(timeZone, w.y, w.mo, 1), end: instantOf(timeZone, next.getUTCFullYear(), next.getUTCMonth() + 1, 1) };
}

/** The window of `kind` that contains instant `t`. */
export function windowAt(kind: WindowKind, t: number, timeZone: string): Window {
    const w = wallClock(t, timeZone);
    switch (kind) {
        case "hour":
            return hourWindow(t, w);
        case "day":
            return dayWindow(w, timeZone);
        case "month":
            return monthWindow(w, timeZone);
        default: {
            const never: never = kind;
            throw new Error(`unknown window ${String(never)}`);
        }
    }
}

/** Window ends whose ISO text is remembered: every request in a window reports the same few ends. */
const ISO_CACHE_SIZE = 64;
const isoByInstant = new Map<number, string>();
const instantByIso = new Map<string, number>();

/** `new Date(t).toISOString()`, remembered for the window ends requests report. */
export function isoTime(t: number): string {
    let iso = isoByInstant.get(t);
    if (iso === undefined) {
        if (isoByInstant.size >= ISO_CACHE_SIZE) (isoByInstant.clear(), instantByIso.clear());
        iso = new Date(t).toISOString();
        isoByInstant.set(t, iso);
        instantByIso.set(iso, t);
    }
    return iso;
}

/** `Date.parse(iso)`, without parsing the texts isoTime made. */
export function parseIsoTime(iso: string): number {
    return instantByIso.get(iso) ?? Date.parse(iso);
}

const contains = (w: Window | undefined, t: number): w is Window => w !== undefined && w.start <= t && t < w.end;

/**
 * The hour, day and month windows of instants (in WINDOW_KINDS order), the same as windowAt gives,
 * with one reading of the zone's wall clock per instant instead of nine: the day and month windows
 * of the last instant are kept while later instants fall inside them (a zone's days and months
 * partition time), so they are computed again only when a day ends.
 */
export class WindowCalendar {
    private day: Window | undefined;
    private month: Window | undefined;

    constructor(private readonly timeZone: string) {}

    at(t: number): readonly Window[] {
        const w = wallClock(t, this.timeZone);
        if (!contains(this.day, t)) this.day = dayWindow(w, this.timeZone);
        if (!contains(this.month, t)) this.month = monthWindow(w, this.timeZone);
        return [hourWindow(t, w), this.day, this.month];
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
