import assert from "node:assert/strict";
import * as net from "node:net";
import { describe, test } from "node:test";
import { ENDPOINTS } from "../../components/gateway/endpoints";
import { auditEvent } from "../../filter/src/audit";
import { formatSyslog, parseSyslogAddress, SyslogClient } from "../../filter/src/syslog";
import { UsageTap } from "../../filter/src/usage";

const chatEndpoint = ENDPOINTS.find((e) => e.id === "chat")!;

describe("usage tap", () => {
    const ndjson = ['{"model":"m","message":{"content":"usage of words"},"done":false}', '{"model":"m","done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":34,"total_duration":5000,"load_duration":100,"prompt_eval_duration":200,"eval_duration":4000}', ""].join("\n");

    test("reads Ollama's final chunk however the stream is split", () => {
        for (const size of [1, 7, 64, ndjson.length]) {
            const tap = new UsageTap("lines");
            for (let i = 0; i < ndjson.length; i += size) tap.push(Buffer.from(ndjson.slice(i, i + size)));
            assert.deepEqual(tap.finish(), { inputTokens: 12, outputTokens: 34, totalDurationNs: 5000, loadDurationNs: 100, promptEvalDurationNs: 200, evalDurationNs: 4000, finishReason: "stop" }, `chunk size ${size}`);
        }
    });

    test("reads OpenAI SSE usage and Anthropic message events", () => {
        const openai = UsageTap.forContentType("text/event-stream");
        openai.push(Buffer.from('data: {"choices":[{"delta":{"content":"hi"},"finish_reason":null}]}\n\ndata: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}\n\ndata: [DONE]\n\n'));
        assert.deepEqual(openai.finish(), { inputTokens: 5, outputTokens: 7, finishReason: "stop" });
        const anthropic = UsageTap.forContentType("text/event-stream; charset=utf-8");
        anthropic.push(Buffer.from('event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":9,"output_tokens":1}}}\n\nevent: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":21}}\n\n'));
        assert.deepEqual(anthropic.finish(), { inputTokens: 9, outputTokens: 21, finishReason: "end_turn" });
    });

    test("reads a whole JSON body; ignores garbage", () => {
        const whole = UsageTap.forContentType("application/json");
        whole.push(Buffer.from('{"object":"list","usage":{"prompt_tokens":3,'));
        whole.push(Buffer.from('"total_tokens":3}}'));
        assert.deepEqual(whole.finish(), { inputTokens: 3 });
        const junk = UsageTap.forContentType("application/x-ndjson");
        junk.push(Buffer.from("not json usage\n{\"eval_count\": -5}\n"));
        assert.deepEqual(junk.finish(), {});
    });
});

describe("audit event", () => {
    const base = { requestId: "r1", method: "POST", path: "/api/chat", identity: { user: "alice", email: "alice@example.com", groups: ["ml-eng"], device: "alice-laptop" }, startedAt: new Date("2026-01-01T00:00:00Z"), durationMs: 1.5, requestBytes: 100 };

    test("a refusal is an ECS alert with the rule, no usage, no text", () => {
        const e = auditEvent({ ...base, status: 422, decision: { action: "refuse", status: 422, code: "pii_detected", rule: "pii.email", endpoint: chatEndpoint, model: "llama3.2:3b", promptChars: 40, items: 1 } });
        assert.deepEqual(e, {
            "@timestamp": "2026-01-01T00:00:00.000Z",
            ecs: { version: "8.17.0" },
            event: { kind: "alert", category: ["intrusion_detection", "web"], type: ["denied"], action: "filter-refuse", outcome: "failure", reason: "pii_detected", duration: 1_500_000, dataset: "zto.filter" },
            http: { request: { id: "r1", method: "POST", bytes: 100 }, response: { status_code: 422 } },
            url: { path: "/api/chat" },
            user: { name: "alice", email: "alice@example.com", roles: ["ml-eng"] },
            device: { id: "alice-laptop" },
            rule: { id: "pii.email", category: "pii", ruleset: "zto-filter" },
            gen_ai: { system: "ollama", operation: { name: "chat" }, request: { model: { id: "llama3.2:3b" } } },
            zto: { filter: { decision: "refuse", endpoint: "chat", prompt_chars: 40, items: 1 } },
        });
    });

    test("a forwarded, redacted request carries usage, durations and redaction counts", () => {
        const e = auditEvent({
            ...base,
            status: 200,
            responseBytes: 900,
            usage: { inputTokens: 10, outputTokens: 20, totalDurationNs: 3, loadDurationNs: 1, promptEvalDurationNs: 1, evalDurationNs: 1, finishReason: "stop" },
            decision: { action: "forward", endpoint: chatEndpoint, model: "llama3.2:3b", promptChars: 40, items: 2, stream: true, redactions: { email: 2 }, inspected: [] },
        }) as any;
        assert.equal(e.event.kind, "event");
        assert.equal(e.event.action, "filter-redact");
        assert.equal(e.event.outcome, "success");
        assert.equal(e.rule, undefined);
        assert.deepEqual(e.gen_ai.usage, { input_tokens: 10, output_tokens: 20 });
        assert.deepEqual(e.gen_ai.response, { finish_reasons: ["stop"] });
        assert.deepEqual(e.zto.ollama, { total_duration_ns: 3, load_duration_ns: 1, prompt_eval_duration_ns: 1, eval_duration_ns: 1 });
        assert.deepEqual(e.zto.filter.redactions, { email: 2 });
    });
});

describe("syslog", () => {
    test("RFC 5424 record: PRI local0, version 1, header fields sanitised", () => {
        const rec = formatSyslog({ severity: "warning", appName: "zto filter", msgId: "audit", message: "{\"a\":1}", timestamp: new Date("2026-01-02T03:04:05.678Z"), host: "gpu-01", procId: "42" });
        assert.equal(rec, '<132>1 2026-01-02T03:04:05.678Z gpu-01 ztofilter 42 audit - {"a":1}');
    });

    test("addresses are parsed strictly", () => {
        assert.deepEqual(parseSyslogAddress("tcp://siem.internal:6514"), { protocol: "tcp", host: "siem.internal", port: 6514 });
        for (const bad of ["siem:514", "http://siem:514", "udp://siem", "udp://siem:99999"]) assert.throws(() => parseSyslogAddress(bad), /udp:\/\/host:port/);
    });

    test("TCP uses octet-counting framing and queues records until connected", async () => {
        let received = "";
        const server = net.createServer((s) => s.on("data", (c) => (received += c.toString())));
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
        const client = new SyslogClient({ protocol: "tcp", host: "127.0.0.1", port: (server.address() as net.AddressInfo).port });
        client.send("<134>1 - - - - - - first");
        client.send("<134>1 - - - - - - ä");
        const end = Date.now() + 2000;
        while (Date.now() < end && !received.includes("ä")) await new Promise((r) => setTimeout(r, 20));
        await client.close();
        server.close();
        assert.equal(received, "24 <134>1 - - - - - - first21 <134>1 - - - - - - ä");
        assert.equal(client.dropped, 0);
    });
});
