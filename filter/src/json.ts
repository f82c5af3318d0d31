/**
 * Request JSON parsing that refuses what `JSON.parse` silently resolves. Go's encoding/json (what
 * Ollama decodes with) reads a repeated key differently from JavaScript: a later `null` leaves
 * the earlier value in place, and a repeated object or array is decoded INTO the earlier value.
 * A body with a duplicate key at any depth is therefore refused, so the filter and Ollama can
 * only ever read one value per key.
 *
 * `JSON.parse` checks the syntax; a second, linear pass over the (now known-valid) text then
 * tracks the keys of each open object. String contents are skipped with `indexOf`, so the pass
 * costs little next to the parse itself, and it uses an explicit stack (no recursion), so no
 * nesting depth can overflow it.
 */

export type JsonProblem = "invalid-json" | "duplicate-key";

const QUOTE = 34;
const BACKSLASH = 92;

/** Index of the quote closing the string that opens at `open` (text is valid JSON). */
function stringEnd(s: string, open: number): number {
    let q = s.indexOf('"', open + 1);
    for (;;) {
        let backslashes = 0;
        for (let k = q - 1; s.charCodeAt(k) === BACKSLASH; k--) backslashes++;
        if (backslashes % 2 === 0) return q;
        q = s.indexOf('"', q + 1);
    }
}

/** True when some object in the valid JSON text `s` repeats a key (compared after unescaping). */
export function hasDuplicateKey(s: string): boolean {
    // Per open container: the keys seen so far (objects) or null (arrays).
    const stack: (Set<string> | null)[] = [];
    let expectKey = false;
    for (let i = 0, n = s.length; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c === QUOTE) {
            const end = stringEnd(s, i);
            if (expectKey) {
                const raw = s.slice(i + 1, end);
                const key = raw.includes("\\") ? (JSON.parse(s.slice(i, end + 1)) as string) : raw;
                const keys = stack[stack.length - 1]!;
                if (keys.has(key)) return true;
                keys.add(key);
                expectKey = false;
            }
            i = end;
        } else if (c === 123 /* { */) {
            stack.push(new Set());
            expectKey = true;
        } else if (c === 91 /* [ */) stack.push(null);
        else if (c === 125 /* } */ || c === 93 /* ] */) stack.pop();
        else if (c === 44 /* , */) expectKey = stack[stack.length - 1] != null;
    }
    return false;
}

/** Parse a request body; a duplicate key anywhere is a problem, not a value. */
export function parseRequestJson(text: string): { value: unknown } | { problem: JsonProblem } {
    let value: unknown;
    try {
        value = JSON.parse(text);
    } catch {
        return { problem: "invalid-json" };
    }
    return hasDuplicateKey(text) ? { problem: "duplicate-key" } : { value };
}
