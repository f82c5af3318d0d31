/**
 * Stub Ollama for the sandbox and the e2e tests. It records EVERY request it receives (one JSON
 * line each, written before it answers) so a test can prove the gateway let nothing through, and
 * answers the allowlisted endpoints with the shapes real Ollama uses:
 * - `/api/generate`, `/api/chat`: NDJSON, one object per token, last one `done: true` with the
 *   timing/count fields (streaming unless the body says `"stream": false`, as in Ollama);
 * - `/v1/chat/completions`, `/v1/completions`: SSE `data: {...}` chunks ending in `data: [DONE]`
 *   (when the body says `"stream": true`, as in the OpenAI API);
 * - `/v1/responses`, `/v1/messages`: SSE with named events (`event: response.output_text.delta`,
 *   `event: content_block_delta`, ...) as the OpenAI Responses and Anthropic Messages APIs send;
 * - metadata and embeddings: one JSON body.
 * Any other method or path gets 200 (never a 404 that could hide a gateway leak). A client that
 * closes the connection before the answer is complete is logged as a `client-abort` entry.
 * One fault on demand: `/api/show` for LEAKY_HEADERS_MODEL answers with LEAKY_UPSTREAM_HEADERS.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { DEFAULT_IMAGES } from "../../components/config";
import { matchEndpoint, type Endpoint } from "../../components/gateway/endpoints";
import { JsonLinesLog } from "./json-log";
import { listenStub, type StubServer } from "./listen";

export interface StubOllamaOptions {
    /** JSON-lines file every received request (and client abort) is appended to. */
    readonly logFile: string;
    /** Address to listen on; 127.0.0.1 unless told otherwise. */
    readonly host?: string;
    /** Port to listen on; 0 (a free port) unless told otherwise. */
    readonly port?: number;
    /** Pause before each streamed token, and per token before a non-streamed answer. */
    readonly tokenIntervalMs?: number;
    /** Tokens per generated answer. */
    readonly tokens?: number;
    /** Models the stub claims to have; a request naming another model gets Ollama's 404. */
    readonly models?: readonly string[];
    /** Send non-streamed answers at once, not after their tokens' intervals (benchmarks of a proxy's own per-request cost). */
    readonly instantNonStreaming?: boolean;
}

/** One request as the stub received it. */
export interface OllamaRequestEntry {
    readonly kind: "request";
    /** ISO time the request was complete (or the connection closed before it was). */
    readonly time: string;
    readonly method: string;
    /** The raw request target exactly as sent (path and query, no normalisation). */
    readonly path: string;
    readonly httpVersion: string;
    /** Node's merged view: lowercase names. */
    readonly headers: IncomingHttpHeaders;
    /** Every header line as received, in order, duplicates kept. */
    readonly rawHeaders: readonly (readonly [string, string])[];
    /** Body as UTF-8 text. */
    readonly body: string;
    readonly bodyBytes: number;
    /** False when the connection closed before the whole body arrived. */
    readonly complete: boolean;
    /**
     * Set when Node's HTTP parser rejected the bytes (then `body` holds them as latin1 and method
     * and path are empty): a malformed request that got past the gateway still counts as received.
     */
    readonly parseError?: string;
}

/** The client (the gateway, the filter, or a test) closed the connection before the answer ended. */
export interface OllamaAbortEntry {
    readonly kind: "client-abort";
    readonly time: string;
    readonly method: string;
    readonly path: string;
    /** Milliseconds from the request being read to the close. */
    readonly afterMs: number;
    /** Stream frames already written when the client went away. */
    readonly framesSent: number;
}

export type OllamaLogEntry = OllamaRequestEntry | OllamaAbortEntry;

/** The version the program deploys (its default image tag). */
export const STUB_OLLAMA_VERSION = DEFAULT_IMAGES.ollama.slice(DEFAULT_IMAGES.ollama.lastIndexOf(":") + 1);
const DEFAULT_MODELS = ["llama3.2:3b"];
const WORDS = ["The", " sky", " is", " blue", " because", " air", " scatters", " short", " wavelengths", " of", " sunlight", "."];
const EMBEDDING_DIMENSIONS = 8;

