/**
 * Request-body shape validation for every inference and model endpoint: known fields only (exact
 * spelling: Go's decoder would bind `Prompt` or `PROMPT` to `prompt`, so a case variant is
 * refused), correct types, message roles, model name syntax and parameter bounds. While
 * validating it records every string the model will read as a slot (holder + key), so PII and
 * jailbreak checks see exactly the text the model will see and redaction can rewrite it in place.
 */
import { MODEL_PATTERN } from "../../components/config";
import type { FilterRules } from "../../components/filter/rules";
import { parseRequestJson } from "./json";

/** A refusal found while inspecting a body: reason code + rule id, never the offending text. */
export class Refusal extends Error {
    constructor(
        public readonly status: number,
        public readonly code: string,
        public readonly rule: string,
    ) {
        super(`${code} (${rule})`);
    }
}

const invalid = (rule: string) => new Refusal(400, "invalid_request", rule);
const outOfRange = (rule: string) => new Refusal(400, "parameter_out_of_range", rule);

/**
 * A string the model will read, addressed by its container so redaction can replace it. Text that
 * cannot be rewritten in place (an object key, a number in tool arguments) carries its content in
 * `fixed`: it is inspected like any other text, and a PII match in it refuses even in redact mode.
 */
export interface TextSlot {
    readonly holder: Record<string, unknown> | unknown[];
    readonly key: string | number;
    readonly fixed?: string;
}

/** A JSON document held in a string field (tool-call `arguments`): re-serialised after inspection. */
interface EmbeddedJson {
    readonly holder: Record<string, unknown>;
    readonly key: string;
    /** The decoded document under `doc` (a box, so its slots can rewrite even a top-level string). */
    readonly box: { doc: unknown };
}

declare global {
    // ES2024 String methods (Node 20 has them; the project's lib is ES2022).
    interface String {
        isWellFormed(): boolean;
        toWellFormed(): string;
    }
}

export interface Inspection {
    readonly model: string;
    /** Messages (chat), input items (responses, embeddings) or prompts (completions). */
    readonly items: number;
    readonly texts: TextSlot[];
    readonly promptChars: number;
    readonly stream: boolean;
    readonly embedded: readonly EmbeddedJson[];
}

type Json = unknown;
type Obj = Record<string, Json>;
/** What shape validation needs from the rules. */
export type ShapeRules = Pick<FilterRules, "limits" | "allowContextTokens">;

class Ctx {
    readonly texts: TextSlot[] = [];
    readonly embedded: EmbeddedJson[] = [];
    promptChars = 0;
    items = 0;
    constructor(readonly rules: ShapeRules) {}
    get limits() {
        return this.rules.limits;
    }
    text(holder: Obj | Json[], key: string | number): void {
        const h = holder as Record<string | number, Json>;
        const v = h[key];
        if (typeof v !== "string") throw invalid("shape.type");
        // Go decodes an unpaired surrogate escape to U+FFFD: inspect (and forward) that text.
        if (!v.isWellFormed()) h[key] = v.toWellFormed();
        this.texts.push({ holder, key });
        this.promptChars += v.length;
    }
    fixedText(holder: Obj | Json[], key: string | number, text: string): void {
        const fixed = text.isWellFormed() ? text : text.toWellFormed();
        this.texts.push({ holder, key, fixed });
        this.promptChars += fixed.length;
    }
}

type Check = (ctx: Ctx, holder: Obj, key: string) => void;

const isObj = (v: Json): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Go's encoding/json matches object keys to struct fields case-insensitively (Unicode simple
 * folding, so `ſ` U+017F matches `s`, `K` U+212A `k`, `ı`/`İ` `i`). A key that folds to a known
 * field but is not spelled exactly like it gets its own rule, so the refusal says why.
 */
const goFoldKey = (k: string) => k.toLowerCase().replace(/[\u017f\u0131\u0130\u212a]/g, (c) => ({ "\u017f": "s", "\u0131": "i", "\u0130": "i", "\u212a": "k" })[c]!);
function unknownKey(spec: Record<string, Check>, k: string): Refusal {
    const folded = goFoldKey(k);
    return invalid(Object.keys(spec).some((name) => goFoldKey(name) === folded) ? "shape.key-case" : "shape.unknown-field");
}

