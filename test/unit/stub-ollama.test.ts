import assert from "node:assert/strict";
import { request } from "node:http";
import { connect } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { DENIED_ROUTES } from "../../components/gateway/endpoints";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import type { StubServer } from "../../scripts/sandbox/listen";
import { LEAKY_HEADERS_MODEL, LEAKY_UPSTREAM_HEADERS, startStubOllama, STUB_OLLAMA_VERSION, type OllamaLogEntry, type OllamaRequestEntry } from "../../scripts/sandbox/stub-ollama";

const INTERVAL_MS = 40;
const TOKENS = 5;

interface Reply {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: string;
    /** ms since the request was sent, per received piece */
    arrivals: number[];
}

function call(stub: StubServer, method: string, path: string, body?: unknown, headers: Record<string, string | string[]> = {}): Promise<Reply> {
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const started = performance.now();
    return new Promise((done, fail) => {
        const req = request({ host: stub.host, port: stub.port, method, path, headers: { ...(payload ? { "Content-Type": "application/json" } : {}), ...headers }, agent: false }, (res) => {
            const pieces: string[] = [];
            const arrivals: number[] = [];
            res.setEncoding("utf8");
            res.on("data", (d: string) => {
                pieces.push(d);
                arrivals.push(performance.now() - started);
            });
            res.on("end", () => done({ status: res.statusCode!, headers: res.headers, body: pieces.join(""), arrivals }));
        });
        req.on("error", fail);
        req.end(payload);
    });
}

const sseEvents = (body: string) =>
    body
        .split("\n\n")
        .filter((b) => b !== "")
        .map((block) => {
            const event = /^event: (.+)$/m.exec(block)?.[1];
            const data = /^data: (.+)$/m.exec(block)![1];
            return { event, data };
        });

async function eventually<T>(probe: () => T | undefined, ms = 2000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
        const v = probe();
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error("condition not met in time");
        await new Promise((r) => setTimeout(r, 20));
    }
}

