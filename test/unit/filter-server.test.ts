/**
 * The filter's HTTP behaviour, in-process, against the sandbox's stub Ollama (which logs every
 * request it receives): refusals reach nothing upstream, redaction rewrites what upstream sees,
 * streams are relayed frame by frame, a client abort closes the upstream connection, upstream
 * failures are masked, and every request yields one audit event with token counts.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as dgram from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { renderFilterRules, type FilterRules } from "../../components/filter/rules";
import { AuditSink } from "../../filter/src/audit";
import { createFilterServer } from "../../filter/src/server";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import { startStubOllama, type OllamaLogEntry } from "../../scripts/sandbox/stub-ollama";
import type { StubServer } from "../../scripts/sandbox/listen";

const dir = mkdtempSync(join(tmpdir(), "zto-filter-"));
const stubLog = join(dir, "ollama.log");
const auditLog = join(dir, "audit.log");

const rulesFor = (filter: Record<string, unknown>, extra: Record<string, unknown> = {}): FilterRules =>
    renderFilterRules(loadStackConfig({ domain: "ollama.example.internal", filter: { modelsByGroup: { "*": ["llama3.2:3b"], "ml-eng": ["qwen2.5:7b"] }, ...filter }, ...extra }));

async function startFilter(rules: FilterRules, upstream: string, log = auditLog) {
    const { server, close } = createFilterServer({ rules, upstream: new URL(upstream), audit: new AuditSink({ stdout: false, file: log, appName: "zto-filter" }) });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close };
}

interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
    /** Arrival time (ms since the request was sent) of every body chunk. */
    chunkTimes: number[];
}

function send(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
        const t0 = performance.now();
        const req = http.request(base + path, { method, headers: { ...(payload ? { "content-type": "application/json" } : {}), ...headers }, agent: false }, (res) => {
            let text = "";
            const chunkTimes: number[] = [];
            res.on("data", (c: Buffer) => {
                chunkTimes.push(performance.now() - t0);
                text += c.toString();
            });
            res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text, chunkTimes }));
        });
        req.on("error", reject);
        req.end(payload);
    });
}

const stubEntries = () => readJsonLines<OllamaLogEntry>(stubLog);
const audits = (file = auditLog) => readJsonLines<Record<string, any>>(file);
const auditFor = (requestId: string, file = auditLog) => {
    const found = audits(file).filter((e) => e.http?.request?.id === requestId);
    assert.equal(found.length, 1, `one audit event for ${requestId}`);
    return found[0]!;
};
const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: "llama3.2:3b", messages: [{ role: "user", content }], ...extra });
const waitFor = async (cond: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (cond()) return true;
        await new Promise((r) => setTimeout(r, 20));
    }
    return cond();
};

let stub: StubServer;
let block: Awaited<ReturnType<typeof startFilter>>;
let redact: Awaited<ReturnType<typeof startFilter>>;

before(async () => {
    stub = await startStubOllama({ logFile: stubLog, tokenIntervalMs: 40, tokens: 6, models: ["llama3.2:3b", "qwen2.5:7b", "secret:70b"] });
    block = await startFilter(rulesFor({ pii: "block" }), stub.url);
    redact = await startFilter(rulesFor({ pii: "redact" }), stub.url);
});
after(async () => {
    await block.close();
    await redact.close();
    await stub.close();
    rmSync(dir, { recursive: true, force: true });
});

describe("refusals reach nothing upstream", () => {
    test("a PII prompt is blocked with 422 and a JSON reason; the stub saw nothing", async () => {
        const before = stubEntries().length;
        const r = await send(block.url, "POST", "/api/chat", chat("my card is 4111 1111 1111 1111"), { "X-Request-Id": "pii-block-1" });
        assert.equal(r.status, 422);
        assert.deepEqual(JSON.parse(r.body).error.code, "pii_detected");
        assert.deepEqual(JSON.parse(r.body).error.rule, "pii.payment-card");
        assert.equal(JSON.parse(r.body).error.requestId, "pii-block-1");
        assert.ok(!r.body.includes("4111"));
        assert.equal(stubEntries().length, before);
        const e = auditFor("pii-block-1");
        assert.equal(e.event.outcome, "failure");
        assert.equal(e.event.kind, "alert");
        assert.equal(e.rule.id, "pii.payment-card");
        assert.ok(!JSON.stringify(e).includes("4111"));
    });

    test("a disallowed model and a denied path are refused; the stub saw nothing", async () => {
        const before = stubEntries().length;
        assert.equal((await send(block.url, "POST", "/api/chat", { ...chat("hi"), model: "secret:70b" })).status, 403);
        assert.equal((await send(block.url, "POST", "/api/pull", { model: "secret:70b" })).status, 404);
        assert.equal((await send(block.url, "POST", "/api/generate", { model: "llama3.2:3b", prompt: "x".repeat(2 * 1024 * 1024) })).status, 413);
        assert.equal(stubEntries().length, before);
    });
});

