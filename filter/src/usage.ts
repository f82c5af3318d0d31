/**
 * Token counts and durations read from a response while it streams past, without holding it:
 * NDJSON and SSE are split into lines and only lines that can carry usage are parsed; a single
 * JSON body is kept (up to a cap) and parsed at the end. The text itself is never stored.
 */
import { StringDecoder } from "node:string_decoder";

export interface Usage {
    inputTokens?: number;
    outputTokens?: number;
    totalDurationNs?: number;
    loadDurationNs?: number;
    promptEvalDurationNs?: number;
    evalDurationNs?: number;
    finishReason?: string;
}

const MAX_LINE = 1 << 20;
const MAX_JSON_BODY = 8 << 20;

const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined);

function set<K extends keyof Usage>(u: Usage, key: K, value: Usage[K] | undefined): void {
    if (value !== undefined) u[key] = value;
}

/** Merge the usage facts one parsed object (chunk, event or whole body) carries into `u`. */
export function absorbUsage(u: Usage, doc: unknown): void {
    if (typeof doc !== "object" || doc === null) return;
    const d = doc as Record<string, any>;
    // Ollama native final chunk (also /api/embed): counts and nanosecond durations.
    set(u, "inputTokens", num(d.prompt_eval_count));
    set(u, "outputTokens", num(d.eval_count));
    set(u, "totalDurationNs", num(d.total_duration));
    set(u, "loadDurationNs", num(d.load_duration));
    set(u, "promptEvalDurationNs", num(d.prompt_eval_duration));
    set(u, "evalDurationNs", num(d.eval_duration));
    if (typeof d.done_reason === "string") u.finishReason = d.done_reason;
    // OpenAI (usage.prompt_tokens), Responses (response.usage.input_tokens), Anthropic (message.usage / usage).
    for (const usage of [d.usage, d.response?.usage, d.message?.usage]) {
        if (typeof usage !== "object" || usage === null) continue;
        set(u, "inputTokens", num(usage.prompt_tokens) ?? num(usage.input_tokens));
        set(u, "outputTokens", num(usage.completion_tokens) ?? num(usage.output_tokens));
    }
    const finish = d.choices?.[0]?.finish_reason ?? d.stop_reason ?? d.delta?.stop_reason;
    if (typeof finish === "string") u.finishReason = finish;
}

/** Only lines mentioning one of these can change the usage; the rest are skipped unparsed. */
const USAGE_MARKERS = ["eval_count", "usage", "done_reason", "finish_reason\":\"", "stop_reason\":\""];

export class UsageTap {
    readonly usage: Usage = {};
    /** Non-empty NDJSON lines and SSE data lines seen: about one per generated token. */
    frames = 0;
    private readonly decoder = new StringDecoder("utf8");
    private partial = "";
    private bodyBytes = 0;
    private readonly chunks: Buffer[] = [];

    /** `lines` for NDJSON and SSE, `whole` for one JSON document. */
    constructor(private readonly mode: "lines" | "whole") {}

    static forContentType(contentType: string | undefined): UsageTap {
        const ct = (contentType ?? "").toLowerCase();
        return new UsageTap(ct.includes("ndjson") || ct.includes("event-stream") ? "lines" : "whole");
    }

    push(chunk: Buffer): void {
        if (this.mode === "whole") {
            this.bodyBytes += chunk.length;
            if (this.bodyBytes <= MAX_JSON_BODY) this.chunks.push(chunk);
            return;
        }
        const text = this.partial + this.decoder.write(chunk);
        let start = 0;
        for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
            this.line(text.slice(start, nl));
            start = nl + 1;
        }
        this.partial = text.length - start > MAX_LINE ? "" : text.slice(start);
    }

    finish(): Usage {
        if (this.mode === "whole") {
            if (this.bodyBytes <= MAX_JSON_BODY) this.parse(Buffer.concat(this.chunks).toString("utf8"));
            this.chunks.length = 0;
        } else {
            this.line(this.partial + this.decoder.end());
            this.partial = "";
        }
        return this.usage;
    }

    private line(raw: string): void {
        const data = raw.startsWith("data:");
        if (data || (raw.trim() !== "" && !/^(event|id|retry):|^:/.test(raw))) this.frames++;
        const line = data ? raw.slice(5) : raw;
        if (!USAGE_MARKERS.some((m) => line.includes(m))) return;
        this.parse(line);
    }

    private parse(text: string): void {
        try {
            absorbUsage(this.usage, JSON.parse(text));
        } catch {
            // Not JSON (SSE comments, [DONE], truncated bodies): nothing to count.
        }
    }
}