type Json = Record<string, unknown>;
/** A frame is built when it is sent, so timestamps in it are real. */
type Frame = () => string;
interface Answer {
    readonly status: number;
    readonly contentType: string;
    /** One body, sent after `delayMs`. */
    readonly body?: string;
    readonly delayMs?: number;
    /** Or frames, each sent one token interval after the previous one. */
    readonly frames?: readonly Frame[];
    /** Extra response headers. */
    readonly headers?: Readonly<Record<string, string>>;
}

/** `/api/show` for this model answers 200 with LEAKY_UPSTREAM_HEADERS: a test of what the gateway hides. */
export const LEAKY_HEADERS_MODEL = "leaky-headers:1b";
/**
 * Headers an upstream may send about itself (software and version, its cookies, its own request
 * id, a wildcard CORS grant); the gateway must show none of them to clients.
 */
export const LEAKY_UPSTREAM_HEADERS: Readonly<Record<string, string>> = {
    Server: "ollama-internal/9.9.9 (gpu-host-07)",
    "X-Powered-By": "ollama-internal",
    "Set-Cookie": "upstream_session=leaked; Path=/",
    "X-Request-Id": "upstream-request-id",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Credentials": "true",
};

const nowIso = () => new Date().toISOString();
const nowSeconds = () => Math.floor(Date.now() / 1000);
const ndjson = (o: Json) => JSON.stringify(o) + "\n";
const sseData = (o: Json | string) => `data: ${typeof o === "string" ? o : JSON.stringify(o)}\n\n`;
const sseEvent = (event: string, o: Json) => `event: ${event}\ndata: ${JSON.stringify(o)}\n\n`;
const json = (status: number, o: Json, delayMs = 0): Answer => ({ status, contentType: "application/json; charset=utf-8", body: JSON.stringify(o), delayMs });

function modelDetails(model: string): Json {
    const size = /:(\d+(?:\.\d+)?)b/i.exec(model)?.[1];
    return { parent_model: "", format: "gguf", family: "llama", families: ["llama"], parameter_size: size ? `${size}B` : "3.2B", quantization_level: "Q4_K_M" };
}

const digestOf = (model: string) => createHash("sha256").update(model).digest("hex");

/** A small deterministic vector: the real answer's shape, no model needed. */
function embedding(text: string): number[] {
    return Array.from({ length: EMBEDDING_DIMENSIONS }, (_, i) => Number((Math.sin(text.length + i) / 2).toFixed(6)));
}

function textOf(input: unknown): string[] {
    if (typeof input === "string") return [input];
    if (Array.isArray(input)) return input.map((x) => (typeof x === "string" ? x : JSON.stringify(x)));
    return [""];
}

interface Generation {
    readonly model: string;
    readonly tokens: readonly string[];
    readonly text: string;
    readonly promptTokens: number;
    readonly intervalMs: number;
}

function ollamaTotals(g: Generation): Json {
    const evalNs = g.tokens.length * g.intervalMs * 1e6;
    const promptNs = g.promptTokens * 50_000;
    return {
        done: true,
        done_reason: "stop",
        total_duration: evalNs + promptNs + 1_000_000,
        load_duration: 1_000_000,
        prompt_eval_count: g.promptTokens,
        prompt_eval_duration: promptNs,
        eval_count: g.tokens.length,
        eval_duration: evalNs,
    };
}

function nativeAnswer(kind: "generate" | "chat", g: Generation, stream: boolean): Answer {
    const piece = (content: string): Json => (kind === "generate" ? { response: content } : { message: { role: "assistant", content } });
    if (!stream) return json(200, { model: g.model, created_at: nowIso(), ...piece(g.text), ...(kind === "generate" ? { context: [1, 2, 3] } : {}), ...ollamaTotals(g) }, g.tokens.length * g.intervalMs);
    const frames: Frame[] = g.tokens.map((t) => () => ndjson({ model: g.model, created_at: nowIso(), ...piece(t), done: false }));
    frames.push(() => ndjson({ model: g.model, created_at: nowIso(), ...piece(""), ...(kind === "generate" ? { context: [1, 2, 3] } : {}), ...ollamaTotals(g) }));
    return { status: 200, contentType: "application/x-ndjson", frames };
}

function openAiUsage(g: Generation): Json {
    return { prompt_tokens: g.promptTokens, completion_tokens: g.tokens.length, total_tokens: g.promptTokens + g.tokens.length };
}