describe("redaction", () => {
    test("the stub receives only the redacted text, with a correct Content-Length", async () => {
        const r = await send(redact.url, "POST", "/api/chat", chat("reach me at bob@example.com or +44 20 7946 0958", { stream: false }), { "X-Request-Id": "redact-1" });
        assert.equal(r.status, 200);
        const got = stubEntries().filter((e) => e.kind === "request" && e.path === "/api/chat").at(-1)!;
        assert.equal(got.kind, "request");
        if (got.kind !== "request") return;
        assert.equal(JSON.parse(got.body).messages[0].content, "reach me at [REDACTED:email] or [REDACTED:phone]");
        assert.ok(!got.body.includes("bob@example.com"));
        assert.equal(Number(got.headers["content-length"]), Buffer.byteLength(got.body));
        assert.deepEqual(auditFor("redact-1").zto.filter.redactions, { email: 1, phone: 1 });
        assert.equal(auditFor("redact-1").event.action, "filter-redact");
    });
});

describe("streaming relay", () => {
    test("NDJSON arrives in several chunks spread over time, not as one buffered body", async () => {
        const r = await send(block.url, "POST", "/api/chat", chat("hi"));
        assert.equal(r.status, 200);
        assert.match(String(r.headers["content-type"]), /ndjson/);
        assert.ok(r.chunkTimes.length >= 4, `got ${r.chunkTimes.length} chunks`);
        assert.ok(r.chunkTimes.at(-1)! - r.chunkTimes[0]! > 0, "chunks arrive over time");
        assert.equal(r.body.trim().split("\n").length, 7);
    });

    test("SSE from /v1 arrives in several chunks", async () => {
        const r = await send(block.url, "POST", "/v1/chat/completions", chat("hi", { stream: true }));
        assert.match(String(r.headers["content-type"]), /event-stream/);
        assert.ok(r.chunkTimes.length >= 4, `got ${r.chunkTimes.length} chunks`);
        assert.ok(r.body.includes("data: [DONE]"));
    });

    test("a client abort closes the upstream connection", async () => {
        const before = stubEntries().length;
        const slow = await startStubOllama({ logFile: stubLog, tokenIntervalMs: 200, tokens: 50 });
        const f = await startFilter(rulesFor({}), slow.url);
        try {
            await new Promise<void>((resolve, reject) => {
                const req = http.request(f.url + "/api/generate", { method: "POST", headers: { "X-Request-Id": "abort-1" }, agent: false }, (res) => {
                    res.once("data", () => {
                        req.destroy();
                        resolve();
                    });
                });
                req.on("error", () => {});
                req.end(JSON.stringify({ model: "llama3.2:3b", prompt: "tell me a long story" }));
                setTimeout(() => reject(new Error("no first chunk")), 3000);
            });
            const aborted = await waitFor(() => stubEntries().slice(before).some((e) => e.kind === "client-abort" && e.path === "/api/generate"), 3000);
            assert.ok(aborted, "the stub logged the closed connection");
            const entry = stubEntries().slice(before).find((e) => e.kind === "client-abort")!;
            assert.ok(entry.kind === "client-abort" && entry.framesSent < 50, "generation stopped early");
            await waitFor(() => audits().some((e) => e.http?.request?.id === "abort-1"), 2000);
            assert.equal(auditFor("abort-1").zto.filter.client_aborted, true);
        } finally {
            await f.close();
            await slow.close();
        }
    });
});