/**
 * Fields where JSON `null` must be refused because Go does NOT treat it as "absent": a
 * json.RawMessage (native `format`) keeps the literal `null`, and Ollama's tool-call argument
 * map runs its own UnmarshalJSON on it. Everywhere else in the specs below a
 * `null` means "unset" to both the filter and Ollama (Go sets pointers, slices, maps and
 * interfaces to nil and leaves strings, numbers, bools and plain structs at their zero value,
 * which, duplicate keys being refused, is the value of an absent field).
 */
const NULL_REFUSED = new Set<Check>();
const notNull = (check: Check): Check => {
    const refusingNull: Check = (c, o, k) => check(c, o, k);
    NULL_REFUSED.add(refusingNull);
    return refusingNull;
};

function fields(ctx: Ctx, o: Json, spec: Record<string, Check>, required: readonly string[] = []): Obj {
    if (!isObj(o)) throw invalid("shape.type");
    for (const k of Object.keys(o)) {
        const check = spec[k];
        if (!check) throw unknownKey(spec, k);
        if (o[k] === null) {
            if (NULL_REFUSED.has(check)) throw invalid("shape.null");
            continue;
        }
        check(ctx, o, k);
    }
    for (const k of required) if (o[k] === undefined || o[k] === null) throw invalid("shape.missing-field");
    return o;
}

// --- leaf checks ---------------------------------------------------------------------------
const any: Check = () => {};
/** A json.RawMessage in Go (a JSON schema for structured output): any JSON but null, not model text. */
const rawJson: Check = notNull(any);
const str: Check = (_c, o, k) => {
    if (typeof o[k] !== "string") throw invalid("shape.type");
};
const bool: Check = (_c, o, k) => {
    if (typeof o[k] !== "boolean") throw invalid("shape.type");
};
const obj: Check = (_c, o, k) => {
    if (!isObj(o[k])) throw invalid("shape.type");
};
const oneOf = (...values: readonly (string | boolean)[]): Check => (_c, o, k) => {
    if (!values.includes(o[k] as string)) throw invalid("shape.type");
};
const role = (...values: readonly string[]): Check => (_c, o, k) => {
    if (!values.includes(o[k] as string)) throw invalid("shape.role");
};
const num = (rule: string, min: number, max: number, integer = false): Check => (_c, o, k) => {
    const v = o[k];
    if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw invalid("shape.type");
    if (v < min || v > max) throw outOfRange(rule);
};
const outputTokens = (rule: string): Check => (c, o, k) => num(rule, 1, c.limits.maxOutputTokens, true)(c, o, k);
const model: Check = (_c, o, k) => {
    const v = o[k];
    if (typeof v !== "string") throw invalid("shape.type");
    if (v.length > 256 || !MODEL_PATTERN.test(v)) throw invalid("shape.model-name");
};
const text: Check = (c, o, k) => c.text(o, k);
const stop: Check = (_c, o, k) => {
    const v = o[k];
    if (typeof v === "string") return;
    if (!Array.isArray(v) || v.length > 16 || v.some((s) => typeof s !== "string")) throw invalid("shape.type");
};
/** A string or a list of strings, all prompt text (prompt/input of completions and embeddings). */
const textOrTexts: Check = (c, o, k) => {
    const v = o[k];
    if (typeof v === "string") {
        c.items++;
        return c.text(o, k);
    }
    if (!Array.isArray(v)) throw invalid("shape.type");
    c.items += v.length;
    v.forEach((_, i) => c.text(v, i));
};
const MAX_DEPTH = 32;
/**
 * Free-form structures (tool definitions, tool-call arguments, tool results): Ollama renders them
 * into the prompt whole, so every string, every number and every object key, whatever it is
 * called and however deep, is text the model reads.
 */
function textTree(c: Ctx, holder: Obj | Json[], key: string | number, depth = 0): void {
    if (depth > MAX_DEPTH) throw invalid("shape.depth");
    const v = (holder as Record<string | number, Json>)[key];
    if (typeof v === "string") return c.text(holder, key);
    if (typeof v === "number") return c.fixedText(holder, key, JSON.stringify(v));
    if (Array.isArray(v)) v.forEach((_, i) => textTree(c, v, i, depth + 1));
    else if (isObj(v)) {
        for (const k of Object.keys(v)) {
            c.fixedText(v, k, k);
            textTree(c, v, k, depth + 1);
        }
    }
}
const tree: Check = (c, o, k) => textTree(c, o, k);
/**
 * A string holding JSON that Ollama decodes before the model reads it (OpenAI tool-call
 * `arguments`): the decoded document is inspected as a tree (escapes such as `\u0069gnore` are
 * read as the model reads them) and forwarded re-serialised. A string that is not JSON is text.
 */
