/**
 * The filter's process model (filter/src/workers.ts), as the real CLI with several workers in
 * front of the stub Ollama: the one ledger in the primary still admits 50 concurrent requests
 * arriving on many connections (spread over the workers) as if one process served them, never
 * over the budget; a worker killed mid-stream is replaced and its open reservation stays counted
 * in full; SIGTERM stops every process with every request settled. The primary's LedgerHost is
 * also driven directly with stand-in workers, to die at a chosen point: between an admission and
 * its commit.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { renderFilterRules } from "../../components/filter/rules";
import type { Worker } from "node:cluster";
import { BudgetLedger } from "../../filter/src/budget/ledger";
import { BudgetStore, type UsageRow } from "../../filter/src/budget/store";
import { LedgerHost, type ToWorker } from "../../filter/src/workers";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import type { StubServer } from "../../scripts/sandbox/listen";
import { checkCrowd, CROWD } from "./budget-crowd";
import { startStubOllama, type OllamaRequestEntry } from "../../scripts/sandbox/stub-ollama";
import { startFilterCli, stopChild, type FilterProcess } from "./filter-cli";

const WORKERS = 3;
/** Reservation of a one-message "hi" chat with num_predict 18: 64 + 16 + 2 prompt bound + 18 output. */
const HI_RESERVATION = 100;
const dir = mkdtempSync(join(tmpdir(), "zto-filter-workers-"));
const stubLog = join(dir, "ollama.log");
const children = new Set<ChildProcess>();
let stub: StubServer;

before(async () => {
    // Slow tokens: a stream is still running when its worker is killed, however loaded the machine.
    stub = await startStubOllama({ logFile: stubLog, tokenIntervalMs: 250, tokens: 40 });
});
after(async () => {
    for (const c of children) c.kill("SIGKILL");
    await stub.close();
    rmSync(dir, { recursive: true, force: true });
});

function startFilter(name: string, budgets: Record<string, unknown>): Promise<FilterProcess & { store: string }> {
    const rulesFile = join(dir, `${name}-rules.json`);
    writeFileSync(rulesFile, JSON.stringify(renderFilterRules(loadStackConfig({ domain: "ollama.example.internal", filter: { maxOutputTokens: 40, budgets } }))));
    const store = join(dir, name, "budgets.db");
    return startFilterCli(["--rules", rulesFile, "--listen", "127.0.0.1:0", "--upstream", stub.url, "--budget-store", store, "--workers", String(WORKERS)], children).then((f) => ({ ...f, store }));
}

interface Reply {
    readonly status: number;
    readonly body: string;
}
/** One request on its own connection (so round-robin spreads them over the workers). */
function send(port: number, path: string, body: unknown, device: string, onData?: (text: string, req: http.ClientRequest) => void): Promise<Reply> {
    return new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request(`http://127.0.0.1:${port}${path}`, { method: payload ? "POST" : "GET", headers: { "content-type": "application/json", "X-Device-Name": device }, agent: false }, (res) => {
            let text = "";
            res.on("data", (c: Buffer) => {
                text += c.toString();
                onData?.(text, req);
            });
            res.on("end", () => resolve({ status: res.statusCode!, body: text }));
            res.on("error", () => resolve({ status: -1, body: text }));
        });
        req.on("error", (e) => (onData ? resolve({ status: -1, body: "" }) : reject(e)));
        req.end(payload);
    });
}
const hi = (extra: Record<string, unknown> = {}) => ({ model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], options: { num_predict: 18 }, ...extra });
const stubRequests = () => readJsonLines<OllamaRequestEntry>(stubLog).filter((e) => e.kind === "request");
/** The worker pids of a primary (its direct children). */
const workersOf = (pid: number) => readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);

function rowsOf(store: string, subject: string): UsageRow[] {
    const s = BudgetStore.open(store, { readOnly: true });
    try {
        return s.usageSince(0).filter((r) => r.subject === subject);
    } finally {
        s.close();
    }
}

