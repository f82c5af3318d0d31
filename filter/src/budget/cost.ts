/**
 * What a request may cost before it runs, and the body changes that make that bound hold: for a
 * caller under a budget the output cap is written into the forwarded body when the client left it
 * out (else Ollama generates until the context is full), and OpenAI-style streams are always asked
 * for their usage chunk so the settlement has Ollama's own count.
 */
import type { Forward } from "../decide";

/** Where each endpoint takes its output cap, and whether it produces output at all. */
const OUTPUT_CAP: Record<string, { readonly path: readonly string[] } | "none"> = {
    generate: { path: ["options", "num_predict"] },
    chat: { path: ["options", "num_predict"] },
    "v1-chat-completions": { path: ["max_completion_tokens", "max_tokens"] },
    "v1-completions": { path: ["max_tokens"] },
    "v1-responses": { path: ["max_output_tokens"] },
    "v1-messages": { path: ["max_tokens"] },
    embed: "none",
    embeddings: "none",
    "v1-embeddings": "none",
};

/** Endpoints whose streams report usage only when `stream_options.include_usage` is set. */
const USAGE_ON_REQUEST = new Set(["v1-chat-completions", "v1-completions"]);

/** Template tokens a chat turn or prompt adds around its text (role markers, separators). */
const TOKENS_PER_ITEM = 16;
const TOKENS_PER_REQUEST = 64;

export interface Cost {
    /** Upper bound of the prompt's tokens: one per UTF-8 byte (a BPE token is at least one byte) plus template overhead. */
    readonly promptTokens: number;
    /** The output cap Ollama is held to. */
    readonly outputTokens: number;
    /** The body to forward (rewritten only when a cap or the usage option had to be added). */
    readonly body: Buffer | undefined;
    /** True when the filter asked for the usage chunk and must remove it from the stream again. */
    readonly stripUsageChunk: boolean;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** A member the forwarded body must gain: its path from the top level and its value. */
type Edit = readonly [path: readonly [string, ...string[]], value: unknown];

/**
 * The forwarded body with the edits made. When no edit's top-level key is in the body, the members
 * are put in front of the filter's own serialisation (no key can be there twice, and the 8 KiB
 * prompt is not serialised again); otherwise the body is parsed, changed and serialised.
 */
function applyEdits(body: Buffer, doc: Obj, edits: readonly Edit[]): Buffer {
    if (edits.every(([[top]]) => !Object.hasOwn(doc, top))) {
        const added: Obj = {};
        for (const [[top, ...inner], value] of edits) added[top] = inner.reduceRight<unknown>((v, key) => ({ [key]: v }), value);
        const rest = body.subarray(1);
        return Buffer.concat([Buffer.from(`{${JSON.stringify(added).slice(1, -1)}${rest[0] === 0x7d ? "" : ","}`, "utf8"), rest]);
    }
    const copy = JSON.parse(body.toString("utf8")) as Obj;
    for (const [path, value] of edits) {
        let holder = copy;
        for (const key of path.slice(0, -1)) holder = isObj(holder[key]) ? (holder[key] as Obj) : (holder[key] = {});
        holder[path[path.length - 1]!] = value;
    }
    return Buffer.from(JSON.stringify(copy), "utf8");
}

/** The reservation for a forwarded request and the body that keeps Ollama within it (`limited`: the caller has a budget). */
export function requestCost(decision: Forward, maxOutputTokens: number, limited: boolean): Cost {
    const promptTokens = TOKENS_PER_REQUEST + decision.items * TOKENS_PER_ITEM + decision.inspected.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);
    const cap = OUTPUT_CAP[decision.endpoint.id];
    if (cap === undefined || cap === "none" || decision.body === undefined) return { promptTokens, outputTokens: 0, body: decision.body, stripUsageChunk: false };
    const doc = (isObj(decision.value) ? decision.value : JSON.parse(decision.body.toString("utf8"))) as Obj;
    const edits: Edit[] = [];
    // shape.ts already refused caps outside 1..maxOutputTokens; the first one present wins, as in Ollama.
    const [first, second] = cap.path;
    let outputTokens = maxOutputTokens;
    if (first === "options") {
        const options = isObj(doc.options) ? doc.options : {};
        if (typeof options.num_predict === "number") outputTokens = options.num_predict;
        else if (limited) edits.push([["options", "num_predict"], maxOutputTokens]);
    } else {
        const present = cap.path.find((k) => typeof doc[k] === "number");
        if (present) outputTokens = doc[present] as number;
        else if (limited) edits.push([[second ?? first!], maxOutputTokens]);
    }
    let stripUsageChunk = false;
    if (USAGE_ON_REQUEST.has(decision.endpoint.id) && decision.stream) {
        const options = isObj(doc.stream_options) ? doc.stream_options : undefined;
        if (options?.include_usage !== true) {
            edits.push([["stream_options", "include_usage"], true]);
            stripUsageChunk = true;
        }
    }
    return { promptTokens, outputTokens, body: edits.length ? applyEdits(decision.body, doc, edits) : decision.body, stripUsageChunk };
}
