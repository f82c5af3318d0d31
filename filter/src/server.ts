/**
 * The filter's HTTP server: read the request body (bounded), decide, then either refuse with a
 * JSON error or relay to Ollama chunk by chunk. A client that goes away aborts the upstream
 * request at once, so Ollama stops generating. Upstream failures reach the client as masked JSON
 * errors: no internal host, port or stack.
 *
 * Trust: the identity headers (X-Auth-Request-*, X-Device-Name, X-Request-Id) are believed as
 * sent. That is sound only because the filter listens on the internal network (or loopback in
 * the sandbox) where the gateway is its only client, and the gateway strips any client-sent copy
 * of these headers before setting its own (components/gateway/spec.ts FORWARDED_IDENTITY_HEADERS).
 */
import { randomUUID } from "node:crypto";
import * as http from "node:http";
import { Pool } from "undici";
import type { FilterRules } from "../../components/filter/rules";
import { FORWARDED_IDENTITY_HEADERS } from "../../components/gateway/spec";
import { auditEvent, type AuditSink, type BudgetAudit } from "./audit";
import { admitInference, budgetSubject, BUDGET_ENDPOINT_ID, type BudgetService, type Gate } from "./budget/gate";
import { canonicalModel, compilePolicy, decide, filterListing, type Decision, type Identity, type Refuse } from "./decide";
import { UpstreamExchange } from "./upstream";
import { UsageTap, type Usage } from "./usage";

export interface FilterServerOptions {
    readonly rules: FilterRules;
    /** Ollama's base URL, e.g. http://ollama:11434. */
    readonly upstream: URL;
    readonly audit: AuditSink;
    /** Token budgets (the ledger, or the primary's over IPC); without them nothing is reserved or charged. */
    readonly budgets?: BudgetService;
}

/** Fixed, text-free explanations per reason code, so refusals never echo user input. */
const MESSAGES: Record<string, string> = {
    endpoint_not_allowed: "This endpoint is not available.",
    method_not_allowed: "This method is not allowed on this endpoint.",
    body_too_large: "The request body is too large.",
    invalid_json: "The request body is not valid JSON.",
    invalid_request: "The request body does not match the endpoint's schema.",
    parameter_out_of_range: "A request parameter is outside the allowed range.",
    too_many_messages: "The request has too many messages.",
    prompt_too_large: "The prompt is too long.",
    model_not_allowed: "This model is not available to you.",
    pii_detected: "The request contains personal data or a secret and was blocked.",
    jailbreak_detected: "The request was blocked by the prompt-injection policy.",
    token_budget_exceeded: "Your token budget does not cover this request; retry after the time in Retry-After.",
    budget_identity_missing: "The request carries no identity to charge a token budget to.",
    budget_store_unavailable: "The token budget ledger could not record the request; it was not forwarded.",
    upstream_timeout: "The model server did not answer in time.",
    upstream_unavailable: "The model server is unavailable.",
    upstream_error: "The model server failed to answer.",
    upstream_bad_request: "The model server refused the request.",
    upstream_unauthorized: "The model server refused the request.",
    upstream_forbidden: "The model server refused the request.",
    upstream_not_found: "The model server does not have this model or endpoint.",
    upstream_busy: "The model server is busy.",
    upstream_rejected: "The model server refused the request.",
};

/** Safe reason codes for the 4xx statuses Ollama answers with; its own body (Go decoder text) is never relayed. */
const UPSTREAM_4XX_CODES: Record<number, string> = { 400: "upstream_bad_request", 401: "upstream_unauthorized", 403: "upstream_forbidden", 404: "upstream_not_found", 429: "upstream_busy" };

const MAX_LISTING_BYTES = 16 << 20;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Longest identity header value accepted; a longer one is ignored whole, never cut (a cut group name could name another group). */
const MAX_HEADER_VALUE = 8192;

/** Node keys `req.headers` by lowercase name; lowered once here, not per request. */
const IDENTITY_HEADER = {
    user: FORWARDED_IDENTITY_HEADERS.user.toLowerCase(),
    email: FORWARDED_IDENTITY_HEADERS.email.toLowerCase(),
    groups: FORWARDED_IDENTITY_HEADERS.groups.toLowerCase(),
    device: FORWARDED_IDENTITY_HEADERS.device.toLowerCase(),
    requestId: FORWARDED_IDENTITY_HEADERS.requestId.toLowerCase(),
} as const;

