/**
 * One request to Ollama over undici's dispatch API. `Pool.request` wraps every response in a
 * stream (a Readable, an async iterator over it, an AbortSignal and its listeners); profiled
 * under load, that machinery cost more CPU per request than the filter's own checks on a
 * metadata request. Here the response's chunks reach the filter as undici parses them: buffered
 * until the filter says how it reads the body (whole, or relayed chunk by chunk with backpressure).
 */
import type { Dispatcher } from "undici";
import type { IncomingHttpHeaders } from "undici/types/header";

export interface UpstreamHead {
    readonly status: number;
    readonly headers: IncomingHttpHeaders;
}

export class UpstreamExchange implements Dispatcher.DispatchHandler {
    /** Status and headers of the final (non-1xx) response; rejects when none came (the error's `code` is undici's). */
    readonly head: Promise<UpstreamHead>;
    private resolveHead!: (h: UpstreamHead) => void;
    private rejectHead!: (e: Error) => void;
    private headSeen = false;
    private controller: Dispatcher.DispatchController | undefined;
    private abortReason: Error | undefined;
    /** Chunks that came before the reader was attached. */
    private early: Buffer[] = [];
    private reader: ((chunk: Buffer) => boolean) | undefined;
    /** Set once the response ended or failed. */
    private outcome: { readonly error?: Error } | undefined;
    private settle: ((error?: Error) => void) | undefined;

    constructor(upstream: Dispatcher, opts: Dispatcher.DispatchOptions) {
        this.head = new Promise((resolve, reject) => {
            this.resolveHead = resolve;
            this.rejectHead = reject;
        });
        // A head that is never awaited (the client left first) must not be an unhandled rejection.
        this.head.catch(() => undefined);
        upstream.dispatch(opts, this);
    }

    /** Stop the request (the client went away): Ollama sees its connection close. */
    abort(): void {
        this.abortReason ??= new Error("the client went away");
        this.controller?.abort(this.abortReason);
    }

    /** The whole body; undefined when it exceeds `limit` bytes (the rest is not read). Rejects when the response failed. */
    whole(limit = Infinity): Promise<Buffer | undefined> {
        const chunks: Buffer[] = [];
        let size = 0;
        return this.read((c) => {
            size += c.length;
            if (size > limit) {
                this.abort();
                return true;
            }
            chunks.push(c);
            return true;
        }).then(
            () => (size > limit ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)),
            (e: Error) => {
                if (size > limit) return undefined;
                throw e;
            },
        );
    }

    /**
     * Hand every chunk to `onChunk` as it comes; when it returns false, undici stops reading the
     * socket until `resume()`. Resolves at the end of the response, rejects when it failed.
     */
    relay(onChunk: (chunk: Buffer) => boolean): Promise<void> {
        return this.read(onChunk);
    }

    resume(): void {
        this.controller?.resume();
    }

    private read(onChunk: (chunk: Buffer) => boolean): Promise<void> {
        return new Promise<void>((resolve, reject) => {
            this.settle = (error) => (error ? reject(error) : resolve());
            const early = this.early;
            this.early = [];
            let more = true;
            for (const c of early) more = onChunk(c) && more;
            if (!more) this.controller?.pause();
            if (this.outcome) return this.settle(this.outcome.error);
            this.reader = onChunk;
        });
    }

    onRequestStart(controller: Dispatcher.DispatchController): void {
        this.controller = controller;
        if (this.abortReason) controller.abort(this.abortReason);
    }

    onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: IncomingHttpHeaders): void {
        if (status < 200) return; // 1xx: the final response follows
        this.headSeen = true;
        this.resolveHead({ status, headers });
    }

    onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
        if (!this.reader) this.early.push(chunk);
        else if (!this.reader(chunk)) controller.pause();
    }

    onResponseEnd(): void {
        this.finish({});
    }

    onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
        if (!this.headSeen) this.rejectHead(error);
        this.finish({ error });
    }

    private finish(outcome: { readonly error?: Error }): void {
        if (this.outcome) return;
        this.outcome = outcome;
        this.reader = undefined;
        this.settle?.(outcome.error);
    }
}
