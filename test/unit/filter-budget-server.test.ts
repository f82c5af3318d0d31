/**
 * Budgets in the filter's request path, in-process against the stub Ollama (which logs every
 * request it receives): a request the budget cannot cover gets 429 token_budget_exceeded with
 * Retry-After and never reaches Ollama; admitted requests are settled on Ollama's own counts
 * (native counts, /v1 usage the filter asked for and strips again), aborts on what was relayed,
 * 50 concurrent requests never spend more than the budget, and a reservation batch whose commit
 * fails refuses every request of it (503) with nothing forwarded and nothing charged.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import { loadStackConfig } from "../../components/config";
import { renderFilterRules } from "../../components/filter/rules";
import { AuditSink } from "../../filter/src/audit";
import { BudgetLedger } from "../../filter/src/budget/ledger";
import { BudgetStore } from "../../filter/src/budget/store";
import { createFilterServer } from "../../filter/src/server";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import type { StubServer } from "../../scripts/sandbox/listen";
import { checkCrowd, CROWD } from "./budget-crowd";
import { startStubOllama, type OllamaRequestEntry } from "../../scripts/sandbox/stub-ollama";

const dir = mkdtempSync(join(tmpdir(), "zto-budget-server-"));
const stubLog = join(dir, "ollama.log");
const auditLog = join(dir, "audit.log");
const storeFile = join(dir, "store", "budgets.db");
/** Reservation of a one-message "hi" chat with num_predict 18: 64 + 16 + 2 prompt bound + 18 output. */
const HI_RESERVATION = 100;

let stub: StubServer;
let store: BudgetStore;
let ledger: BudgetLedger;
let url: string;
let close: () => Promise<void>;

before(async () => {
    stub = await startStubOllama({ logFile: stubLog, tokenIntervalMs: 30, tokens: 6 });
    const rules = renderFilterRules(
        loadStackConfig({
            domain: "ollama.example.internal",
            filter: { maxOutputTokens: 40, budgets: { "*": { tokensPerDay: 10 * HI_RESERVATION }, "big-team": { tokensPerDay: 1_000_000 } } },
        }),
    );
    store = BudgetStore.open(storeFile);
    ledger = new BudgetLedger(rules.budgets, store);
    const f = createFilterServer({ rules, upstream: new URL(stub.url), audit: new AuditSink({ stdout: false, file: auditLog, appName: "zto-filter" }), budgets: ledger });
    await new Promise<void>((resolve) => f.server.listen(0, "127.0.0.1", () => resolve()));
    url = `http://127.0.0.1:${(f.server.address() as AddressInfo).port}`;
    close = f.close;
});
after(async () => {
    await close();
    store.close();
    await stub.close();
    rmSync(dir, { recursive: true, force: true });
});

interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}
function send(path: string, body: unknown, headers: Record<string, string>, method = "POST"): Promise<Reply> {
    return new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request(url + path, { method, headers: { ...(payload ? { "content-type": "application/json" } : {}), ...headers }, agent: false }, (res) => {
            let text = "";
            res.on("data", (c: Buffer) => (text += c.toString()));
            res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        });
        req.on("error", reject);
        req.end(payload);
    });
}
const stubRequests = () => readJsonLines<OllamaRequestEntry>(stubLog).filter((e) => e.kind === "request");
const hi = (extra: Record<string, unknown> = {}) => ({ model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], options: { num_predict: 18 }, ...extra });
const device = (name: string) => ({ "X-Device-Name": name });
const used = (subject: string, groups: string[] = []) => ledger.status(subject, groups).windows[0]!.used;