const jsonText: Check = (c, o, k) => {
    const v = o[k];
    if (typeof v !== "string") throw invalid("shape.type");
    const parsed = parseRequestJson(v);
    if ("problem" in parsed) {
        if (parsed.problem === "duplicate-key") throw invalid("shape.duplicate-key");
        return c.text(o, k);
    }
    const box = { doc: parsed.value };
    textTree(c, box, "doc");
    c.embedded.push({ holder: o, key: k, box });
};
/** Base64 image data (Go decodes it with base64.StdEncoding, so nothing else can ride along). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (v: Json) => typeof v === "string" && v.length % 4 === 0 && BASE64.test(v);
const base64: Check = (_c, o, k) => {
    if (!isBase64(o[k])) throw invalid("shape.image");
};
const base64Images: Check = (_c, o, k) => {
    const v = o[k];
    if (!Array.isArray(v) || !v.every(isBase64)) throw invalid("shape.image");
};
/** A data: URL with base64 image bytes, the only image URL Ollama accepts (it refuses http(s)). */
const DATA_URL = /^data:(?:image\/(?:jpeg|jpg|png|webp))?;base64,/;
const dataUrl: Check = (_c, o, k) => {
    const v = o[k];
    const m = typeof v === "string" ? DATA_URL.exec(v) : null;
    if (!m || !isBase64((v as string).slice(m[0].length))) throw invalid("shape.image");
};
const arrayOf = (item: (c: Ctx, v: Json) => void, countItems = false): Check => (c, o, k) => {
    const v = o[k];
    if (!Array.isArray(v)) throw invalid("shape.type");
    if (countItems) c.items += v.length;
    for (const x of v) item(c, x);
};

// --- native (Ollama) -----------------------------------------------------------------------
const OPTION_BOUNDS: Record<string, Check> = {
    num_ctx: (c, o, k) => num("params.num_ctx", 1, c.limits.maxNumCtx, true)(c, o, k),
    num_predict: outputTokens("params.num_predict"),
    num_keep: num("params.num_keep", -1, 1_048_576, true),
    temperature: num("params.temperature", 0, 2),
    top_k: num("params.top_k", 0, 1000, true),
    top_p: num("params.top_p", 0, 1),
    min_p: num("params.min_p", 0, 1),
    typical_p: num("params.typical_p", 0, 1),
    tfs_z: num("params.tfs_z", 0, 10),
    repeat_last_n: num("params.repeat_last_n", -1, 1_048_576, true),
    repeat_penalty: num("params.repeat_penalty", 0, 10),
    presence_penalty: num("params.presence_penalty", -2, 2),
    frequency_penalty: num("params.frequency_penalty", -2, 2),
    penalize_newline: bool,
    seed: num("params.seed", -2_147_483_648, 2_147_483_647, true),
    stop,
    mirostat: num("params.mirostat", 0, 2, true),
    mirostat_tau: num("params.mirostat_tau", 0, 100),
    mirostat_eta: num("params.mirostat_eta", 0, 10),
};
/** Sampling options only: hardware knobs (num_gpu, num_thread, use_mmap, ...) are the operator's. */
const options: Check = (c, o, k) => {
    const v = o[k];
    if (!isObj(v)) throw invalid("shape.type");
    for (const name of Object.keys(v)) {
        const check = OPTION_BOUNDS[name];
        if (!check) throw outOfRange("params.option-not-allowed");
        if (v[name] !== null) check(c, v, name);
    }
};
/** keep_alive pins a model in GPU memory; negative ("forever") is refused, durations capped at 24h. */
const keepAlive: Check = (_c, o, k) => {
    const v = o[k];
    if (typeof v === "number") {
        if (!Number.isFinite(v) || v < 0 || v > 86400) throw outOfRange("params.keep_alive");
        return;
    }
    if (typeof v !== "string") throw invalid("shape.type");
    const m = /^(\d{1,6})(ms|s|m|h)?$/.exec(v);
    if (!m) throw outOfRange("params.keep_alive");
    const seconds = Number(m[1]) * ({ ms: 0.001, s: 1, m: 60, h: 3600 } as Record<string, number>)[m[2] ?? "s"]!;
    if (seconds > 86400) throw outOfRange("params.keep_alive");
};
const think: Check = (_c, o, k) => {
    if (typeof o[k] !== "boolean" && !["low", "medium", "high"].includes(o[k] as string)) throw invalid("shape.type");
};
/** `context` tokens from an earlier answer decode to prompt text the filter cannot read: opt-in only. */
const contextTokens: Check = (c, o, k) => {
    const v = o[k];
    if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x))) throw invalid("shape.type");
    if (v.length && !c.rules.allowContextTokens) throw invalid("shape.context-tokens");
};
const strArray: Check = (_c, o, k) => {
    const v = o[k];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw invalid("shape.type");
};