async function until(check: () => boolean | Promise<boolean>, what: string, boundMs = 60_000): Promise<void> {
    // A bound, not a measurement: restarting a worker under tsx on a loaded machine takes seconds.
    for (const t0 = Date.now(); !(await check()); ) {
        if (Date.now() - t0 > boundMs) throw new Error(`${what}: not within ${boundMs / 1000} s`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

describe("filter workers share one budget ledger", () => {
    test(`${WORKERS} workers: 50 concurrent requests at a budget that fits 10 reservations never spend more than the budget`, async () => {
        const f = await startFilter("crowd", { "*": { tokensPerDay: 10 * HI_RESERVATION } });
        try {
            assert.equal(workersOf(f.child.pid!).length, WORKERS);
            const before = stubRequests().length;
            const replies = await Promise.all(Array.from({ length: CROWD }, () => send(f.port, "/api/chat", hi({ stream: false }), "crowd")));
            const admitted = checkCrowd(replies, stubRequests().length - before);
            const status = JSON.parse((await send(f.port, "/v1/budget", undefined, "crowd")).body) as { windows: { used: number }[] };
            assert.ok(status.windows[0]!.used <= 10 * HI_RESERVATION, `spent ${status.windows[0]!.used}`);
            await stopChild(f.child, "SIGTERM");
            const rows = rowsOf(f.store, "device:crowd");
            assert.equal(rows.length, admitted);
            assert.equal(rows.reduce((n, r) => n + r.charged, 0), status.windows[0]!.used);
            assert.ok(rows.every((r) => r.state === "settled"), "SIGTERM left nothing open");
        } finally {
            await stopChild(f.child, "SIGKILL");
        }
    });

    test("a worker killed mid-stream is replaced; its open reservation stays counted in full and frees its concurrency slot", async () => {
        const f = await startFilter("killed", { "*": { tokensPerDay: 100_000, concurrentRequests: 1 } });
        try {
            const first = workersOf(f.child.pid!);
            const prompt = "tell me a story";
            const reservation = 64 + 16 + Buffer.byteLength(prompt) + 40; // request + one message + its bytes + the output cap
            let killed = false;
            const stream = send(f.port, "/api/chat", { model: "llama3.2:3b", messages: [{ role: "user", content: prompt }] }, "victim", (text) => {
                if (!killed && text.split("\n").filter(Boolean).length >= 2) {
                    killed = true;
                    for (const pid of first) process.kill(pid, "SIGKILL");
                }
            });
            await stream;
            assert.ok(killed, "the stream was cut by killing its worker");
            await until(() => workersOf(f.child.pid!).filter((p) => !first.includes(p)).length === WORKERS, "every killed worker replaced");
            await until(() => /counted at their full reservation/.test(f.stderr()), "the primary reported the reservation");
            await until(() => new Promise<boolean>((resolve) => connect(f.port, "127.0.0.1").on("connect", function (this: Socket) {
                this.destroy();
                resolve(true);
            }).on("error", () => resolve(false))), "the new workers listen on the same port");
            const status = JSON.parse((await send(f.port, "/v1/budget", undefined, "victim")).body) as { windows: { used: number }[]; concurrentRequests: { open: number } };
            assert.equal(status.windows[0]!.used, reservation, "the cut request counts at its full reservation");
            assert.equal(status.concurrentRequests.open, 0, "its concurrency slot is free again");
            assert.equal((await send(f.port, "/api/chat", hi({ stream: false }), "victim")).status, 200, "a new worker serves the next request");
        } finally {
            await stopChild(f.child, "SIGKILL");
        }
    });

    test("SIGTERM with a stream open: every process exits, the stream's request is settled (not left open)", async () => {
        const f = await startFilter("drain", { "*": { tokensPerDay: 100_000 } });
        const workers = workersOf(f.child.pid!);
        let signalled = false;
        const exited = new Promise<number | null>((resolve) => f.child.once("exit", (code) => resolve(code)));
        await send(f.port, "/api/generate", { model: "llama3.2:3b", prompt: "tell me a story" }, "drainer", (text) => {
            if (!signalled && text.split("\n").filter(Boolean).length >= 2) {
                signalled = true;
                f.child.kill("SIGTERM");
            }
        });
        assert.equal(await exited, 0);
        for (const pid of workers) assert.throws(() => process.kill(pid, 0), "worker gone");
        const rows = rowsOf(f.store, "device:drainer");
        assert.equal(rows.length, 1);
        assert.equal(rows[0]!.state, "settled");
        assert.ok(rows[0]!.charged >= 2, `charged for what was relayed (${rows[0]!.charged})`);
    });

    test("--workers must be a whole number from 1 to 256", async () => {
        for (const bad of ["0", "-1", "1.5", "two", "257"]) {
            await assert.rejects(startFilterCli(["--rules", "/nonexistent", "--listen", "127.0.0.1:0", "--upstream", stub.url, "--workers", bad], children), (e: Error & { code?: number; stderr?: string }) => {
                assert.equal(e.code, 2);
                assert.match(e.stderr!, /^zto-filter: --workers must be a whole number from 1 to 256 \(got "/);
                return true;
            });
        }
    });
});

describe("the primary's ledger host", () => {
    /** A stand-in for a cluster worker: records its replies and can die at a chosen point. */
    const standIn = (id: number) => {
        const replies: ToWorker[] = [];
        let dead = false;
        const worker = { id, isDead: () => dead, isConnected: () => !dead, send: (m: ToWorker) => replies.push(m) } as unknown as Worker;
        return { worker, replies, die: () => (dead = true) };
    };
    const req = { subject: "user:alice", groups: [], model: "m", endpoint: "chat", cost: { promptTokens: 10, outputTokens: 90, body: undefined, stripUsageChunk: false } };
    const committed = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
    /** A ledger host over a fresh store in its own folder, everyone on one daily budget of 1,000 tokens. */
    const hostIn = (folder: string, concurrentRequests?: number) => {
        const store = BudgetStore.open(join(dir, folder, "budgets.db"));
        const limits = { tokensPerDay: 1000, ...(concurrentRequests === undefined ? {} : { concurrentRequests }) };
        const ledger = new BudgetLedger({ groups: { "*": limits }, mode: "generous", timeZone: "UTC", chargeBy: "user" }, store);
        return { store, ledger, host: new LedgerHost(ledger) };
    };

    test("a worker that dies before its admission commits is never answered; the reservation settles as nothing generated and frees its concurrency slot", async () => {
        const { store, ledger, host } = hostIn("host", 1);
        const doomed = standIn(1);
        host.handle(doomed.worker, { zto: "admit", seq: 1, req });
        // Charged at once (the slot is taken), the commit still to come when the worker dies.
        assert.equal(ledger.status("user:alice", []).concurrentRequests?.open, 1);
        doomed.die();
        assert.equal(host.released(doomed.worker), 0, "not yet held: the worker never heard it was admitted");
        await committed();
        assert.deepEqual(doomed.replies, []);
        const status = ledger.status("user:alice", []);
        assert.equal(status.concurrentRequests?.open, 0, "the slot is free");
        assert.equal(status.windows[0]!.used, 0, "nothing was forwarded: nothing is charged");
        // The next admission (of a live worker) fits the one slot, and is held by that worker.
        const live = standIn(2);
        host.handle(live.worker, { zto: "admit", seq: 1, req });
        await committed();
        assert.equal(live.replies.length, 1);
        const reply = live.replies[0]!;
        assert.ok(reply.zto === "reply" && "admitted" in reply.value && reply.value.admitted);
        assert.equal(host.released(live.worker), 1, "a live worker's admission is held until it settles");
        await committed();
        assert.deepEqual(
            store.usageSince(0).map((r) => [r.state, r.charged]),
            [["settled", 0], ["settled", 100]],
        );
        store.close();
    });

    test("a settlement of a reservation the worker does not hold, a second settlement, or an unknown message is refused, never skipped", async () => {
        const { store, host } = hostIn("host-protocol");
        const a = standIn(1);
        const b = standIn(2);
        host.handle(a.worker, { zto: "admit", seq: 1, req });
        await committed();
        const reply = a.replies[0]!;
        assert.ok(reply.zto === "reply" && "admitted" in reply.value && reply.value.admitted);
        const id = reply.value.reservation.id;
        const outcome = { usage: {}, frames: 0, clientAborted: false, nothingGenerated: true };
        assert.throws(() => host.handle(b.worker, { zto: "settle", reservation: id, outcome }), /worker 2 settled reservation \d+, which it does not hold/);
        host.handle(a.worker, { zto: "settle", reservation: id, outcome });
        assert.throws(() => host.handle(a.worker, { zto: "settle", reservation: id, outcome }), /does not hold/);
        assert.throws(() => host.handle(a.worker, { zto: "grant" } as never), /worker 1 sent an unknown message "grant"/);
        store.close();
    });

    test("a batch is handled as its messages in order; a batch holding anything but admissions, settlements and status asks is refused", async () => {
        const { store, host } = hostIn("host-batch");
        const a = standIn(1);
        host.handle(a.worker, { zto: "batch", messages: [{ zto: "admit", seq: 1, req }, { zto: "admit", seq: 2, req }, { zto: "status", seq: 3, subject: "user:alice", groups: [] }] });
        await committed();
        assert.deepEqual(a.replies.map((r) => r.zto === "reply" && r.seq), [3, 1, 2], "the status is answered at once, the admissions once committed");
        const ids = a.replies.flatMap((r) => (r.zto === "reply" && "admitted" in r.value && r.value.admitted ? [r.value.reservation.id] : []));
        assert.equal(ids.length, 2);
        const outcome = { usage: { inputTokens: 3, outputTokens: 4 }, frames: 0, clientAborted: false, nothingGenerated: false };
        host.handle(a.worker, { zto: "batch", messages: ids.map((reservation) => ({ zto: "settle" as const, reservation, outcome })) });
        assert.equal(host.released(a.worker), 0, "both settled");
        await committed();
        assert.deepEqual(store.usageSince(0).map((r) => [r.state, r.charged]), [["settled", 7], ["settled", 7]]);
        for (const inner of [{ zto: "hello" }, { zto: "batch", messages: [] }, { zto: "grant" }, "admit", null]) {
            assert.throws(() => host.handle(a.worker, { zto: "batch", messages: [inner] } as never), /worker 1 sent a batch holding/);
        }
        assert.throws(() => host.handle(a.worker, { zto: "batch", messages: "admit" } as never), /worker 1 sent a batch holding/);
        store.close();
    });
});