/** `name` is lowercase. */
function header(req: http.IncomingMessage, name: string): string | undefined {
    const v = req.headers[name];
    const s = Array.isArray(v) ? v[0] : v;
    return s === undefined || s === "" || s.length > MAX_HEADER_VALUE ? undefined : s;
}

export function identityFromHeaders(req: http.IncomingMessage): Identity {
    const groups = (header(req, IDENTITY_HEADER.groups) ?? "")
        .split(",")
        .map((g) => g.trim())
        .filter((g) => g.length > 0)
        .slice(0, 256); // dropping groups past the cap can only remove permissions
    return { user: header(req, IDENTITY_HEADER.user), email: header(req, IDENTITY_HEADER.email), groups, device: header(req, IDENTITY_HEADER.device) };
}

/** The JSON error body: `{ error: { code, rule, requestId, message } }`. */
function errorBody(code: string, rule: string, requestId: string): string {
    return JSON.stringify({ error: { code, rule, requestId, message: MESSAGES[code] ?? "The request was refused." } });
}

function sendJson(res: http.ServerResponse, status: number, body: string, requestId: string, extra: Record<string, string> = {}): void {
    if (res.headersSent) {
        res.destroy();
        return;
    }
    res.writeHead(status, { ...extra, "content-type": "application/json", "content-length": Buffer.byteLength(body), "cache-control": "no-store", "x-request-id": requestId });
    res.end(body);
}

/** Read at most `limit` bytes; resolves undefined when the body is larger. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        let size = 0;
        let over = false;
        req.on("data", (c: Buffer) => {
            size += c.length;
            if (size > limit) over = true;
            else chunks.push(c);
        });
        req.on("end", () => resolve(over ? undefined : Buffer.concat(chunks)));
        req.on("error", reject);
    });
}

/**
 * Response headers passed back to the client; everything else from Ollama is dropped. Either way
 * (whole, or relayed chunk by chunk) the response ends only after the audit event for the request
 * has been written.
 */
const RELAYED_HEADERS = ["content-type"];
/** Largest answer of known length read whole and sent in one write (bigger ones are relayed as they come). */
const WHOLE_ANSWER_BYTES = 256 << 10;

/** Bounds the filter's sockets to Ollama (each holds one generation); the gateway's connections bound what arrives. */
const UPSTREAM_CONNECTIONS = 4096;

