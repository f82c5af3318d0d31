/**
 * The filter names each request's model to the gateway's node-pool router (X-Zto-Model), from
 * the body it inspected, canonically; a client's own X-Zto-Model never travels upstream.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { renderFilterRules } from "../../components/filter/rules";
import { AuditSink } from "../../filter/src/audit";
import { createFilterServer } from "../../filter/src/server";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import type { StubServer } from "../../scripts/sandbox/listen";
import { startStubOllama, type OllamaRequestEntry } from "../../scripts/sandbox/stub-ollama";

const dir = mkdtempSync(join(tmpdir(), "zto-filter-routing-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const stubLog = join(dir, "ollama.log");
let stub: StubServer;
let filter: { url: string; close: () => Promise<void> };

function send(method: string, path: string, body?: object, headers: Record<string, string> = {}): Promise<number> {
    return new Promise((resolve, reject) => {
        const req = http.request(filter.url + path, { method, headers: { ...(body ? { "content-type": "application/json" } : {}), ...headers }, agent: false }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode!));
        });
        req.on("error", reject);
        req.end(body ? JSON.stringify(body) : undefined);
    });
}
const lastUpstream = (path: string) => readJsonLines<OllamaRequestEntry>(stubLog).filter((e) => e.kind === "request" && e.path === path).at(-1)!;

describe("filter: model routing header", () => {
    before(async () => {
        stub = await startStubOllama({ logFile: stubLog, tokenIntervalMs: 1, tokens: 2, models: ["llama3.2:3b", "qwen2.5:7b"] });
        const rules = renderFilterRules(loadStackConfig({ domain: "ollama.example.internal", filter: { modelsByGroup: { "*": ["llama3.2:3b", "qwen2.5:7b"] } } }));
        const { server, close } = createFilterServer({ rules, upstream: new URL(stub.url), audit: new AuditSink({ stdout: false, file: join(dir, "audit.log"), appName: "zto-filter" }) });
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
        filter = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close };
    });
    after(async () => {
        await filter?.close();
        await stub?.close();
    });

    test("a generation names its model, canonically", async () => {
        // The stub knows only the short name and answers 404; what matters is what it was sent.
        await send("POST", "/api/generate", { model: "library/llama3.2:3b", prompt: "hi", stream: false });
        const got = lastUpstream("/api/generate");
        assert.equal(JSON.parse(got.body).model, "library/llama3.2:3b");
        assert.equal(got.headers["x-zto-model"], "llama3.2:3b");
    });

    test("the model comes from the inspected body, never from the client's header", async () => {
        assert.equal(await send("POST", "/api/chat", { model: "qwen2.5:7b", messages: [{ role: "user", content: "hi" }], stream: false }, { "X-Zto-Model": "llama3.2:3b" }), 200);
        assert.equal(lastUpstream("/api/chat").headers["x-zto-model"], "qwen2.5:7b");
    });

    test("a call that names no model sends no routing header", async () => {
        assert.equal(await send("GET", "/api/version", undefined, { "X-Zto-Model": "qwen2.5:7b" }), 200);
        assert.equal(lastUpstream("/api/version").headers["x-zto-model"], undefined);
    });
});
