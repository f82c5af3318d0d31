/**
 * Request-body shape validation for every inference and model endpoint: known fields only,
 * correct types, message roles, model name syntax and parameter bounds. While validating it
 * records every prompt-bearing string as a slot (holder + key), so PII and jailbreak checks see
 * exactly the text the model will see and redaction can rewrite it in place.
 */
import { MODEL_PATTERN } from "../../components/config";
import type { FilterRules } from "../../components/filter/rules";

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

/** A string the model will read, addressed by its container so redaction can replace it. */
export interface TextSlot {
    readonly holder: Record<string, unknown> | unknown[];
    readonly key: string | number;
}

export interface Inspection {
    readonly model: string;
    /** Messages (chat), input items (responses, embeddings) or prompts (completions). */
    readonly items: number;
    readonly texts: TextSlot[];
    readonly promptChars: number;
    readonly stream: boolean;
}

type Json = unknown;
type Obj = Record<string, Json>;
type Limits = FilterRules["limits"];

class Ctx {
    readonly texts: TextSlot[] = [];
    promptChars = 0;
    items = 0;
    constructor(readonly limits: Limits) {}
    text(holder: Obj | Json[], key: string | number): void {
        const v = (holder as Record<string | number, Json>)[key];
        if (typeof v !== "string") throw invalid("shape.type");
        this.texts.push({ holder, key });
        this.promptChars += v.length;
    }
}

type Check = (ctx: Ctx, holder: Obj, key: string) => void;

const isObj = (v: Json): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function fields(ctx: Ctx, o: Json, spec: Record<string, Check>, required: readonly string[] = []): Obj {
    if (!isObj(o)) throw invalid("shape.type");
    for (const k of Object.keys(o)) {
        const check = spec[k];
        if (!check) throw invalid("shape.unknown-field");
        if (o[k] === null && k !== "content") continue; // clients send explicit nulls for "unset"
        check(ctx, o, k);
    }
    for (const k of required) if (o[k] === undefined || o[k] === null) throw invalid("shape.missing-field");
    return o;
}

// --- leaf checks ---------------------------------------------------------------------------
const any: Check = () => {};
const str: Check = (_c, o, k) => {
    if (typeof o[k] !== "string") throw invalid("shape.type");
};
const bool: Check = (_c, o, k) => {
    if (typeof o[k] !== "boolean") throw invalid("shape.type");
};
const obj: Check = (_c, o, k) => {
    if (!isObj(o[k])) throw invalid("shape.type");
};
const arr: Check = (_c, o, k) => {
    if (!Array.isArray(o[k])) throw invalid("shape.type");
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
/** Keys whose values are identifiers or binary payloads, not text a model reads. */
const OPAQUE_KEYS = new Set(["id", "type", "call_id", "tool_call_id", "tool_use_id", "signature", "data", "url", "image_url", "source", "media_type", "images", "status", "cache_control", "detail", "file_id"]);
const MAX_DEPTH = 32;
/** Free-form structures (tool calls, tool results): every string leaf is prompt text. */
function textTree(c: Ctx, holder: Obj | Json[], key: string | number, depth = 0): void {
    if (depth > MAX_DEPTH) throw invalid("shape.depth");
    const v = (holder as Record<string | number, Json>)[key];
    if (typeof v === "string") return c.text(holder, key);
    if (Array.isArray(v)) v.forEach((_, i) => textTree(c, v, i, depth + 1));
    else if (isObj(v)) for (const k of Object.keys(v)) if (!OPAQUE_KEYS.has(k)) textTree(c, v, k, depth + 1);
}
const tree: Check = (c, o, k) => textTree(c, o, k);
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
const intArray: Check = (_c, o, k) => {
    const v = o[k];
    if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x))) throw invalid("shape.type");
};
const strArray: Check = (_c, o, k) => {
    const v = o[k];
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw invalid("shape.type");
};

const nativeCommon = { model, options, stream: bool, keep_alive: keepAlive, format: any, think, truncate: bool, shift: bool, logprobs: bool, top_logprobs: num("params.top_logprobs", 0, 20, true) };