describe("budgets in the request path", () => {
    test("an admitted native chat is settled on prompt_eval_count + eval_count and says what is left", async () => {
        const r = await send("/api/chat", hi({ stream: false }), device("native-1"));
        assert.equal(r.status, 200);
        const doc = JSON.parse(r.body);
        const counted = doc.prompt_eval_count + doc.eval_count;
        assert.equal(used("device:native-1"), counted);
        // The header reflects the reservation at admission (the response was not yet settled).
        assert.equal(r.headers["x-budget-remaining-tokens"], String(10 * HI_RESERVATION - HI_RESERVATION));
        assert.ok(Number(r.headers["x-budget-reset"]) > 0 && Number(r.headers["x-budget-reset"]) <= 86_400);
        const event = readJsonLines<Record<string, any>>(auditLog).find((e) => e.zto?.budget?.subject === "device:native-1");
        assert.deepEqual(event?.zto.budget, { decision: "admitted", subject: "device:native-1", reserved_tokens: HI_RESERVATION, charged_tokens: counted });
    });

    test("a request the budget cannot cover gets 429 token_budget_exceeded with Retry-After; Ollama receives nothing", async () => {
        for (let i = 0; i < 10; i++) assert.equal((await send("/api/chat", hi({ stream: false, options: { num_predict: 18 } }), device("spender"))).status, 200);
        // Settled below the reservation, so a few more fit; spend until refused.
        let refused: Reply | undefined;
        for (let i = 0; i < 200 && !refused; i++) {
            const r = await send("/api/chat", hi({ stream: false }), device("spender"));
            if (r.status === 429) refused = r;
        }
        assert.ok(refused, "the budget ran out");
        const before = stubRequests().length;
        const r = await send("/api/chat", hi({ stream: false }), device("spender"));
        assert.equal(r.status, 429);
        assert.equal(JSON.parse(r.body).error.code, "token_budget_exceeded");
        assert.equal(JSON.parse(r.body).error.rule, "budget.tokensPerDay");
        assert.ok(Number(r.headers["retry-after"]) >= 1 && Number(r.headers["retry-after"]) <= 86_400);
        assert.ok(Number(r.headers["x-budget-remaining-tokens"]) < HI_RESERVATION);
        assert.equal(stubRequests().length, before, "Ollama received nothing");
        assert.ok(used("device:spender") <= 10 * HI_RESERVATION);
        // A member of a bigger group is not limited by "*" (most generous wins).
        assert.equal((await send("/api/chat", hi({ stream: false }), { ...device("spender"), "X-Auth-Request-User": "carol", "X-Auth-Request-Groups": "big-team" })).status, 200);
    });

    test("a /v1 stream is settled on the usage the filter asked for, and the client that did not ask never sees that chunk", async () => {
        const r = await send("/v1/chat/completions", { model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], stream: true, max_tokens: 18 }, device("sse-1"));
        assert.equal(r.status, 200);
        assert.doesNotMatch(r.body, /"usage"/);
        assert.match(r.body, /data: \[DONE\]/);
        const sent = JSON.parse(stubRequests().at(-1)!.body);
        assert.deepEqual(sent.stream_options, { include_usage: true });
        const charged = used("device:sse-1");
        assert.ok(charged > 0 && charged < HI_RESERVATION, `settled on usage (${charged}), not the reservation`);
        // Asked for: kept.
        const asked = await send("/v1/chat/completions", { model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], stream: true, max_tokens: 18, stream_options: { include_usage: true } }, device("sse-2"));
        const usage = asked.body.split("\n\n").map((e) => e.replace(/^data: /, "")).filter((e) => e.includes('"usage"')).map((e) => JSON.parse(e).usage);
        assert.equal(usage.length, 1);
        assert.equal(used("device:sse-2"), usage[0].prompt_tokens + usage[0].completion_tokens);
    });

    test("a client abort mid-stream is settled on what was relayed, below the reservation", async () => {
        await new Promise<void>((resolve, reject) => {
            const req = http.request(url + "/api/generate", { method: "POST", headers: { "content-type": "application/json", ...device("aborter") }, agent: false }, (res) => {
                res.once("data", () => {
                    req.destroy();
                    resolve();
                });
            });
            req.on("error", () => undefined);
            req.end(JSON.stringify({ model: "llama3.2:3b", prompt: "hi", options: { num_predict: 40 } }));
            setTimeout(() => reject(new Error("no data within 60 s")), 60_000).unref();
        });
        // Prompt bound 64 + 2 bytes (a generate prompt adds no per-message overhead) + num_predict 40.
        const reservation = 64 + 2 + 40;
        const settled = () => readJsonLines<Record<string, any>>(auditLog).find((e) => e.zto?.budget?.subject === "device:aborter");
        const end = Date.now() + 60_000;
        while (!settled() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
        const b = settled()!.zto.budget;
        assert.equal(b.reserved_tokens, reservation);
        assert.ok(b.charged_tokens > 64 + 2 && b.charged_tokens < reservation, `charged ${b.charged_tokens}`);
        assert.equal(used("device:aborter"), b.charged_tokens);
    });

    test("50 concurrent requests at a budget that fits 10 reservations never spend more than the budget", async () => {
        const before = stubRequests().length;
        const replies = await Promise.all(Array.from({ length: CROWD }, () => send("/api/chat", hi({ stream: false }), device("crowd"))));
        const admitted = checkCrowd(replies, stubRequests().length - before);
        assert.ok(used("device:crowd") <= 10 * HI_RESERVATION, `spent ${used("device:crowd")}`);
        const rows = store.usageSince(0).filter((r) => r.subject === "device:crowd");
        assert.equal(rows.length, admitted);
        assert.equal(rows.reduce((n, r) => n + r.charged, 0), used("device:crowd"));
    });

    test("a reservation batch whose commit fails refuses every request of it with 503 budget_store_unavailable: nothing forwarded, nothing charged", async () => {
        // The fault: a second connection to the same file makes SQLite abort the batch's INSERTs (a
        // real failed commit on the store's own connection, no hook in the filter).
        const fault = new Database(storeFile);
        fault.exec("CREATE TRIGGER injected_fault BEFORE INSERT ON requests WHEN NEW.subject = 'device:faulty' BEGIN SELECT RAISE(ABORT, 'injected fault'); END");
        const before = stubRequests().length;
        try {
            const replies = await Promise.all(Array.from({ length: 5 }, () => send("/api/chat", hi({ stream: false }), device("faulty"))));
            for (const r of replies) {
                assert.equal(r.status, 503);
                assert.deepEqual([JSON.parse(r.body).error.code, JSON.parse(r.body).error.rule], ["budget_store_unavailable", "budget.store.commit"]);
            }
            assert.equal(stubRequests().length, before, "Ollama received nothing");
            assert.equal(used("device:faulty"), 0, "the in-memory charge was released");
            assert.equal(store.usageSince(0).filter((r) => r.subject === "device:faulty").length, 0);
            const events = readJsonLines<Record<string, any>>(auditLog).filter((e) => e.zto?.budget?.subject === "device:faulty");
            assert.equal(events.length, 5);
            for (const e of events) assert.equal(e.zto.budget.decision, "refused");
        } finally {
            fault.exec("DROP TRIGGER injected_fault");
            fault.close();
        }
        // The store works again: the next request is admitted, committed and settled.
        assert.equal((await send("/api/chat", hi({ stream: false }), device("faulty"))).status, 200);
        assert.equal(store.usageSince(0).filter((r) => r.subject === "device:faulty").length, 1);
    });
});
