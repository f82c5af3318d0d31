/**
 * Token budgets, pure parts and the store: window arithmetic in a time zone, effective limits,
 * the reservation bound and the body changes behind it, the usage-chunk stripper, admission that
 * can never overspend, settlement rules, and a store that refuses to start from zero by accident.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import Database from "better-sqlite3";
import { loadStackConfig } from "../../components/config";
import { renderFilterRules } from "../../components/filter/rules";
import { requestCost } from "../../filter/src/budget/cost";
import { BudgetLedger, settledTokens, type Reservation } from "../../filter/src/budget/ledger";
import { UsageChunkStripper } from "../../filter/src/budget/sse-usage";
import { BudgetStore, markerPath, SETTLE_BATCH, SETTLE_DELAY_MS } from "../../filter/src/budget/store";
import { effectiveLimits, windowAt, WindowCalendar, type BudgetRules } from "../../filter/src/budget/windows";
import { compilePolicy, decide, type Forward } from "../../filter/src/decide";

const dir = mkdtempSync(join(tmpdir(), "zto-budget-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const storeFile = () => join(dir, `s${++n}`, "budgets.db");

const rules = (budgets: BudgetRules["groups"], mode: BudgetRules["mode"] = "generous", timeZone = "UTC"): BudgetRules => ({ groups: budgets, mode, timeZone, chargeBy: "user" });

describe("windows", () => {
    test("hour, day and month in UTC", () => {
        const t = Date.UTC(2026, 1, 28, 13, 45, 12, 345);
        assert.deepEqual(windowAt("hour", t, "UTC"), { kind: "hour", start: Date.UTC(2026, 1, 28, 13), end: Date.UTC(2026, 1, 28, 14) });
        assert.deepEqual(windowAt("day", t, "UTC"), { kind: "day", start: Date.UTC(2026, 1, 28), end: Date.UTC(2026, 2, 1) });
        assert.deepEqual(windowAt("month", t, "UTC"), { kind: "month", start: Date.UTC(2026, 1, 1), end: Date.UTC(2026, 2, 1) });
        assert.deepEqual(windowAt("month", Date.UTC(2026, 11, 31, 23), "UTC"), { kind: "month", start: Date.UTC(2026, 11, 1), end: Date.UTC(2027, 0, 1) });
    });

    test("days follow the configured zone, across a DST change (Europe/Berlin, 29 March 2026 has 23 hours)", () => {
        const t = Date.UTC(2026, 2, 29, 12);
        const day = windowAt("day", t, "Europe/Berlin");
        assert.equal(day.start, Date.UTC(2026, 2, 28, 23)); // midnight CET = 23:00 UTC
        assert.equal(day.end, Date.UTC(2026, 2, 29, 22)); // next midnight CEST = 22:00 UTC
        assert.equal(day.end - day.start, 23 * 3_600_000);
        const month = windowAt("month", t, "Europe/Berlin");
        assert.equal(month.start, Date.UTC(2026, 1, 28, 23));
        assert.equal(month.end, Date.UTC(2026, 2, 31, 22));
        // Half-hour zone: the hour window starts at the zone's whole hour.
        const hour = windowAt("hour", Date.UTC(2026, 0, 10, 10, 10), "Asia/Kolkata");
        assert.equal(hour.start, Date.UTC(2026, 0, 10, 9, 30));
    });

    test("the ledger's calendar gives windowAt's windows, in time order and out of it, across DST changes, half-hour zones and month ends", () => {
        const kinds = ["hour", "day", "month"] as const;
        for (const zone of ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]) {
            const calendar = new WindowCalendar(zone);
            // Every 17 minutes through two days around each 2026 DST change and the end of March.
            const instants = [Date.UTC(2026, 2, 7), Date.UTC(2026, 2, 28), Date.UTC(2026, 3, 4), Date.UTC(2026, 9, 3), Date.UTC(2026, 9, 24), Date.UTC(2026, 10, 0)].flatMap((from) => Array.from({ length: 170 }, (_, i) => from + i * 17 * 60_000));
            const shuffled = instants.map((_, i) => instants[(i * 7919) % instants.length]!);
            for (const t of [...instants, ...shuffled]) assert.deepEqual(calendar.at(t), kinds.map((k) => windowAt(k, t, zone)), `${zone} ${new Date(t).toISOString()}`);
        }
    });
});

describe("effective limits", () => {
    const groups = { "*": { tokensPerDay: 1000 }, "ml-eng": { tokensPerDay: 5000, tokensPerHour: 800, concurrentRequests: 2 } };
    test("generous: the most generous value per window; a window one group leaves unset is unlimited", () => {
        assert.deepEqual(effectiveLimits(rules(groups), ["ml-eng"]), { tokensPerDay: 5000 });
        assert.deepEqual(effectiveLimits(rules(groups), []), { tokensPerDay: 1000 });
    });
    test("strictest: the smallest value any applying group sets", () => {
        assert.deepEqual(effectiveLimits(rules(groups, "strictest"), ["ml-eng"]), { tokensPerDay: 1000, tokensPerHour: 800, concurrentRequests: 2 });
    });
    test("no applying group: not limited", () => {
        assert.equal(effectiveLimits(rules({ "ml-eng": { tokensPerDay: 1 } }), ["other"]), undefined);
    });
});

describe("config", () => {
    const base = { domain: "ollama.example.internal" };
    const problem = (filter: Record<string, unknown>) => {
        try {
            loadStackConfig({ ...base, filter });
        } catch (e) {
            return (e as Error).message;
        }
        assert.fail("config accepted");
    };
    test("an unknown key inside a budget is an error naming it", () => {
        assert.match(problem({ budgets: { "*": { tokensPerDay: 10, tokensPerWeek: 5 } } }), /filter\.budgets\.\*.*tokensPerWeek/s);
    });
    test("a budget with no window, a bad number, a bad zone or mode are errors naming the key", () => {
        assert.match(problem({ budgets: { "*": {} } }), /filter\.budgets\.\*.*at least one/s);
        assert.match(problem({ budgets: { "*": { tokensPerDay: 0 } } }), /filter\.budgets\.\*\.tokensPerDay/);
        assert.match(problem({ budgetTimeZone: "Mars/Olympus" }), /filter\.budgetTimeZone.*IANA/s);
        assert.match(problem({ budgetMode: "average" }), /filter\.budgetMode/);
    });
    test("valid budgets reach the filter rules", () => {
        const cfg = loadStackConfig({ ...base, filter: { budgets: { "*": { tokensPerDay: 10 } }, budgetMode: "strictest", budgetTimeZone: "Europe/Berlin" } });
        assert.deepEqual(renderFilterRules(cfg).budgets, { groups: { "*": { tokensPerDay: 10 } }, mode: "strictest", timeZone: "Europe/Berlin", chargeBy: "device" });
        assert.deepEqual(renderFilterRules(loadStackConfig(base)).budgets, { groups: {}, mode: "generous", timeZone: "UTC", chargeBy: "device" });
        assert.equal(renderFilterRules(loadStackConfig({ ...base, identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "zto", allowedGroups: ["ml-eng"] }, oidcClientSecret: "x" })).budgets.chargeBy, "user");
    });
});

const filterRules = renderFilterRules(loadStackConfig({ domain: "ollama.example.internal", filter: { maxOutputTokens: 50 } }));
const policy = compilePolicy(filterRules);
const forward = (path: string, body: unknown): Forward => {
    const d = decide(policy, { method: "POST", path, identity: { groups: [] }, body: Buffer.from(JSON.stringify(body)) });
    assert.equal(d.action, "forward");
    return d as Forward;
};

describe("reservation bound", () => {
    test("a native chat without a cap gets num_predict = maxOutputTokens; the prompt bound is one token per UTF-8 byte plus overhead", () => {
        const c = requestCost(forward("/api/chat", { model: "llama3.2:3b", messages: [{ role: "user", content: "héllo" }] }), 50, true);
        assert.equal(c.outputTokens, 50);
        assert.equal(c.promptTokens, 64 + 16 + 6);
        assert.equal(JSON.parse(c.body!.toString()).options.num_predict, 50);
        assert.equal(c.stripUsageChunk, false);
    });
    test("a client's own cap is kept and the body left as validated", () => {
        const d = forward("/api/generate", { model: "llama3.2:3b", prompt: "x", options: { num_predict: 7 } });
        const c = requestCost(d, 50, true);
        assert.equal(c.outputTokens, 7);
        assert.equal(c.body, d.body);
    });
    test("a /v1 chat stream gets max_tokens and include_usage, and the filter will strip the usage chunk", () => {
        const c = requestCost(forward("/v1/chat/completions", { model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], stream: true }), 50, true);
        const body = JSON.parse(c.body!.toString());
        assert.equal(body.max_tokens, 50);
        assert.deepEqual(body.stream_options, { include_usage: true });
        assert.equal(c.stripUsageChunk, true);
    });
    test("a client that asked for usage keeps its usage chunk", () => {
        const c = requestCost(forward("/v1/chat/completions", { model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], stream: true, stream_options: { include_usage: true }, max_completion_tokens: 9 }), 50, true);
        assert.equal(c.outputTokens, 9);
        assert.equal(c.stripUsageChunk, false);
    });
    test("a caller without a budget keeps the body as sent; the reservation still assumes the cap", () => {
        const d = forward("/api/chat", { model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }] });
        const c = requestCost(d, 50, false);
        assert.equal(c.outputTokens, 50);
        assert.equal(c.body, d.body);
    });
    test("embeddings cost their input only", () => {
        assert.equal(requestCost(forward("/api/embed", { model: "llama3.2:3b", input: "abc" }), 50, true).outputTokens, 0);
    });
    test("the cap and the usage option are added as members when absent and inside what is there otherwise: the same value, never a key twice", () => {
        const messages = [{ role: "user", content: "hi" }];
        const cases: [string, object, object][] = [
            ["/api/chat", { model: "llama3.2:3b", messages }, { options: { num_predict: 50 } }],
            ["/api/chat", { model: "llama3.2:3b", messages, options: { temperature: 0.5 } }, { options: { temperature: 0.5, num_predict: 50 } }],
            ["/v1/chat/completions", { model: "llama3.2:3b", messages, stream: true }, { max_tokens: 50, stream_options: { include_usage: true } }],
            ["/v1/chat/completions", { model: "llama3.2:3b", messages, stream: true, stream_options: { include_usage: false } }, { max_tokens: 50, stream_options: { include_usage: true } }],
            ["/v1/completions", { model: "llama3.2:3b", prompt: "hi", stream: true }, { max_tokens: 50, stream_options: { include_usage: true } }],
            ["/v1/responses", { model: "llama3.2:3b", input: "hi" }, { max_output_tokens: 50 }],
        ];
        for (const [path, body, added] of cases) {
            const text = requestCost(forward(path, body), 50, true).body!.toString();
            assert.deepEqual(JSON.parse(text), { ...body, ...added }, text);
            for (const key of Object.keys({ ...body, ...added })) assert.equal(text.split(`"${key}":`).length, 2, `${key} once in ${text}`);
        }
    });
});

describe("usage chunk stripper", () => {
    test("drops only the usage-only chunk, whatever the chunking", () => {
        const stream = 'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\ndata: [DONE]\n\n';
        for (const size of [1, 7, stream.length]) {
            const s = new UsageChunkStripper();
            let out = "";
            for (let i = 0; i < stream.length; i += size) out += s.push(Buffer.from(stream.slice(i, i + size))).toString();
            out += s.end().toString();
            assert.equal(out, 'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n', `chunk size ${size}`);
        }
    });
});

describe("ledger", () => {
    const cost = { promptTokens: 40, outputTokens: 60, body: undefined, stripUsageChunk: false };
    const admitN = (ledger: BudgetLedger, count: number, subject = "user:alice", groups: string[] = []) =>
        // Every admission is called in the same turn (one batch), before any commit answers.
        Promise.all(Array.from({ length: count }, () => ledger.admit({ subject, groups, model: "llama3.2:3b", endpoint: "chat", cost })));

    test("50 admissions at a budget that fits 10 admit exactly 10; the rest say which window and when it resets", async () => {
        const now = Date.UTC(2026, 5, 1, 10, 30);
        const ledger = new BudgetLedger(rules({ "*": { tokensPerDay: 1000 } }), BudgetStore.open(storeFile()), () => now);
        const results = await admitN(ledger, 50);
        assert.equal(results.filter((r) => r.admitted).length, 10);
        const refused = results.filter((r) => !r.admitted);
        assert.equal(refused.length, 40);
        for (const r of refused) {
            assert.equal(r.rule, "budget.tokensPerDay");
            assert.equal(r.retryAfterSeconds, 13.5 * 3600);
        }
        assert.equal(ledger.status("user:alice", []).windows[0]!.remaining, 0);
        // Another user has their own budget.
        assert.equal((await admitN(ledger, 1, "user:bob"))[0]!.admitted, true);
    });

    test("settling lower frees budget; concurrency limits open requests", async () => {
        const ledger = new BudgetLedger(rules({ "*": { tokensPerHour: 250, concurrentRequests: 2 } }), BudgetStore.open(storeFile()));
        const [a, b, c] = await admitN(ledger, 3);
        assert.ok(a!.admitted && b!.admitted && !c!.admitted);
        assert.equal(c!.rule, "budget.concurrentRequests");
        if (!a!.admitted) return;
        assert.equal(ledger.settle(a!.reservation, { usage: { inputTokens: 5, outputTokens: 5 }, frames: 5, clientAborted: false, nothingGenerated: false }), 10);
        assert.equal(ledger.status("user:alice", []).windows[0]!.used, 110);
        assert.equal((await admitN(ledger, 1))[0]!.admitted, true);
    });

    test("a request larger than the whole window is refused without Retry-After", async () => {
        const ledger = new BudgetLedger(rules({ "*": { tokensPerDay: 99 } }), BudgetStore.open(storeFile()));
        const [r] = await admitN(ledger, 1);
        assert.ok(r && !r.admitted);
        assert.equal(r.rule, "budget.tokensPerDay.request-too-large");
        assert.equal(r.retryAfterSeconds, undefined);
    });

    test("several windows: a window the request can never fit wins over a full one, else the first full window names the rule and Retry-After waits for the last to reset; limits follow each caller's groups", async () => {
        const now = Date.UTC(2026, 5, 1, 10, 30);
        const ledger = new BudgetLedger(rules({ "*": { tokensPerHour: 150, tokensPerDay: 120 }, big: { tokensPerHour: 1000, tokensPerDay: 1000 } }), BudgetStore.open(storeFile()), () => now);
        const [first, second] = await admitN(ledger, 2);
        assert.ok(first!.admitted && second && !second.admitted);
        assert.equal(second.rule, "budget.tokensPerHour");
        assert.equal(second.retryAfterSeconds, 13.5 * 3600, "the day resets after the hour");
        // The same ledger asked for a member of "big" (after "*" alone was asked): big's limits.
        assert.deepEqual((await admitN(ledger, 2, "user:carol", ["big"])).map((r) => r.admitted), [true, true]);
        assert.equal((await admitN(ledger, 1, "user:dave"))[0]!.admitted, true);
        assert.equal((await admitN(ledger, 1, "user:dave"))[0]!.admitted, false);

        const tight = new BudgetLedger(rules({ "*": { tokensPerHour: 120, tokensPerDay: 99 } }), BudgetStore.open(storeFile()), () => now);
        const small = { ...cost, outputTokens: 10 };
        assert.equal((await tight.admit({ subject: "user:alice", groups: [], model: "m", endpoint: "chat", cost: small })).admitted, true);
        const big = await tight.admit({ subject: "user:alice", groups: [], model: "m", endpoint: "chat", cost });
        assert.ok(!big.admitted);
        assert.equal(big.rule, "budget.tokensPerDay.request-too-large", "the hour is full too, but no wait would let the day take it");
        assert.equal(big.retryAfterSeconds, undefined);
    });

    test("settlement: Ollama's count; an abort with frames; no count keeps the reservation; failures cost nothing", async () => {
        const r: Reservation = { id: 1, subject: "s", startedAt: 0, windows: [], reserved: 100, promptTokens: 40, limited: true };
        assert.equal(settledTokens(r, { usage: { inputTokens: 12, outputTokens: 30 }, frames: 31, clientAborted: false, nothingGenerated: false }), 42);
        assert.equal(settledTokens(r, { usage: { inputTokens: 12 }, frames: 0, clientAborted: false, nothingGenerated: false }), 12);
        assert.equal(settledTokens(r, { usage: {}, frames: 5, clientAborted: true, nothingGenerated: false }), 45);
        assert.equal(settledTokens(r, { usage: {}, frames: 500, clientAborted: true, nothingGenerated: false }), 100);
        assert.equal(settledTokens(r, { usage: {}, frames: 0, clientAborted: true, nothingGenerated: false }), 100);
        assert.equal(settledTokens(r, { usage: {}, frames: 0, clientAborted: false, nothingGenerated: false }), 100);
        assert.equal(settledTokens(r, { usage: {}, frames: 0, clientAborted: false, nothingGenerated: true }), 0);
    });
});

describe("store", () => {
    test("reopening keeps every charge; requests open at the stop, or settled with the settlement still queued, are counted in full", async () => {
        const file = storeFile();
        const limits = rules({ "*": { tokensPerDay: 1000 } });
        const firstStore = BudgetStore.open(file);
        const first = new BudgetLedger(limits, firstStore);
        const [a, b, c] = await Promise.all(Array.from({ length: 3 }, () => first.admit({ subject: "device:laptop", groups: [], model: "m", endpoint: "chat", cost: { promptTokens: 10, outputTokens: 90, body: undefined, stripUsageChunk: false } })));
        assert.ok(a!.admitted && b!.admitted && c!.admitted);
        const outcome = { usage: { inputTokens: 3, outputTokens: 4 }, frames: 4, clientAborted: false, nothingGenerated: false };
        first.settle(a!.reservation, outcome);
        firstStore.flush();
        // b's settlement is still queued and c is open when the process "dies" without closing the store.
        first.settle(b!.reservation, outcome);
        const store = BudgetStore.open(file);
        assert.equal(store.recoveredOpen, 2);
        const second = new BudgetLedger(limits, store);
        assert.equal(second.status("device:laptop", []).windows[0]!.used, 7 + 100 + 100, "a lost settlement leaves the full reservation, never less");
        assert.deepEqual(store.usageSince(0).map((r) => r.state).sort(), ["crashed", "crashed", "settled"]);
        store.close();
    });

    test("settlements are written off the reservations' waits: a full batch at the next timers phase, a partial one SETTLE_DELAY_MS after its first, one with each commit; a crash before that counts the reservations in full", async () => {
        const file = storeFile();
        const store = BudgetStore.open(file);
        const ledger = new BudgetLedger(rules({ "*": { tokensPerDay: 1e9 } }), store);
        const reader = new Database(file, { readonly: true });
        const states = () => (reader.prepare("SELECT state FROM requests ORDER BY id").all() as { state: string }[]).map((r) => r.state);
        const admitAll = async (count: number) => (await Promise.all(Array.from({ length: count }, () => ledger.admit({ subject: "device:laptop", groups: [], model: "m", endpoint: "chat", cost: { promptTokens: 10, outputTokens: 90, body: undefined, stripUsageChunk: false } })))).map((a) => (assert.ok(a.admitted), a.reservation));
        const outcome = { usage: { inputTokens: 3, outputTokens: 4 }, frames: 4, clientAborted: false, nothingGenerated: false };
        try {
            // One short of a batch: committed reservations, settled in memory, still open on disk.
            const partial = await admitAll(SETTLE_BATCH - 1);
            for (const r of partial) ledger.settle(r, outcome);
            assert.deepEqual(new Set(states()), new Set(["open"]));
            assert.equal(ledger.status("device:laptop", []).windows[0]!.used, 7 * partial.length, "memory has the settlements at once");
            // A crash now: a second store recovers those rows as open and counts them in full.
            const crashed = BudgetStore.open(file);
            assert.equal(crashed.recoveredOpen, SETTLE_BATCH - 1);
            assert.equal(new BudgetLedger(rules({ "*": { tokensPerDay: 1e9 } }), crashed).status("device:laptop", []).windows[0]!.used, 100 * partial.length);
            crashed.close();
            // The first store writing its settlements afterwards changes nothing: a settlement only closes an open row.
            store.flush();
            assert.deepEqual(new Set(states()), new Set(["crashed"]));

            // A full batch is written at the next timers phase (not within the turn, whose reservations it would delay; not after the delay).
            const full = await admitAll(SETTLE_BATCH);
            for (const r of full) ledger.settle(r, outcome);
            assert.deepEqual(new Set(states().slice(-SETTLE_BATCH)), new Set(["open"]));
            // A timer set after the store's fires after it.
            await new Promise((resolve) => setTimeout(resolve, 0));
            assert.deepEqual(states().slice(-SETTLE_BATCH), Array(SETTLE_BATCH).fill("settled"));

            // A partial batch waits its delay (bounded wait; never earlier than the delay).
            const [lone] = await admitAll(1);
            const queuedAt = performance.now();
            ledger.settle(lone!, outcome);
            assert.equal(states().at(-1), "open");
            const bound = performance.now() + 10_000;
            while (states().at(-1) !== "settled" && performance.now() < bound) await new Promise((resolve) => setTimeout(resolve, 20));
            assert.equal(states().at(-1), "settled");
            assert.ok(performance.now() - queuedAt >= SETTLE_DELAY_MS - 5, "not before its delay");

            // A reservation's commit carries the oldest queued settlement: a lone client's do not pile up.
            const [next] = await admitAll(1);
            ledger.settle(next!, outcome);
            await admitAll(1);
            assert.deepEqual(states().slice(-2), ["settled", "open"]);
        } finally {
            reader.close();
            store.close();
        }
    });

    test("a failed batch commit refuses every admission of the batch and releases its tokens and concurrency slots", async () => {
        const file = storeFile();
        const ledger = new BudgetLedger(rules({ "*": { tokensPerDay: 1000, concurrentRequests: 2 } }), BudgetStore.open(file));
        const fault = new Database(file);
        fault.exec("CREATE TRIGGER injected_fault BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'injected fault'); END");
        const admit = () => ledger.admit({ subject: "user:alice", groups: [], model: "m", endpoint: "chat", cost: { promptTokens: 10, outputTokens: 90, body: undefined, stripUsageChunk: false } });
        // The third is refused by the concurrency limit at once: the first two hold their slots until the commit answers.
        const failed = await Promise.all([admit(), admit(), admit()]);
        assert.deepEqual(failed.map((a) => !a.admitted && `${a.cause} ${a.rule}`), ["store budget.store.commit", "store budget.store.commit", "budget budget.concurrentRequests"]);
        assert.deepEqual(ledger.status("user:alice", []), { subject: "user:alice", windows: [{ ...ledger.status("user:alice", []).windows[0]!, used: 0, remaining: 1000 }], concurrentRequests: { limit: 2, open: 0 } });
        fault.exec("DROP TRIGGER injected_fault");
        fault.close();
        assert.deepEqual((await Promise.all([admit(), admit()])).map((a) => a.admitted), [true, true]);
    });

    test("a missing file next to its marker is a startup error, not zero", () => {
        const file = storeFile();
        BudgetStore.open(file).close();
        unlinkSync(file);
        assert.throws(() => BudgetStore.open(file), /budget store .*budgets\.db is missing but its marker .* is there: refusing to start with zero counts/);
    });

    test("a corrupt file, a foreign file and a file without marker are startup errors naming the path", () => {
        const corrupt = storeFile();
        BudgetStore.open(corrupt).close();
        writeFileSync(corrupt, "this is not a database".repeat(300));
        assert.throws(() => BudgetStore.open(corrupt), (e: Error) => e.message.startsWith(`budget store ${corrupt}: not a readable budget store`));
        const other = storeFile();
        BudgetStore.open(other).close();
        writeFileSync(markerPath(other), "another-store\n");
        assert.throws(() => BudgetStore.open(other), /does not match its marker/);
        unlinkSync(markerPath(other));
        assert.throws(() => BudgetStore.open(other), /has no marker/);
    });
});