describe("audit events", () => {
    test("carry identity, model, decision and the token counts of Ollama's final chunk, never text", async () => {
        const headers = { "X-Request-Id": "audit-1", "X-Auth-Request-User": "alice", "X-Auth-Request-Email": "alice@example.com", "X-Auth-Request-Groups": "ml-eng, staff", "X-Device-Name": "alice-laptop" };
        const r = await send(block.url, "POST", "/api/chat", { ...chat("a secret plan"), model: "qwen2.5:7b" }, headers);
        assert.equal(r.status, 200);
        const e = auditFor("audit-1");
        assert.deepEqual(e.user, { name: "alice", email: "alice@example.com", roles: ["ml-eng", "staff"] });
        assert.deepEqual(e.device, { id: "alice-laptop" });
        assert.equal(e["gen_ai"].request.model.id, "qwen2.5:7b");
        assert.equal(e["gen_ai"].operation.name, "chat");
        assert.ok(e["gen_ai"].usage.input_tokens > 0);
        assert.equal(e["gen_ai"].usage.output_tokens, 6);
        assert.ok(e.zto.ollama.total_duration_ns > 0);
        assert.equal(e.url.path, "/api/chat");
        assert.equal(e.http.response.status_code, 200);
        assert.equal(e.event.outcome, "success");
        assert.equal(e.zto.filter.prompt_chars, "a secret plan".length);
        assert.ok(!JSON.stringify(e).includes("secret plan"));
        assert.ok(!JSON.stringify(e).includes("sky"), "no completion text");
    });

    test("token counts from OpenAI usage (SSE) and Anthropic message events", async () => {
        await send(block.url, "POST", "/v1/chat/completions", chat("hi", { stream: true, stream_options: { include_usage: true } }), { "X-Request-Id": "audit-openai" });
        assert.equal(auditFor("audit-openai")["gen_ai"].usage.output_tokens, 6);
        await send(block.url, "POST", "/v1/messages", { model: "llama3.2:3b", max_tokens: 50, stream: true, messages: [{ role: "user", content: "hi" }] }, { "X-Request-Id": "audit-anthropic" });
        const a = auditFor("audit-anthropic")["gen_ai"].usage;
        assert.ok(a.input_tokens > 0);
        assert.equal(a.output_tokens, 6);
        await send(block.url, "POST", "/v1/responses", { model: "llama3.2:3b", stream: false, input: "hi" }, { "X-Request-Id": "audit-responses" });
        assert.equal(auditFor("audit-responses")["gen_ai"].usage.output_tokens, 6);
    });

    test("a client-supplied request id that is not a plain token is replaced", async () => {
        const r = await send(block.url, "POST", "/api/pull", {}, { "X-Request-Id": "bad id\twith spaces" });
        const id = JSON.parse(r.body).error.requestId;
        assert.match(id, /^[0-9a-f-]{36}$/);
    });
});

describe("listings", () => {
    test("/api/tags and /v1/models show only the caller's models", async () => {
        const tags = JSON.parse((await send(block.url, "GET", "/api/tags")).body);
        assert.deepEqual(tags.models.map((m: { name: string }) => m.name), ["llama3.2:3b"]);
        const v1 = JSON.parse((await send(block.url, "GET", "/v1/models", undefined, { "X-Auth-Request-Groups": "ml-eng" })).body);
        assert.deepEqual(v1.data.map((m: { id: string }) => m.id), ["llama3.2:3b", "qwen2.5:7b"]);
        assert.equal((await send(block.url, "GET", "/v1/models/secret:70b")).status, 403);
    });
});