describe("stub Ollama", () => {
    let dir: string;
    let logFile: string;
    let stub: StubServer;
    const log = () => readJsonLines<OllamaLogEntry>(logFile);
    const requests = () => log().filter((e): e is OllamaRequestEntry => e.kind === "request");

    before(async () => {
        dir = mkdtempSync(join(tmpdir(), "zto-stub-"));
        logFile = join(dir, "ollama.jsonl");
        stub = await startStubOllama({ logFile, tokenIntervalMs: INTERVAL_MS, tokens: TOKENS, models: ["llama3.2:3b", "qwen2.5-coder:7b"] });
    });
    after(async () => {
        await stub.close();
        rmSync(dir, { recursive: true, force: true });
    });

    test("/api/show for the leaky-headers model answers with every leaky upstream header (the attack matrix's upstream-headers-hidden relies on it)", async () => {
        const r = await call(stub, "POST", "/api/show", { model: LEAKY_HEADERS_MODEL });
        assert.equal(r.status, 200);
        for (const [name, value] of Object.entries(LEAKY_UPSTREAM_HEADERS)) {
            const got = r.headers[name.toLowerCase()];
            assert.equal(Array.isArray(got) ? got.join(", ") : got, value, name);
        }
        assert.ok("Server" in LEAKY_UPSTREAM_HEADERS, "the header both gateways settled on hiding");
    });

    test("/api/generate streams NDJSON token by token, spread over time, ending with Ollama's totals", async () => {
        const r = await call(stub, "POST", "/api/generate", { model: "llama3.2:3b", prompt: "why is the sky blue?" });
        assert.equal(r.status, 200);
        assert.equal(r.headers["content-type"], "application/x-ndjson");
        const lines = r.body.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
        assert.equal(lines.length, TOKENS + 1);
        lines.slice(0, -1).forEach((l) => {
            assert.equal(l.done, false);
            assert.equal(typeof l.response, "string");
            assert.equal(l.model, "llama3.2:3b");
        });
        const last = lines.at(-1)!;
        assert.equal(last.done, true);
        assert.equal(last.done_reason, "stop");
        assert.equal(last.eval_count, TOKENS);
        for (const k of ["prompt_eval_count", "total_duration", "load_duration", "prompt_eval_duration", "eval_duration"]) assert.equal(typeof last[k], "number", k);
        // Each frame is written one interval after the previous one: they arrive as separate
        // pieces and the whole answer cannot arrive before TOKENS+1 intervals (timers never fire early).
        assert.ok(r.arrivals.length >= TOKENS, `expected separate pieces, got ${r.arrivals.length}`);
        assert.ok(r.arrivals.at(-1)! - r.arrivals[0] >= TOKENS * INTERVAL_MS * 0.9, `pieces spread over ${r.arrivals.at(-1)! - r.arrivals[0]} ms`);
    });

    test("/api/generate with stream:false and /api/chat answer like Ollama", async () => {
        const single = await call(stub, "POST", "/api/generate", { model: "llama3.2:3b", prompt: "hi", stream: false });
        const one = JSON.parse(single.body);
        assert.equal(one.done, true);
        assert.equal(one.response, "The sky is blue because");
        const chat = await call(stub, "POST", "/api/chat", { model: "qwen2.5-coder:7b", messages: [{ role: "user", content: "hi" }] });
        const lines = chat.body.trimEnd().split("\n").map((l) => JSON.parse(l));
        assert.deepEqual(lines[0].message, { role: "assistant", content: "The" });
        assert.equal(lines.at(-1).done, true);
        assert.equal(lines.at(-1).model, "qwen2.5-coder:7b");
    });

    test("options.num_predict sets the answer's length, as Ollama's does; anything but a positive whole number is ignored", async () => {
        const frames = async (options: unknown) => (await call(stub, "POST", "/api/generate", { model: "llama3.2:3b", prompt: "hi", options })).body.trimEnd().split("\n").length - 1;
        assert.equal(await frames({ num_predict: 2 }), 2);
        assert.equal(await frames({ num_predict: TOKENS + 3 }), TOKENS + 3);
        for (const ignored of [{ num_predict: 0 }, { num_predict: -1 }, { num_predict: 1.5 }, { num_predict: "9" }, [3], null]) assert.equal(await frames(ignored), TOKENS, JSON.stringify(ignored));
    });

    test("/v1/chat/completions and /v1/completions stream SSE data frames ending in [DONE]", async () => {
        const chat = await call(stub, "POST", "/v1/chat/completions", { model: "llama3.2:3b", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "hi" }] });
        assert.equal(chat.headers["content-type"], "text/event-stream");
        assert.match(chat.body, /^data: \{.*\}\n\n/);
        const events = sseEvents(chat.body);
        assert.equal(events.at(-1)!.data, "[DONE]");
        const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
        assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
        assert.equal(chunks[0].choices[0].delta.content, "The");
        assert.equal(chunks.at(-2).choices[0].finish_reason, "stop");
        assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: chunks.at(-1).usage.prompt_tokens, completion_tokens: TOKENS, total_tokens: chunks.at(-1).usage.prompt_tokens + TOKENS });
        assert.ok(chat.arrivals.length >= TOKENS);

        const completion = await call(stub, "POST", "/v1/completions", { model: "llama3.2:3b", prompt: "hi", stream: true });
        const ce = sseEvents(completion.body);
        assert.equal(ce.at(-1)!.data, "[DONE]");
        assert.equal(JSON.parse(ce[0].data).choices[0].text, "The");

        const plain = await call(stub, "POST", "/v1/chat/completions", { model: "llama3.2:3b", messages: [] });
        assert.match(String(plain.headers["content-type"]), /^application\/json/);
        const body = JSON.parse(plain.body);
        assert.equal(body.object, "chat.completion");
        assert.equal(body.choices[0].message.content, "The sky is blue because");
        assert.equal(body.usage.completion_tokens, TOKENS);
    });

    test("/v1/responses and /v1/messages stream named SSE events like their APIs", async () => {
        const resp = sseEvents((await call(stub, "POST", "/v1/responses", { model: "llama3.2:3b", input: "hi", stream: true })).body);
        assert.deepEqual(
            resp.map((e) => e.event),
            ["response.created", ...Array(TOKENS).fill("response.output_text.delta"), "response.output_text.done", "response.completed"],
        );
        resp.forEach((e) => assert.equal(JSON.parse(e.data).type, e.event));
        assert.equal(JSON.parse(resp.at(-1)!.data).response.status, "completed");

        const msg = sseEvents((await call(stub, "POST", "/v1/messages", { model: "llama3.2:3b", max_tokens: 10, messages: [], stream: true })).body);
        assert.equal(msg[0].event, "message_start");
        assert.equal(msg.at(-1)!.event, "message_stop");
        assert.equal(msg.filter((e) => e.event === "content_block_delta").length, TOKENS);

        const plain = JSON.parse((await call(stub, "POST", "/v1/messages", { model: "llama3.2:3b", messages: [] })).body);
        assert.equal(plain.type, "message");
        assert.equal(plain.content[0].text, "The sky is blue because");
    });

    test("metadata and embedding endpoints answer with plausible JSON", async () => {
        assert.deepEqual(JSON.parse((await call(stub, "GET", "/api/version")).body), { version: STUB_OLLAMA_VERSION });
        const head = await call(stub, "HEAD", "/api/tags");
        assert.equal(head.status, 200);
        assert.equal(head.body, "");
        const tags = JSON.parse((await call(stub, "GET", "/api/tags")).body);
        assert.deepEqual(tags.models.map((m: { name: string }) => m.name), ["llama3.2:3b", "qwen2.5-coder:7b"]);
        assert.equal(tags.models[0].details.format, "gguf");
        assert.ok(Array.isArray(JSON.parse((await call(stub, "GET", "/api/ps")).body).models));
        assert.equal(JSON.parse((await call(stub, "POST", "/api/show", { model: "llama3.2:3b" })).body).details.family, "llama");
        assert.equal(JSON.parse((await call(stub, "GET", "/v1/models")).body).data.length, 2);
        assert.equal(JSON.parse((await call(stub, "GET", "/v1/models/qwen2.5-coder:7b")).body).id, "qwen2.5-coder:7b");
        const embed = JSON.parse((await call(stub, "POST", "/api/embed", { model: "llama3.2:3b", input: ["a", "b"] })).body);
        assert.equal(embed.embeddings.length, 2);
        assert.ok(Array.isArray(JSON.parse((await call(stub, "POST", "/api/embeddings", { model: "llama3.2:3b", prompt: "a" })).body).embedding));
        assert.equal(JSON.parse((await call(stub, "POST", "/v1/embeddings", { model: "llama3.2:3b", input: "a" })).body).data[0].object, "embedding");
    });

    test("an unknown model gets Ollama's 404, and the request is still recorded", async () => {
        const r = await call(stub, "POST", "/api/generate", { model: "not-installed:1b", prompt: "x" });
        assert.equal(r.status, 404);
        assert.match(JSON.parse(r.body).error, /not-installed:1b/);
        assert.equal(requests().at(-1)!.body, JSON.stringify({ model: "not-installed:1b", prompt: "x" }));
    });

    test("every denied route, odd path and wrong method gets 200 and a log line with the raw target", async () => {
        const odd = [
            ...DENIED_ROUTES.map((r) => ({ method: r.method, path: r.path })),
            { method: "GET", path: "/api/generate" },
            { method: "POST", path: "/api/../api/pull?insecure=true" },
            { method: "GET", path: "//api/tags/" },
            { method: "GET", path: "/API/TAGS;x=1" },
            { method: "PUT", path: "/nothing/here" },
        ];
        for (const { method, path } of odd) {
            const before = requests().length;
            const r = await call(stub, method, path, method === "POST" ? { name: "x" } : undefined);
            assert.equal(r.status, 200, `${method} ${path}`);
            const entry = requests().at(-1)!;
            assert.equal(requests().length, before + 1);
            assert.equal(entry.method, method);
            assert.equal(entry.path, path, "raw request target, never normalised");
        }
    });

    test("a CONNECT request is recorded and accepted, not silently dropped", async () => {
        const reply = await new Promise<string>((done) => {
            let text = "";
            const s = connect({ host: stub.host, port: stub.port }, () => s.write("CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n"));
            s.setEncoding("utf8");
            s.on("data", (d: string) => (text += d));
            s.on("close", () => done(text));
        });
        assert.match(reply, /^HTTP\/1\.1 200 /);
        const entry = requests().at(-1)!;
        assert.equal(entry.method, "CONNECT");
        assert.equal(entry.path, "internal.example:443");
    });

    test("bytes Node's parser rejects are still recorded as a request, with the parse error", async () => {
        for (const raw of ["NOT-HTTP\r\n\r\n", "POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]) {
            const before = requests().length;
            const reply = await new Promise<string>((done) => {
                let text = "";
                const s = connect({ host: stub.host, port: stub.port }, () => s.write(raw));
                s.setEncoding("utf8");
                s.on("data", (d: string) => (text += d));
                s.on("close", () => done(text));
            });
            assert.match(reply, /^HTTP\/1\.1 400 /);
            const entry = await eventually(() => (requests().length > before ? requests().at(-1) : undefined));
            assert.ok(entry.parseError, `parse error recorded for ${JSON.stringify(raw)}`);
            assert.equal(entry.body, raw.slice(0, entry.bodyBytes));
        }
    });

    test("log entries keep every header line, duplicates included, and the body", async () => {
        await call(stub, "POST", "/api/show", { model: "llama3.2:3b" }, { "X-Auth-Request-User": ["mallory@example.com", "second"] });
        const entry = requests().at(-1)!;
        assert.deepEqual(
            entry.rawHeaders.filter(([k]) => k.toLowerCase() === "x-auth-request-user").map(([, v]) => v),
            ["mallory@example.com", "second"],
        );
        assert.equal(entry.body, JSON.stringify({ model: "llama3.2:3b" }));
        assert.equal(entry.complete, true);
        assert.ok(!Number.isNaN(Date.parse(entry.time)));
    });

    test("a client that disconnects mid-stream is logged as a client-abort", async () => {
        await new Promise<void>((done, fail) => {
            const req = request({ host: stub.host, port: stub.port, method: "POST", path: "/api/chat", headers: { "Content-Type": "application/json" }, agent: false }, (res) => {
                res.once("data", () => req.destroy());
            });
            req.on("error", () => done());
            req.on("close", () => done());
            req.on("timeout", () => fail(new Error("timeout")));
            req.end(JSON.stringify({ model: "llama3.2:3b", messages: [{ role: "user", content: "long answer please" }] }));
        });
        const abort = await eventually(() => log().find((e) => e.kind === "client-abort" && e.path === "/api/chat"));
        assert.equal(abort.kind, "client-abort");
        if (abort.kind !== "client-abort") return;
        assert.ok(abort.framesSent >= 1 && abort.framesSent <= TOKENS, `framesSent ${abort.framesSent}`);
    });

    test("a request whose body never completes is still recorded, marked incomplete", async () => {
        await new Promise<void>((done) => {
            const s = connect({ host: stub.host, port: stub.port }, () => {
                s.write("POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":");
                setTimeout(() => s.destroy(), 50);
            });
            s.on("close", () => done());
        });
        const entry = await eventually(() => requests().find((e) => e.path === "/api/pull" && !e.complete));
        assert.equal(entry.body, "{\"name\":");
    });
});
