/**
 * Config problems: what one says (the full key path and what is allowed there), how a list of
 * them reads, and how zod's issues become problems with "did you mean" hints for unknown keys.
 */
import { z } from "zod";
import { configObjectSchema, PROJECT } from "./schema";

/** One validation problem: the full config key path and what is allowed there. */
export interface ConfigProblem {
    readonly path: string;
    readonly message: string;
}

export class ConfigError extends Error {
    constructor(public readonly problems: readonly ConfigProblem[]) {
        super(formatProblems(problems));
        this.name = "ConfigError";
    }
}

export function formatProblems(problems: readonly ConfigProblem[], heading = "invalid stack config"): string {
    const lines = problems.map((p) => `  - ${p.path}: ${p.message}`);
    return `${heading} (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n${lines.join("\n")}`;
}

/** `["devices", 2, "name"]` -> `zero-trust-ollama:devices[2].name` */
export function keyPath(path: readonly PropertyKey[]): string {
    let out = PROJECT + ":";
    path.forEach((seg, i) => {
        if (typeof seg === "number") out += `[${seg}]`;
        else out += (i === 0 ? "" : ".") + String(seg);
    });
    return out;
}

function describe(value: unknown): string {
    const s = JSON.stringify(value);
    return s === undefined ? String(value) : s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
    let cur: unknown = raw;
    for (const seg of path) {
        if (cur === null || typeof cur !== "object") return undefined;
        cur = (cur as Record<PropertyKey, unknown>)[seg as string];
    }
    return cur;
}

/**
 * Edit distance between two words (optimal string alignment: insertions, deletions,
 * substitutions and swaps of neighbours each cost 1), for "did you mean" hints.
 */
export function editDistance(a: string, b: string): number {
    const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) {
        for (let j = 1; j <= b.length; j++) {
            const cost = a[i - 1] === b[j - 1] ? 0 : 1;
            d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.length][b.length];
}

/** The candidate closest to `word` if it is close enough to be a typo of it (ties: the first listed). */
export function closestKnown(word: string, candidates: readonly string[]): string | undefined {
    const limit = Math.max(1, Math.floor(word.length / 3));
    let best: { name: string; distance: number } | undefined;
    for (const c of candidates) {
        const distance = editDistance(word.toLowerCase(), c.toLowerCase());
        if (distance <= limit && (!best || distance < best.distance)) best = { name: c, distance };
    }
    return best?.name;
}

/** The schema without its default/optional wrappers. */
function unwrapSchema(schema: z.ZodType): z.ZodType {
    let cur = schema;
    while (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = cur.def.innerType as z.ZodType;
    return cur;
}

/** Keys the schema allows in the object at `path` of the config (list indexes and record keys step into their elements). */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
    let cur: z.ZodType | undefined = configObjectSchema;
    for (const seg of path) {
        if (cur instanceof z.ZodObject) cur = (cur.shape as Record<string, z.ZodType>)[String(seg)];
        else if (cur instanceof z.ZodArray) cur = cur.element as z.ZodType;
        else if (cur instanceof z.ZodRecord) cur = cur.valueType as z.ZodType;
        else return [];
        if (!cur) return [];
        cur = unwrapSchema(cur);
    }
    return cur instanceof z.ZodObject ? Object.keys(cur.shape) : [];
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
    const guess = closestKnown(key, known);
    return `unknown key (${guess ? `did you mean "${guess}"? ` : ""}check the spelling; every key is documented in Pulumi.yaml)`;
}

export function schemaProblems(raw: unknown, error: z.ZodError): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    for (const issue of error.issues) {
        if (issue.code === "unrecognized_keys") {
            const known = knownKeysAt(issue.path);
            for (const k of issue.keys) out.push({ path: keyPath([...issue.path, k]), message: unknownKeyMessage(k, known) });
            continue;
        }
        const got = valueAt(raw, issue.path);
        const message = got === undefined ? (issue.code === "invalid_type" ? "is required" : issue.message) : `${issue.message} (got ${describe(got)})`;
        out.push({ path: keyPath(issue.path), message });
    }
    return out;
}