function nativeMessage(c: Ctx, m: Json): void {
    fields(c, m, { role: role("system", "user", "assistant", "tool"), content: text, images: strArray, thinking: text, tool_calls: tree, tool_name: str, tool_call_id: str }, ["role"]);
}

const generate = { ...nativeCommon, prompt: text, suffix: text, system: text, template: text, context: intArray, raw: bool, images: strArray };
const chat = { ...nativeCommon, messages: arrayOf(nativeMessage, true), tools: arr };
const embed = { model, input: textOrTexts, truncate: bool, options, keep_alive: keepAlive, dimensions: num("params.dimensions", 1, 65536, true) };
const embeddings = { model, prompt: text, options, keep_alive: keepAlive };
const show = { model, name: model, verbose: bool };

// --- OpenAI-compatible ---------------------------------------------------------------------
function openAiPart(c: Ctx, p: Json): void {
    if (!isObj(p)) throw invalid("shape.content-part");
    if (p.type === "text") fields(c, p, { type: str, text }, ["text"]);
    else if (p.type === "image_url") fields(c, p, { type: str, image_url: any }, ["image_url"]);
    else throw invalid("shape.content-part");
}
const openAiContent: Check = (c, o, k) => {
    const v = o[k];
    if (v === null || v === undefined) return;
    if (typeof v === "string") return c.text(o, k);
    if (!Array.isArray(v)) throw invalid("shape.type");
    for (const p of v) openAiPart(c, p);
};
function openAiMessage(c: Ctx, m: Json): void {
    fields(c, m, { role: role("system", "developer", "user", "assistant", "tool", "function"), content: openAiContent, name: str, tool_calls: tree, tool_call_id: str, reasoning: text, reasoning_content: text, refusal: str }, ["role"]);
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
    tools: arr,
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
    if (p.type === "input_text" || p.type === "output_text") fields(c, p, { type: str, text, annotations: any, logprobs: any }, ["text"]);
    else if (p.type === "input_image") fields(c, p, { type: str, image_url: str, file_id: str, detail: str });
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
    else if (type === "function_call") fields(c, item, { type: str, id: str, status: str, call_id: str, name: str, arguments: text }, ["call_id", "name"]);
    else if (type === "function_call_output") fields(c, item, { type: str, id: str, status: str, call_id: str, output: tree }, ["call_id"]);
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
    tools: arr,
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
            return void fields(c, b, { ...common, text, citations: any }, ["text"]);
        case "image":
        case "document":
            return void fields(c, b, { ...common, source: obj, title: text, context: text, citations: any }, ["source"]);
        case "tool_use":
            return void fields(c, b, { ...common, id: str, name: str, input: tree }, ["id", "name"]);
        case "tool_result":
            return void fields(c, b, { ...common, tool_use_id: str, content: anthropicContent, is_error: bool }, ["tool_use_id"]);
        case "thinking":
            return void fields(c, b, { ...common, thinking: text, signature: str }, ["thinking"]);
        case "redacted_thinking":
            return void fields(c, b, { ...common, data: str });
        default:
            throw invalid("shape.content-part");
    }
}
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
    tools: arr,
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
export function inspectBody(endpointId: string, body: Json, limits: Limits): Inspection {
    const entry = BODY_SPECS[endpointId];
    if (!entry) throw new Refusal(404, "endpoint_not_allowed", "endpoints.allowlist");
    const ctx = new Ctx(limits);
    const o = fields(ctx, body, entry.spec, entry.required);
    const modelName = (o.model ?? o.name) as string | undefined;
    if (typeof modelName !== "string") throw invalid("shape.missing-field");
    const stream = typeof o.stream === "boolean" ? o.stream : STREAMS_BY_DEFAULT.has(endpointId);
    return { model: modelName, items: ctx.items, texts: ctx.texts, promptChars: ctx.promptChars, stream };
}

/** Read the current value of a text slot. */
export const slotText = (s: TextSlot) => (s.holder as Record<string | number, unknown>)[s.key] as string;
/** Replace the value of a text slot. */
export function setSlotText(s: TextSlot, value: string): void {
    (s.holder as Record<string | number, unknown>)[s.key] = value;
}