describe("upstream failures are masked", () => {
    const leaky = (handler: http.RequestListener) => {
        const s = http.createServer(handler);
        return new Promise<{ url: string; close: () => void }>((resolve) =>
            s.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, close: () => (s.closeAllConnections(), s.close()) })),
        );
    };

    test("a 5xx body naming internal hosts is replaced by a JSON error", async () => {
        const up = await leaky((_req, res) => {
            res.writeHead(500, { "content-type": "application/json" });
            res.end(JSON.stringify({ error: "dial tcp 10.9.8.7:11434: connection refused" }));
        });
        const f = await startFilter(rulesFor({}), up.url);
        try {
            const r = await send(f.url, "POST", "/api/chat", chat("hi"));
            assert.equal(r.status, 502);
            assert.equal(JSON.parse(r.body).error.code, "upstream_error");
            assert.ok(!r.body.includes("10.9.8.7"));
        } finally {
            await f.close();
            up.close();
        }
    });

    test("a 4xx keeps Ollama's status, never its text or content type", async () => {
        const up = await leaky((req, res) => {
            res.writeHead(req.url === "/api/show" ? 404 : 400, { "content-type": "text/plain" });
            res.end("json: cannot unmarshal array into Go struct field ChatRequest.messages of type api.Message at 10.9.8.7");
        });
        const f = await startFilter(rulesFor({}), up.url);
        try {
            const r = await send(f.url, "POST", "/api/chat", chat("hi"));
            assert.equal(r.status, 400);
            assert.equal(r.headers["content-type"], "application/json");
            assert.deepEqual([JSON.parse(r.body).error.code, JSON.parse(r.body).error.rule], ["upstream_bad_request", "upstream"]);
            assert.ok(!r.body.includes("unmarshal") && !r.body.includes("10.9.8.7"));
            const missing = await send(f.url, "POST", "/api/show", { model: "llama3.2:3b" });
            assert.deepEqual([missing.status, JSON.parse(missing.body).error.code], [404, "upstream_not_found"]);
        } finally {
            await f.close();
            up.close();
        }
    });

    test("a request Node's parser refuses gets a JSON 400", async () => {
        const f = await startFilter(rulesFor({}), "http://127.0.0.1:9");
        try {
            const port = Number(new URL(f.url).port);
            const raw = await new Promise<string>((resolve) => {
                const s = net.connect(port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nBad Header\r\n\r\n"));
                let text = "";
                s.on("data", (c: Buffer) => (text += c.toString()));
                s.on("close", () => resolve(text));
            });
            assert.match(raw, /^HTTP\/1\.1 400 /);
            assert.match(raw, /\r\nContent-Type: application\/json\r\n/i);
            assert.equal(JSON.parse(raw.split("\r\n\r\n")[1]!).error.code, "invalid_request");
        } finally {
            await f.close();
        }
    });

    test("an unreachable upstream is a 502 without its address", async () => {
        const up = await leaky(() => {});
        const deadPort = Number(new URL(up.url).port);
        up.close();
        const f = await startFilter(rulesFor({}), `http://127.0.0.1:${deadPort}`);
        try {
            const r = await send(f.url, "POST", "/api/chat", chat("hi"));
            assert.equal(r.status, 502);
            assert.equal(JSON.parse(r.body).error.code, "upstream_unavailable");
            assert.ok(!r.body.includes(String(deadPort)) && !r.body.includes("127.0.0.1"));
        } finally {
            await f.close();
        }
    });

    test("an upstream that never answers becomes a 504 after the rules' timeout", async () => {
        const up = await leaky(() => {});
        const base = rulesFor({});
        const f = await startFilter({ ...base, upstream: { timeoutSeconds: 1 } }, up.url);
        try {
            const r = await send(f.url, "POST", "/api/chat", chat("hi"), { "X-Request-Id": "timeout-1" });
            assert.equal(r.status, 504);
            assert.equal(JSON.parse(r.body).error.code, "upstream_timeout");
            assert.equal(auditFor("timeout-1").event.reason, "upstream_timeout");
        } finally {
            await f.close();
            up.close();
        }
    });
});