const nativeCommon = { model, options, stream: bool, keep_alive: keepAlive, format: rawJson, think, truncate: bool, shift: bool, logprobs: bool, top_logprobs: num("params.top_logprobs", 0, 20, true) };

function nativeMessage(c: Ctx, m: Json): void {
    fields(c, m, { role: role("system", "user", "assistant", "tool"), content: text, images: base64Images, thinking: text, tool_calls: arrayOf(nativeToolCall), tool_name: text, tool_call_id: text }, ["role"]);
}
function nativeToolCall(c: Ctx, call: Json): void {
    fields(c, call, { id: text, function: (c2, o, k) => void fields(c2, o[k], { index: num("shape.tool-index", 0, 65535, true), name: text, arguments: notNull(tree) }) });
}
/** Tool definitions: Ollama renders each whole into the prompt (names, descriptions, schemas, enums). */
const tools: Check = arrayOf((c, t) => {
    if (!isObj(t)) throw invalid("shape.type");
    textTree(c, [t], 0);
});

const generate = { ...nativeCommon, prompt: text, suffix: text, system: text, template: text, context: contextTokens, raw: bool, images: base64Images };
const chat = { ...nativeCommon, messages: arrayOf(nativeMessage, true), tools };
const embed = { model, input: textOrTexts, truncate: bool, options, keep_alive: keepAlive, dimensions: num("params.dimensions", 1, 65536, true) };
const embeddings = { model, prompt: text, options, keep_alive: keepAlive };
const show = { model, name: model, verbose: bool };

// --- OpenAI-compatible ---------------------------------------------------------------------
function openAiPart(c: Ctx, p: Json): void {
    if (!isObj(p)) throw invalid("shape.content-part");
    if (p.type === "text") fields(c, p, { type: str, text }, ["text"]);
    else if (p.type === "image_url") fields(c, p, { type: str, image_url: imageUrl }, ["image_url"]);
    else throw invalid("shape.content-part");
}
/** `image_url`: a data URL, or `{ url, detail }` around one (Ollama reads only the URL). */
const imageUrl: Check = (c, o, k) => {
    if (typeof o[k] === "string") return dataUrl(c, o, k);
    fields(c, o[k], { url: dataUrl, detail: oneOf("auto", "low", "high") }, ["url"]);
};
const openAiContent: Check = (c, o, k) => {
    const v = o[k];
    if (v === null || v === undefined) return;
    if (typeof v === "string") return c.text(o, k);
    if (!Array.isArray(v)) throw invalid("shape.type");
    for (const p of v) openAiPart(c, p);
};
function openAiMessage(c: Ctx, m: Json): void {
    fields(c, m, { role: role("system", "developer", "user", "assistant", "tool", "function"), content: openAiContent, name: text, tool_calls: arrayOf(openAiToolCall), tool_call_id: text, reasoning: text, reasoning_content: text, refusal: text }, ["role"]);
}
function openAiToolCall(c: Ctx, call: Json): void {
    fields(c, call, { id: text, index: num("shape.tool-index", 0, 65535, true), type: oneOf("function"), function: (c2, o, k) => void fields(c2, o[k], { name: text, arguments: jsonText }) });
}
const openAiSampling = {
    model,
    temperature: num("params.temperature", 0, 2),
    top_p: num("params.top_p", 0, 1),
    frequency_penalty: num("params.frequency_penalty", -2, 2),
    presence_penalty: num("params.presence_penalty", -2, 2),
    seed: num("params.seed", -(2 ** 53), 2 ** 53, true),
    stop,
    stream: bool,
    stream_options: obj,
    n: num("params.n", 1, 1, true),
    user: str,
    logit_bias: obj,
    max_tokens: outputTokens("params.max_tokens"),
};
const v1Chat = {
    ...openAiSampling,
    messages: arrayOf(openAiMessage, true),
    max_completion_tokens: outputTokens("params.max_completion_tokens"),
    response_format: any,
    tools,
    tool_choice: any,
    parallel_tool_calls: bool,
    reasoning_effort: oneOf("none", "minimal", "low", "medium", "high"),
    reasoning: obj,
    logprobs: bool,
    top_logprobs: num("params.top_logprobs", 0, 20, true),
    metadata: obj,
    store: bool,
};
const v1Completions = { ...openAiSampling, prompt: textOrTexts, suffix: text, echo: bool, logprobs: num("params.logprobs", 0, 5, true), best_of: num("params.best_of", 1, 1, true) };
const v1Embeddings = { model, input: textOrTexts, encoding_format: oneOf("float", "base64"), dimensions: num("params.dimensions", 1, 65536, true), user: str };

