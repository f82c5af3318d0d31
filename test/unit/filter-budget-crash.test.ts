/**
 * Nothing is lost on restart: the filter process (the real CLI) is killed with SIGKILL in the
 * middle of a stream, and the restarted filter counts that request at no less than what was
 * generated (its full reservation). A missing or corrupt ledger is a startup error, never a
 * silent start from zero.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { renderFilterRules } from "../../components/filter/rules";
import { BudgetStore } from "../../filter/src/budget/store";
import type { StubServer } from "../../scripts/sandbox/listen";
import { startStubOllama } from "../../scripts/sandbox/stub-ollama";
import { startFilterCli, stopChild } from "./filter-cli";

const dir = mkdtempSync(join(tmpdir(), "zto-budget-crash-"));
const rulesFile = join(dir, "rules.json");
const children = new Set<ChildProcess>();
let stub: StubServer;

before(async () => {
    // Slow tokens: the stream is still running when the filter is killed, however loaded the machine.
    stub = await startStubOllama({ logFile: join(dir, "ollama.log"), tokenIntervalMs: 250 });
    writeFileSync(rulesFile, JSON.stringify(renderFilterRules(loadStackConfig({ domain: "ollama.example.internal", filter: { budgets: { "*": { tokensPerDay: 100_000 } } } }))));
});
after(async () => {
    for (const c of children) c.kill("SIGKILL");
    await stub.close();
    rmSync(dir, { recursive: true, force: true });
});

/** Start the filter CLI with its default process model (a primary holding the ledger and its workers; SIGKILL hits the primary). */
const startFilter = (store: string) => startFilterCli(["--rules", rulesFile, "--listen", "127.0.0.1:0", "--upstream", stub.url, "--budget-store", store], children);
const stop = stopChild;

describe("budget ledger across a crash", () => {
    test("SIGKILL mid-stream: after restart the request counts in full, never less than what was generated", async () => {
        const store = join(dir, "crash", "budgets.db");
        const first = await startFilter(store);
        const prompt = "tell me a story";
        const numPredict = 40;
        let frames = 0;
        await new Promise<void>((resolve, reject) => {
            const req = http.request(`http://127.0.0.1:${first.port}/api/generate`, { method: "POST", headers: { "content-type": "application/json", "X-Device-Name": "laptop" } }, (res) => {
                assert.equal(res.statusCode, 200);
                res.on("data", (c: Buffer) => {
                    frames += c.toString().split("\n").filter((l) => l.trim()).length;
                    if (frames >= 3) void stop(first.child, "SIGKILL");
                });
                res.on("error", () => resolve());
                res.on("close", () => resolve());
            });
            req.on("error", () => resolve());
            req.end(JSON.stringify({ model: "llama3.2:3b", prompt, options: { num_predict: numPredict } }));
            setTimeout(() => reject(new Error("the stream did not start within 60 s")), 60_000).unref();
        });
        await stop(first.child, "SIGKILL");
        assert.ok(frames >= 3 && frames < numPredict, `killed mid-stream after ${frames} frames`);

        const second = await startFilter(store);
        await stop(second.child, "SIGTERM");
        const s = BudgetStore.open(store, { readOnly: true });
        try {
            const rows = s.usageSince(0);
            assert.equal(rows.length, 1);
            assert.equal(rows[0]!.state, "crashed");
            const reservation = 64 + Buffer.byteLength(prompt) + numPredict;
            assert.equal(rows[0]!.charged, reservation);
            assert.ok(rows[0]!.charged >= frames, "never lower than what was generated");
        } finally {
            s.close();
        }
    });

    test("a missing ledger next to its marker, or a corrupt one, stops the filter at startup with a clear error", async () => {
        const store = join(dir, "lost", "budgets.db");
        const ok = await startFilter(store);
        await stop(ok.child, "SIGTERM");
        unlinkSync(store);
        await assert.rejects(startFilter(store), (e: Error & { code?: number; stderr?: string }) => {
            assert.equal(e.code, 2);
            assert.match(e.stderr!, /^zto-filter: budget store .*budgets\.db is missing but its marker .* is there: refusing to start with zero counts/);
            assert.ok(!/\n\s+at /.test(e.stderr!), "no stack trace");
            return true;
        });
        writeFileSync(store, "garbage".repeat(1000));
        await assert.rejects(startFilter(store), (e: Error & { code?: number; stderr?: string }) => {
            assert.equal(e.code, 2);
            assert.match(e.stderr!, /^zto-filter: budget store .*budgets\.db: not a readable budget store/);
            return true;
        });
    });
});
