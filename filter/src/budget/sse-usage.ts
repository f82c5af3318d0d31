/**
 * Removes the usage chunk from an OpenAI-style SSE stream the filter asked it for (see cost.ts),
 * so a client that did not set `stream_options.include_usage` gets the stream it asked for. Events
 * pass through whole as soon as their blank-line terminator arrives; nothing else is held.
 */
import { StringDecoder } from "node:string_decoder";

/** A `data:` event that carries usage and no choices: the chunk include_usage adds. */
function isUsageChunk(event: string): boolean {
    if (!event.includes("usage")) return false;
    const data = event
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5))
        .join("\n");
    try {
        const doc = JSON.parse(data) as { choices?: unknown; usage?: unknown };
        return Array.isArray(doc.choices) && doc.choices.length === 0 && typeof doc.usage === "object" && doc.usage !== null;
    } catch {
        return false;
    }
}

export class UsageChunkStripper {
    private readonly decoder = new StringDecoder("utf8");
    private pending = "";

    /** The bytes to relay for this upstream chunk (complete events only). */
    push(chunk: Buffer): Buffer {
        this.pending += this.decoder.write(chunk);
        let out = "";
        for (let end = this.pending.indexOf("\n\n"); end !== -1; end = this.pending.indexOf("\n\n")) {
            const event = this.pending.slice(0, end + 2);
            this.pending = this.pending.slice(end + 2);
            if (!isUsageChunk(event)) out += event;
        }
        return Buffer.from(out, "utf8");
    }

    /** Whatever is left when the upstream ends (an unterminated last event is relayed as is). */
    end(): Buffer {
        const rest = this.pending + this.decoder.end();
        this.pending = "";
        return Buffer.from(isUsageChunk(rest) ? "" : rest, "utf8");
    }
}