describe("CLI", () => {
    const main = join(__dirname, "../../filter/src/main.ts");

    test("prints exactly `listening 127.0.0.1:<port>`, serves, and sends audit events to syslog", async () => {
        const sock = dgram.createSocket("udp4");
        await new Promise<void>((resolve) => sock.bind(0, "127.0.0.1", () => resolve()));
        const received: string[] = [];
        sock.on("message", (m) => received.push(m.toString()));
        const rules = rulesFor({}, { siem: { syslogAddress: `udp://127.0.0.1:${sock.address().port}` } });
        const rulesFile = join(dir, "cli-rules.json");
        writeFileSync(rulesFile, JSON.stringify(rules));
        const cliAudit = join(dir, "cli-audit.log");
        const child = spawn(process.execPath, ["--import", "tsx", main, "--rules", rulesFile, "--listen", "127.0.0.1:0", "--upstream", stub.url, "--audit-log", cliAudit], { stdio: ["ignore", "pipe", "pipe"] });
        try {
            const first = await new Promise<string>((resolve, reject) => {
                let out = "";
                child.stdout.on("data", (c: Buffer) => {
                    out += c.toString();
                    if (out.includes("\n")) resolve(out.split("\n")[0]!);
                });
                child.on("exit", (code) => reject(new Error(`exited ${code}`)));
            });
            const m = /^listening 127\.0\.0\.1:(\d+)$/.exec(first);
            assert.ok(m, first);
            const r = await send(`http://127.0.0.1:${m[1]}`, "POST", "/api/chat", chat("hi", { stream: false }), { "X-Request-Id": "cli-1" });
            assert.equal(r.status, 200);
            assert.equal(auditFor("cli-1", cliAudit)["gen_ai"].usage.output_tokens, 6);
            assert.ok(await waitFor(() => received.length > 0, 2000), "a syslog datagram arrived");
            assert.match(received[0]!, /^<134>1 \d{4}-\d\d-\d\dT[\d:.]+Z \S+ zto-filter \d+ audit - \{/);
            assert.equal(JSON.parse(received[0]!.slice(received[0]!.indexOf("{"))).http.request.id, "cli-1");
        } finally {
            child.kill("SIGTERM");
            sock.close();
        }
    });

    test("a bad rules file or argument exits 2 with a message, no stack trace", async () => {
        const bad = join(dir, "bad-rules.json");
        writeFileSync(bad, JSON.stringify({ version: 1 }));
        for (const args of [["--rules", bad, "--listen", "127.0.0.1:0", "--upstream", stub.url], ["--rules", bad, "--listen", "nope", "--upstream", stub.url], ["--bogus", "1"]]) {
            const child = spawn(process.execPath, ["--import", "tsx", main, ...args], { stdio: ["ignore", "pipe", "pipe"] });
            let err = "";
            child.stderr.on("data", (c: Buffer) => (err += c.toString()));
            const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
            assert.equal(code, 2, err);
            assert.match(err, /^zto-filter: /);
            assert.ok(!/\n\s+at /.test(err), "no stack trace");
        }
    });
});

test("the audit log holds one line per request and no prompt text anywhere", () => {
    const text = readFileSync(auditLog, "utf8");
    assert.ok(!text.includes("4111 1111") && !text.includes("bob@example.com") && !text.includes("tell me a long story"));
});

describe("identity headers", () => {
    test("a long groups header is used whole; an oversized one is ignored, never truncated into another group", async () => {
        const many = Array.from({ length: 40 }, (_, i) => `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`);
        const ok = await send(block.url, "POST", "/api/chat", { ...chat("hi", { stream: false }), model: "qwen2.5:7b" }, { "X-Auth-Request-Groups": [...many, "ml-eng"].join(",") });
        assert.equal(ok.status, 200, "a group after 1.5 KB of other groups still counts");
        const huge = [..."x".repeat(9000).match(/.{1,100}/g)!, "ml-eng"].join(",");
        const refused = await send(block.url, "POST", "/api/chat", { ...chat("hi", { stream: false }), model: "qwen2.5:7b" }, { "X-Auth-Request-Groups": huge });
        assert.equal(refused.status, 403);
    });
});

describe("the hop to Ollama", () => {
    test("requests reuse pooled keep-alive connections to Ollama; a bodiless request is forwarded without a body", async () => {
        // A recorder in place of Ollama: counts the connections the filter opens and what each request carried.
        const seen: { method: string; length?: string; encoding?: string; bytes: number }[] = [];
        let connections = 0;
        const upstream = http.createServer((req, res) => {
            let bytes = 0;
            req.on("data", (c: Buffer) => (bytes += c.length));
            req.on("end", () => {
                seen.push({ method: req.method!, length: req.headers["content-length"], encoding: req.headers["transfer-encoding"], bytes });
                res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
                res.end('{"version":"0.17.4"}');
            });
        });
        upstream.on("connection", () => connections++);
        await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", () => resolve()));
        const f = await startFilter(rulesFor({}), `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, join(dir, "hop-audit.log"));
        try {
            for (let i = 0; i < 20; i++) assert.equal((await send(f.url, "GET", "/api/version")).status, 200);
            assert.equal(connections, 1, "20 sequential requests, one upstream connection");
            const replies = await Promise.all(Array.from({ length: 8 }, () => send(f.url, "GET", "/api/version")));
            assert.ok(replies.every((r) => r.status === 200 && r.body === '{"version":"0.17.4"}'));
            assert.ok(connections <= 8, `8 parallel requests opened at most 8 connections in all (${connections})`);
            for (let i = 0; i < 8; i++) await send(f.url, "GET", "/api/version");
            assert.ok(connections <= 8, `the pool's connections were kept and reused (${connections})`);
            assert.ok(seen.every((s) => s.method === "GET" && s.bytes === 0 && s.length === undefined && s.encoding === undefined), "no body, no body headers");
        } finally {
            await f.close();
            await new Promise<void>((resolve) => upstream.close(() => resolve()));
        }
    });
});