function responsesPart(c: Ctx, p: Json): void {
    if (!isObj(p)) throw invalid("shape.content-part");
    if (p.type === "input_text" || p.type === "output_text") fields(c, p, { type: str, text, annotations: tree, logprobs: any }, ["text"]);
    else if (p.type === "input_image") fields(c, p, { type: str, image_url: dataUrl, file_id: text, detail: oneOf("auto", "low", "high") });
    else if (p.type === "refusal") fields(c, p, { type: str, refusal: text });
    else throw invalid("shape.content-part");
}
const responsesContent: Check = (c, o, k) => {
    const v = o[k];
    if (typeof v === "string") return c.text(o, k);
    if (!Array.isArray(v)) throw invalid("shape.type");
    for (const p of v) responsesPart(c, p);
};
function responsesItem(c: Ctx, item: Json): void {
    if (!isObj(item)) throw invalid("shape.type");
    const type = item.type ?? "message";
    if (type === "message") fields(c, item, { type: str, id: str, status: str, role: role("system", "developer", "user", "assistant"), content: responsesContent }, ["role", "content"]);
    else if (type === "function_call") fields(c, item, { type: str, id: text, status: str, call_id: text, name: text, arguments: jsonText }, ["call_id", "name"]);
    else if (type === "function_call_output") fields(c, item, { type: str, id: text, status: str, call_id: text, output: text }, ["call_id"]);
    else if (type === "reasoning") fields(c, item, { type: str, id: str, status: str, summary: tree, content: tree, encrypted_content: str });
    else throw invalid("shape.content-part");
}
const responsesInput: Check = (c, o, k) => {
    const v = o[k];
    if (typeof v === "string") {
        c.items++;
        return c.text(o, k);
    }
    arrayOf(responsesItem, true)(c, o, k);
};
const v1Responses = {
    model,
    input: responsesInput,
    instructions: text,
    max_output_tokens: outputTokens("params.max_output_tokens"),
    temperature: num("params.temperature", 0, 2),
    top_p: num("params.top_p", 0, 1),
    stream: bool,
    tools,
    tool_choice: any,
    parallel_tool_calls: bool,
    text: obj,
    reasoning: obj,
    truncation: oneOf("auto", "disabled"),
    previous_response_id: str,
    store: bool,
    metadata: obj,
    include: strArray,
    user: str,
};