function chatCompletionAnswer(g: Generation, stream: boolean, includeUsage: boolean): Answer {
    const id = `chatcmpl-${randomBytes(4).toString("hex")}`;
    const base = () => ({ id, created: nowSeconds(), model: g.model, system_fingerprint: "fp_ollama" });
    if (!stream) {
        return json(200, { ...base(), object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: g.text }, finish_reason: "stop" }], usage: openAiUsage(g) }, g.tokens.length * g.intervalMs);
    }
    const chunk = (delta: Json, finish: string | null): Frame => () => sseData({ ...base(), object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }] });
    const frames: Frame[] = g.tokens.map((t) => chunk({ role: "assistant", content: t }, null));
    frames.push(chunk({ role: "assistant", content: "" }, "stop"));
    if (includeUsage) frames.push(() => sseData({ ...base(), object: "chat.completion.chunk", choices: [], usage: openAiUsage(g) }));
    frames.push(() => sseData("[DONE]"));
    return { status: 200, contentType: "text/event-stream", frames };
}

function completionAnswer(g: Generation, stream: boolean): Answer {
    const id = `cmpl-${randomBytes(4).toString("hex")}`;
    const base = () => ({ id, object: "text_completion", created: nowSeconds(), model: g.model, system_fingerprint: "fp_ollama" });
    if (!stream) return json(200, { ...base(), choices: [{ text: g.text, index: 0, finish_reason: "stop" }], usage: openAiUsage(g) }, g.tokens.length * g.intervalMs);
    const frames: Frame[] = g.tokens.map((t) => () => sseData({ ...base(), choices: [{ text: t, index: 0, finish_reason: null }] }));
    frames.push(() => sseData({ ...base(), choices: [{ text: "", index: 0, finish_reason: "stop" }] }));
    frames.push(() => sseData("[DONE]"));
    return { status: 200, contentType: "text/event-stream", frames };
}

function responsesAnswer(g: Generation, stream: boolean): Answer {
    const id = `resp_${randomBytes(6).toString("hex")}`;
    const itemId = `msg_${randomBytes(6).toString("hex")}`;
    const createdAt = nowSeconds();
    const response = (status: string, output: Json[], usage?: Json): Json => ({ id, object: "response", created_at: createdAt, status, model: g.model, output, ...(usage ? { usage } : {}) });
    const message = (): Json => ({ type: "message", id: itemId, status: "completed", role: "assistant", content: [{ type: "output_text", text: g.text, annotations: [] }] });
    const usage = { input_tokens: g.promptTokens, output_tokens: g.tokens.length, total_tokens: g.promptTokens + g.tokens.length };
    if (!stream) return json(200, response("completed", [message()], usage), g.tokens.length * g.intervalMs);
    let seq = 0;
    const event = (type: string, body: Json): Frame => () => sseEvent(type, { type, sequence_number: seq++, ...body });
    return {
        status: 200,
        contentType: "text/event-stream",
        frames: [
            event("response.created", { response: response("in_progress", []) }),
            ...g.tokens.map((t) => event("response.output_text.delta", { item_id: itemId, output_index: 0, content_index: 0, delta: t })),
            event("response.output_text.done", { item_id: itemId, output_index: 0, content_index: 0, text: g.text }),
            event("response.completed", { response: response("completed", [message()], usage) }),
        ],
    };
}