export function createFilterServer(opts: FilterServerOptions): { server: http.Server; close: () => Promise<void> } {
    const policy = compilePolicy(opts.rules);
    const timeoutMs = opts.rules.upstream.timeoutSeconds * 1000;
    // One upstream connection per generation in flight: a smaller pool would queue streams in the
    // filter and add their wait to the time to first token (Ollama keeps its own queue).
    const upstream = new Pool(opts.upstream.origin, { connections: UPSTREAM_CONNECTIONS, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const upstreamHost = opts.upstream.host;

    // Requests being handled, so close() returns only after each has been audited and settled.
    const inFlight = new Set<Promise<void>>();
    const server = http.createServer({ noDelay: true, requestTimeout: 0 }, (req, res) => {
        const handled = handle(req, res)
            .catch(() => {
                // handle() reports its own failures; this only guards against a bug taking the process down.
                sendJson(res, 500, errorBody("upstream_error", "filter.internal", "-"), "-");
            })
            .finally(() => inFlight.delete(handled));
        inFlight.add(handled);
    });
    // A request Node's HTTP parser refuses gets the same JSON error shape (Node's default has no type).
    server.on("clientError", (_e, socket) => {
        if (!socket.writable) return void socket.destroy();
        const body = errorBody("invalid_request", "http.parse", "-");
        socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });

    async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
        const startedAt = new Date();
        const t0 = performance.now();
        const rawId = header(req, IDENTITY_HEADER.requestId);
        const requestId = rawId && REQUEST_ID.test(rawId) ? rawId : randomUUID();
        const identity = identityFromHeaders(req);
        const method = req.method ?? "GET";
        const path = (req.url ?? "/").split("?")[0]!;

        const body = method === "POST" ? await readBody(req, opts.rules.limits.maxBodyBytes) : Buffer.alloc(0);
        let decision: Decision =
            body === undefined ? ({ action: "refuse", status: 413, code: "body_too_large", rule: "limits.body-size", promptChars: 0, items: 0 } satisfies Refuse) : decide(policy, { method, path, identity, body });

        // Every path emits its audit event BEFORE the response ends, so a client holding a complete
        // response can rely on the event being written.
        // Admitted requests settle their budget reservation on whichever path ends them.
        let gate: Gate | undefined;
        let tap: UsageTap | undefined;
        const audit = (status: number, extra: { upstreamError?: string; usage?: Usage; clientAborted?: boolean; responseBytes?: number; budget?: BudgetAudit } = {}) => {
            const budget =
                extra.budget ??
                (gate?.admitted
                    ? gate.settle({ usage: extra.usage ?? {}, frames: tap?.frames ?? 0, clientAborted: extra.clientAborted === true, nothingGenerated: status >= 400 && !extra.clientAborted })
                    : undefined);
            opts.audit.emit(auditEvent({ requestId, method, path, identity, decision, status, startedAt, durationMs: performance.now() - t0, requestBytes: body?.length ?? 0, ...extra, budget }));
        };

        const refuseWith = (status: number, code: string, rule: string, extra: { upstreamError?: string; budget?: BudgetAudit } = {}, headers: Record<string, string> = {}) => {
            const text = errorBody(code, rule, requestId);
            audit(status, { ...extra, responseBytes: Buffer.byteLength(text) });
            sendJson(res, status, text, requestId, headers);
        };

        if (decision.action === "refuse") return refuseWith(decision.status, decision.code, decision.rule);
        if (decision.endpoint.id === BUDGET_ENDPOINT_ID) {
            const text = await budgetReply(identity);
            audit(200, { responseBytes: Buffer.byteLength(text) });
            return sendJson(res, 200, text, requestId);
        }
        // Watched before admission: admission waits for the reservation's commit (and with several
        // processes for the primary's answer over IPC), and a client gone meanwhile must not be forwarded.
        let clientGone = false;
        let exchange: UpstreamExchange | undefined;
        res.on("close", () => {
            if (!res.writableFinished) {
                clientGone = true;
                exchange?.abort();
            }
        });
        if (opts.budgets && decision.endpoint.kind === "inference") {
            gate = await admitInference(opts.budgets, decision, identity, opts.rules.limits.maxOutputTokens);
            if (!gate.admitted) {
                decision = gate.refusal;
                return refuseWith(gate.refusal.status, gate.refusal.code, gate.refusal.rule, { budget: gate.audit }, gate.headers);
            }
            // Nothing was forwarded: nothing is charged.
            if (clientGone) return audit(499, { clientAborted: true, budget: gate.settle({ usage: {}, frames: 0, clientAborted: true, nothingGenerated: true }) });
        }
        const budgetHeaderValues = gate?.admitted ? gate.headers : {};

        const forwardBody = method === "POST" ? (gate?.admitted ? gate.body : decision.body) : undefined;
        const headers: Record<string, string> = { host: upstreamHost, accept: header(req, "accept") ?? "*/*", "x-request-id": requestId };
        // With a GPU node pool the gateway's router sends the request to a node serving this model
        // (components/gateway/nginx/pool.ts MODEL_ROUTING_HEADER); Ollama itself ignores the header.
        if (decision.model !== undefined) headers["x-zto-model"] = canonicalModel(decision.model);
        if (forwardBody) {
            headers["content-type"] = "application/json";
            headers["content-length"] = String(forwardBody.length);
        }
        if (clientGone) return audit(499, { clientAborted: true });

        const upstreamEx = (exchange = new UpstreamExchange(upstream, { path, method: method as "GET" | "HEAD" | "POST", headers, body: forwardBody ?? null }));
        let head;
        try {
            head = await upstreamEx.head;
        } catch (e) {
            if (clientGone) return audit(499, { clientAborted: true });
            const code = (e as { code?: string }).code === "UND_ERR_HEADERS_TIMEOUT" ? "upstream_timeout" : "upstream_unavailable";
            return refuseWith(code === "upstream_timeout" ? 504 : 502, code, "upstream", { upstreamError: code });
        }

        const status = head.status;
        if (status >= 400 && status < 500) {
            // Ollama's 4xx bodies are its Go decoder's words about the body: keep the status, never the text.
            await upstreamEx.whole(MAX_LISTING_BYTES).catch(() => undefined);
            if (clientGone) return audit(499, { clientAborted: true });
            const code = UPSTREAM_4XX_CODES[status] ?? "upstream_rejected";
            return refuseWith(status, code, "upstream", { upstreamError: code });
        }
        if (status >= 500 || (decision.listing && status === 200 && method === "GET")) {
            // Error bodies may name internal hosts; listings must be filtered: both are read whole.
            let body: Buffer | undefined;
            try {
                body = await upstreamEx.whole(MAX_LISTING_BYTES);
            } catch {
                if (clientGone) return audit(499, { clientAborted: true });
            }
            const listing = status === 200 && body !== undefined ? filterListing(policy, identity.groups, decision.listing!, body.toString("utf8")) : undefined;
            if (listing === undefined) return refuseWith(502, "upstream_error", "upstream", { upstreamError: "upstream_error" });
            audit(200, { responseBytes: Buffer.byteLength(listing) });
            res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(listing), "x-request-id": requestId });
            res.end(listing);
            return;
        }

        const relayed: Record<string, string> = { ...budgetHeaderValues, "x-request-id": requestId };
        for (const name of RELAYED_HEADERS) {
            const v = head.headers[name];
            if (typeof v === "string") relayed[name] = v;
        }
        // Token counts are a generation's: a metadata answer carries none, and is not parsed for them.
        tap = decision.endpoint.kind === "inference" ? UsageTap.forContentType(relayed["content-type"]) : undefined;
        const stripper = gate?.admitted ? gate.stripper : undefined;
        const upstreamErrorCode = (e: unknown) => ((e as { code?: string }).code === "UND_ERR_BODY_TIMEOUT" ? "upstream_timeout" : "upstream_error");
        const length = Number(head.headers["content-length"] ?? NaN);
        if (!stripper && Number.isInteger(length) && length <= WHOLE_ANSWER_BYTES) {
            // A small answer of known length (metadata, a non-streaming generation): read whole and sent
            // in one write with its headers; nothing to stream, and one syscall instead of three.
            let whole: Buffer;
            try {
                whole = (await upstreamEx.whole())!;
            } catch (e) {
                if (clientGone) return audit(499, { clientAborted: true });
                const code = upstreamErrorCode(e);
                return refuseWith(code === "upstream_timeout" ? 504 : 502, code, "upstream", { upstreamError: code });
            }
            tap?.push(whole);
            audit(status, { usage: tap?.finish(), responseBytes: whole.length });
            res.writeHead(status, { ...relayed, "content-length": whole.length });
            res.end(whole);
            return;
        }
        // Headers leave with the first chunk (Ollama sends its headers with its first token anyway).
        res.writeHead(status, relayed);
        let bytes = 0;
        let upstreamError: string | undefined;
        // A full socket buffer towards the gateway pauses reading from Ollama until it drains.
        const resume = () => upstreamEx.resume();
        res.on("drain", resume);
        try {
            await upstreamEx.relay((c) => {
                bytes += c.length;
                tap?.push(c);
                const out = stripper ? stripper.push(c) : c;
                return out.length === 0 || res.write(out);
            });
        } catch (e) {
            if (!clientGone) upstreamError = upstreamErrorCode(e);
        }
        res.off("drain", resume);
        if (clientGone) return audit(status, { clientAborted: true, usage: tap?.finish(), responseBytes: bytes });
        if (stripper) res.write(stripper.end());
        audit(status, { upstreamError, usage: tap?.finish(), responseBytes: bytes });
        // Headers are gone already: a broken upstream can only be signalled by cutting the response.
        if (upstreamError) res.destroy();
        else res.end();
    }

    /** GET /v1/budget: the caller's own windows, computed here; nothing is forwarded. */
    async function budgetReply(identity: Identity): Promise<string> {
        const subject = opts.budgets && budgetSubject(identity, opts.budgets.chargeBy);
        if (!opts.budgets || subject === undefined) return JSON.stringify({ subject: subject ?? null, windows: [] });
        return JSON.stringify(await opts.budgets.status(subject, identity.groups));
    }

    return {
        server,
        close: async () => {
            const closed = new Promise<void>((resolve) => server.close(() => resolve()));
            server.closeAllConnections();
            await closed;
            await upstream.destroy();
            await Promise.all(inFlight);
        },
    };
}