// --- Anthropic-compatible ------------------------------------------------------------------
function anthropicBlock(c: Ctx, b: Json): void {
    if (!isObj(b)) throw invalid("shape.content-part");
    const common = { type: str, cache_control: any };
    switch (b.type) {
        case "text":
            return void fields(c, b, { ...common, text, citations: tree }, ["text"]);
        case "image":
        case "document":
            return void fields(c, b, { ...common, source: anthropicSource, title: text, context: text, citations: tree }, ["source"]);
        case "tool_use":
            return void fields(c, b, { ...common, id: text, name: text, input: tree }, ["id", "name"]);
        case "tool_result":
            return void fields(c, b, { ...common, tool_use_id: text, content: anthropicContent, is_error: bool }, ["tool_use_id"]);
        case "thinking":
            return void fields(c, b, { ...common, thinking: text, signature: str }, ["thinking"]);
        case "redacted_thinking":
            return void fields(c, b, { ...common, data: str });
        default:
            throw invalid("shape.content-part");
    }
}
/** Image source: base64 bytes only (Ollama refuses URL sources). */
const anthropicSource: Check = (c, o, k) => void fields(c, o[k], { type: oneOf("base64"), media_type: oneOf("image/jpeg", "image/png", "image/webp", "image/gif", "application/pdf"), data: base64 }, ["type", "data"]);
const anthropicContent: Check = (c, o, k) => {
    const v = o[k];
    if (typeof v === "string") return c.text(o, k);
    if (!Array.isArray(v)) throw invalid("shape.type");
    for (const b of v) anthropicBlock(c, b);
};
function anthropicMessage(c: Ctx, m: Json): void {
    fields(c, m, { role: role("user", "assistant"), content: anthropicContent }, ["role", "content"]);
}
const v1Messages = {
    model,
    messages: arrayOf(anthropicMessage, true),
    system: anthropicContent,
    max_tokens: outputTokens("params.max_tokens"),
    temperature: num("params.temperature", 0, 1),
    top_p: num("params.top_p", 0, 1),
    top_k: num("params.top_k", 0, 1000, true),
    stop_sequences: strArray,
    stream: bool,
    tools,
    tool_choice: any,
    metadata: obj,
    thinking: obj,
    service_tier: str,
};

/** Field specs and required fields per endpoint id (components/gateway/endpoints.ts). */
const BODY_SPECS: Record<string, { spec: Record<string, Check>; required: readonly string[] }> = {
    generate: { spec: generate, required: ["model"] },
    chat: { spec: chat, required: ["model"] },
    embed: { spec: embed, required: ["model", "input"] },
    embeddings: { spec: embeddings, required: ["model"] },
    show: { spec: show, required: [] },
    "v1-chat-completions": { spec: v1Chat, required: ["model", "messages"] },
    "v1-completions": { spec: v1Completions, required: ["model", "prompt"] },
    "v1-embeddings": { spec: v1Embeddings, required: ["model", "input"] },
    "v1-responses": { spec: v1Responses, required: ["model", "input"] },
    "v1-messages": { spec: v1Messages, required: ["model", "messages", "max_tokens"] },
};

/** True for endpoints whose POST body this module understands. */
export const hasBodySpec = (endpointId: string) => endpointId in BODY_SPECS;

/** Whether the endpoint streams unless the body says `"stream": false` (Ollama's native default). */
const STREAMS_BY_DEFAULT = new Set(["generate", "chat"]);

/**
 * Validate an already-parsed body for `endpointId` and collect its prompt text. Throws a
 * Refusal naming the rule; the caller applies size caps, the model allowlist, PII and jailbreak.
 */
export function inspectBody(endpointId: string, body: Json, rules: ShapeRules): Inspection {
    const entry = BODY_SPECS[endpointId];
    if (!entry) throw new Refusal(404, "endpoint_not_allowed", "endpoints.allowlist");
    const ctx = new Ctx(rules);
    const o = fields(ctx, body, entry.spec, entry.required);
    const modelName = (o.model ?? o.name) as string | undefined;
    if (typeof modelName !== "string") throw invalid("shape.missing-field");
    const stream = typeof o.stream === "boolean" ? o.stream : STREAMS_BY_DEFAULT.has(endpointId);
    return { model: modelName, items: ctx.items, texts: ctx.texts, promptChars: ctx.promptChars, stream, embedded: ctx.embedded };
}

/**
 * The only bytes the filter forwards: its own serialisation of the value it validated (after any
 * redaction), never the client's bytes, so no parser differential between JavaScript and Go can
 * make Ollama read something else. Embedded JSON (tool-call arguments) is re-serialised too.
 */
export function canonicalBody(body: Json, inspection: Inspection): Buffer {
    for (const e of inspection.embedded) e.holder[e.key] = JSON.stringify(e.box.doc);
    return Buffer.from(JSON.stringify(body), "utf8");
}

/** Read the current value of a text slot. */
export const slotText = (s: TextSlot) => s.fixed ?? ((s.holder as Record<string | number, unknown>)[s.key] as string);
/** Replace the value of a text slot. */
export function setSlotText(s: TextSlot, value: string): void {
    (s.holder as Record<string | number, unknown>)[s.key] = value;
}