function messagesAnswer(g: Generation, stream: boolean): Answer {
    const id = `msg_${randomBytes(8).toString("hex")}`;
    const message = (content: Json[], stop: string | null, outputTokens: number): Json => ({
        id,
        type: "message",
        role: "assistant",
        model: g.model,
        content,
        stop_reason: stop,
        stop_sequence: null,
        usage: { input_tokens: g.promptTokens, output_tokens: outputTokens },
    });
    if (!stream) return json(200, message([{ type: "text", text: g.text }], "end_turn", g.tokens.length), g.tokens.length * g.intervalMs);
    const event = (type: string, body: Json = {}): Frame => () => sseEvent(type, { type, ...body });
    return {
        status: 200,
        contentType: "text/event-stream",
        frames: [
            event("message_start", { message: message([], null, 0) }),
            event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
            ...g.tokens.map((t) => event("content_block_delta", { index: 0, delta: { type: "text_delta", text: t } })),
            event("content_block_stop", { index: 0 }),
            event("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: g.tokens.length } }),
            event("message_stop"),
        ],
    };
}

interface StubSettings {
    readonly models: readonly string[];
    readonly tokens: number;
    readonly intervalMs: number;
    readonly instantNonStreaming: boolean;
}

/** Longest answer a request may ask for with options.num_predict. */
const MAX_NUM_PREDICT = 10_000;

/** Tokens to answer with: Ollama's options.num_predict when the request sets it (a positive whole number), else the stub's default. */
function answerLength(req: Json, tokens: number): number {
    const options = req.options;
    const asked = typeof options === "object" && options !== null && !Array.isArray(options) ? (options as Json).num_predict : undefined;
    return typeof asked === "number" && Number.isInteger(asked) && asked > 0 ? Math.min(asked, MAX_NUM_PREDICT) : tokens;
}

/** How the stub answers one request (what to send, not when). */
function planAnswer(method: string, rawTarget: string, body: string, s: StubSettings): Answer {
    const path = rawTarget.split("?")[0];
    const endpoint: Endpoint | undefined = matchEndpoint(method, path);
    if (!endpoint) return json(200, { stub: "ollama", recorded: true, note: "not an allowlisted endpoint" });

    let req: Json = {};
    if (method === "POST") {
        try {
            const parsed: unknown = JSON.parse(body || "{}");
            if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
            req = parsed as Json;
        } catch {
            return json(400, { error: "invalid JSON request body" });
        }
    }
    const pathModel = endpoint.modelParam ? decodeURIComponent(path.slice(endpoint.path.length)) : undefined;
    const model = pathModel ?? (typeof req.model === "string" ? req.model : typeof req.name === "string" ? req.name : s.models[0]);
    if (endpoint.id === "show" && model === LEAKY_HEADERS_MODEL) return { ...json(200, { modelfile: `FROM ${model}\n`, details: modelDetails(model) }), headers: LEAKY_UPSTREAM_HEADERS };
    const known = s.models.includes(model);
    const modelCard = (m: string) => ({ name: m, model: m, modified_at: "2025-01-01T00:00:00Z", size: 2_019_393_189, digest: digestOf(m), details: modelDetails(m) });

    switch (endpoint.id) {
        case "version":
            return json(200, { version: STUB_OLLAMA_VERSION });
        case "tags":
            return json(200, { models: s.models.map(modelCard) });
        case "ps":
            return json(200, { models: s.models.slice(0, 1).map((m) => ({ ...modelCard(m), expires_at: new Date(Date.now() + 300_000).toISOString(), size_vram: 0, context_length: 4096 })) });
        case "v1-models":
            return json(200, { object: "list", data: s.models.map((m) => ({ id: m, object: "model", created: 1735689600, owned_by: "library" })) });
    }
    if (!known) {
        return endpoint.path.startsWith("/v1/")
            ? json(404, { error: { message: `model "${model}" not found`, type: "api_error", param: null, code: null } })
            : json(404, { error: `model '${model}' not found` });
    }
    const promptText = JSON.stringify(req.prompt ?? req.messages ?? req.input ?? req.system ?? "");
    const tokens = Array.from({ length: answerLength(req, s.tokens) }, (_, i) => WORDS[i % WORDS.length]);
    const g: Generation = { model, tokens, text: tokens.join(""), promptTokens: Math.max(1, Math.ceil(promptText.length / 4)), intervalMs: s.intervalMs };
    switch (endpoint.id) {
        case "v1-model":
            return json(200, { id: model, object: "model", created: 1735689600, owned_by: "library" });
        case "show":
            return json(200, {
                modelfile: `FROM ${model}\n`,
                parameters: "stop \"<|eot_id|>\"",
                template: "{{ .Prompt }}",
                details: modelDetails(model),
                model_info: { "general.architecture": "llama", "llama.context_length": 131072 },
                capabilities: ["completion", "tools"],
                modified_at: "2025-01-01T00:00:00Z",
            });
        case "generate":
        case "chat":
            return nativeAnswer(endpoint.id, g, req.stream !== false);
        case "embed": {
            const inputs = textOf(req.input);
            return json(200, { model, embeddings: inputs.map(embedding), total_duration: 2_000_000, load_duration: 1_000_000, prompt_eval_count: g.promptTokens });
        }
        case "embeddings":
            return json(200, { embedding: embedding(String(req.prompt ?? "")) });
        case "v1-embeddings": {
            const inputs = textOf(req.input);
            return json(200, { object: "list", data: inputs.map((t, index) => ({ object: "embedding", embedding: embedding(t), index })), model, usage: { prompt_tokens: g.promptTokens, total_tokens: g.promptTokens } });
        }
        case "v1-chat-completions": {
            const options = req.stream_options as { include_usage?: unknown } | undefined;
            return chatCompletionAnswer(g, req.stream === true, options?.include_usage === true);
        }
        case "v1-completions":
            return completionAnswer(g, req.stream === true);
        case "v1-responses":
            return responsesAnswer(g, req.stream === true);
        case "v1-messages":
            return messagesAnswer(g, req.stream === true);
    }
    // ENDPOINTS grew an entry this stub does not know yet: still answer, still logged.
    return json(200, { stub: "ollama", recorded: true, note: `no canned answer for endpoint ${endpoint.id}` });
}

function pairs(raw: readonly string[]): [string, string][] {
    const out: [string, string][] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
    return out;
}

export async function startStubOllama(opts: StubOllamaOptions): Promise<StubServer> {
    const log = new JsonLinesLog(opts.logFile);
    const settings: StubSettings = {
        models: opts.models?.length ? opts.models : DEFAULT_MODELS,
        tokens: opts.tokens ?? 8,
        intervalMs: opts.tokenIntervalMs ?? 25,
        instantNonStreaming: opts.instantNonStreaming === true,
    };

    const recordRequest = (req: IncomingMessage, body: Buffer, complete: boolean) =>
        log.append({
            kind: "request",
            time: nowIso(),
            method: req.method ?? "",
            path: req.url ?? "",
            httpVersion: req.httpVersion,
            headers: req.headers,
            rawHeaders: pairs(req.rawHeaders),
            body: body.toString("utf8"),
            bodyBytes: body.length,
            complete,
        } satisfies OllamaRequestEntry);

    const handle = (req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        let recorded = false;
        const record = (complete: boolean) => {
            if (recorded) return;
            recorded = true;
            recordRequest(req, Buffer.concat(chunks), complete);
        };
        req.on("data", (c: Buffer) => chunks.push(c));
        // A request whose body never completes is still evidence that something got through.
        req.on("close", () => record(false));
        req.on("end", () => {
            record(true);
            const answer = planAnswer(req.method ?? "", req.url ?? "", Buffer.concat(chunks).toString("utf8"), settings);
            respond(req, res, settings.instantNonStreaming ? { ...answer, delayMs: 0 } : answer);
        });
    };

    const respond = (req: IncomingMessage, res: ServerResponse, answer: Answer) => {
        const started = Date.now();
        let framesSent = 0;
        let timer: NodeJS.Timeout | undefined;
        res.on("close", () => {
            if (res.writableFinished) return;
            if (timer) clearTimeout(timer);
            log.append({ kind: "client-abort", time: nowIso(), method: req.method ?? "", path: req.url ?? "", afterMs: Date.now() - started, framesSent } satisfies OllamaAbortEntry);
        });
        if (answer.frames) {
            res.writeHead(answer.status, { "Content-Type": answer.contentType, "Cache-Control": "no-cache" });
            res.flushHeaders();
            const next = () => {
                timer = setTimeout(() => {
                    res.write(answer.frames![framesSent++]());
                    if (framesSent < answer.frames!.length) next();
                    else res.end();
                }, settings.intervalMs);
            };
            next();
            return;
        }
        const send = () => {
            const body = answer.body ?? "";
            res.writeHead(answer.status, { ...answer.headers, "Content-Type": answer.contentType, "Content-Length": Buffer.byteLength(body) });
            res.end(body);
        };
        if (answer.delayMs) timer = setTimeout(send, answer.delayMs);
        else send();
    };

    const server = createServer(handle);
    server.on("clientError", (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => {
        const raw = err.rawPacket;
        if (raw?.length) {
            log.append({ kind: "request", time: nowIso(), method: "", path: "", httpVersion: "", headers: {}, rawHeaders: [], body: raw.toString("latin1"), bodyBytes: raw.length, complete: false, parseError: err.code ?? err.message } satisfies OllamaRequestEntry);
        }
        if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        else socket.destroy();
    });
    // Node closes CONNECT requests unless someone listens: record and accept them like any other.
    server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        recordRequest(req, head, true);
        socket.on("error", () => socket.destroy());
        socket.end("HTTP/1.1 200 Connection Established\r\n\r\n");
    });
    return listenStub(server, opts.host, opts.port);
}
