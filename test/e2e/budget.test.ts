/**
 * Token budgets through the REAL gateways (nginx and HAProxy) in the sandbox: a device over its
 * budget gets the filter's own 429 (its JSON code and its Retry-After, not the gateway's rate-limit
 * answer) and the stub Ollama receives nothing;
 * admitted answers carry X-Budget-Remaining-Tokens and X-Budget-Reset; GET /v1/budget is
 * allowlisted as metadata, answered by the filter, and returns only the caller's own windows,
 * whatever identity headers the client sends (the gateway strips them).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startSandbox, type Sandbox } from "./harness";

const alice = { name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] };
const bob = { name: "bob-workstation", owner: "bob@example.com", groups: ["analysts"] };
/** A one-message "hi" chat with num_predict 18 reserves 64 + 16 + 2 + 18 = 100 tokens. */
const hi = { model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], options: { num_predict: 18 }, stream: false };
const config = (kind: "nginx" | "haproxy") => ({
    domain: "ollama.test",
    devices: [alice, bob],
    gateway: { kind, rateLimitPerMinute: 6000, burst: 200 },
    identity: { provider: "none" },
    filter: { enabled: true, modelsByGroup: { "*": ["llama3.2:3b"] }, budgets: { "*": { tokensPerDay: 100_000 }, analysts: { tokensPerDay: 300 } }, budgetMode: "strictest" },
    pki: { keyAlgorithm: "ECDSA-P256" },
});

const sandboxes: Partial<Record<"nginx" | "haproxy", Sandbox>> = {};
before(async () => {
    [sandboxes.nginx, sandboxes.haproxy] = await Promise.all(
        (["nginx", "haproxy"] as const).map((kind) => startSandbox({ config: config(kind), extraArgs: ["--token-interval-ms", "5", "--tokens", "4"], readyTimeoutMs: 90_000 })),
    );
});
after(async () => {
    await Promise.all(Object.values(sandboxes).map((sb) => sb?.stop()));
});

const retryAfterValues = (raw: readonly string[]) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === "retry-after");

interface BudgetBody {
    subject: string;
    windows: { window: string; limit: number; used: number; remaining: number; resetsAt: string }[];
}

for (const kind of ["nginx", "haproxy"] as const) {
    describe(`token budgets through the real ${kind}`, () => {
        const sb = () => sandboxes[kind]!;

        test("admitted answers say what is left; over budget is 429 with Retry-After and Ollama receives nothing", async () => {
            const first = await sb().request({ path: "/api/chat", method: "POST", body: hi, device: "bob-workstation", timeoutMs: 60_000 });
            assert.equal(first.status, 200, first.body);
            assert.equal(first.headers["x-budget-remaining-tokens"], "200");
            assert.ok(Number(first.headers["x-budget-reset"]) > 0);
            // Spend the rest (settled below the reservation, so a few more fit), then one more.
            let refused;
            for (let i = 0; i < 20 && !refused; i++) {
                const r = await sb().request({ path: "/api/chat", method: "POST", body: hi, device: "bob-workstation", timeoutMs: 60_000 });
                if (r.status === 429) refused = r;
                else assert.equal(r.status, 200, r.body);
            }
            assert.ok(refused, "bob's 300-token day ran out");
            sb().resetOllamaLog();
            const r = await sb().request({ path: "/api/chat", method: "POST", body: hi, device: "bob-workstation", timeoutMs: 60_000 });
            const dayEnds = Date.parse((await sb().request({ path: "/v1/budget", device: "bob-workstation" })).json<BudgetBody>().windows[0]!.resetsAt);
            // The filter's refusal, not the gateway's rate limit (rate_limited, Retry-After 1 at 6000/min).
            assert.equal(r.status, 429, r.body);
            assert.equal(r.headers["content-type"], "application/json");
            const refusal = r.json<{ error: { code: string; rule: string } }>().error;
            assert.deepEqual([refusal.code, refusal.rule], ["token_budget_exceeded", "budget.tokensPerDay"]);
            assert.deepEqual(retryAfterValues(r.rawHeaders).length, 1, `one Retry-After: ${r.rawHeaders.join(" ")}`);
            const secondsToDayEnd = (dayEnds - Date.now()) / 1000;
            assert.ok(Math.abs(Number(r.headers["retry-after"]) - secondsToDayEnd) <= 60, `Retry-After ${r.headers["retry-after"]} is when the day window resets (${secondsToDayEnd} s)`);
            // A request larger than the whole window never fits: the filter sends no Retry-After and the gateway adds none.
            const huge = await sb().request({ path: "/api/chat", method: "POST", body: { ...hi, options: { num_predict: 1000 } }, device: "bob-workstation", timeoutMs: 60_000 });
            assert.equal(huge.status, 429, huge.body);
            assert.equal(huge.json<{ error: { code: string; rule: string } }>().error.rule, "budget.tokensPerDay.request-too-large");
            assert.deepEqual(retryAfterValues(huge.rawHeaders), []);
            assert.deepEqual(sb().ollamaRequests(), [], "nothing reached Ollama");
            // Alice has her own budget.
            assert.equal((await sb().request({ path: "/api/chat", method: "POST", body: hi, device: "alice-laptop", timeoutMs: 60_000 })).status, 200);
        });

        test("GET /v1/budget returns the caller's own windows only, never forwarded, whatever identity headers the client sends", async () => {
            sb().resetOllamaLog();
            const spoof = { "X-Device-Name": "bob-workstation", "X-Auth-Request-User": "bob@example.com", "X-Auth-Request-Groups": "analysts" };
            const mine = await sb().request({ path: "/v1/budget", device: "alice-laptop", headers: spoof });
            assert.equal(mine.status, 200, mine.body);
            const a = mine.json<BudgetBody>();
            assert.equal(a.subject, "device:alice-laptop");
            assert.deepEqual(a.windows.map((w) => [w.window, w.limit]), [["day", 100_000]]);
            assert.ok(a.windows[0]!.used > 0);
            assert.ok(!mine.body.includes("bob"), "nothing about anyone else");
            const theirs = (await sb().request({ path: "/v1/budget", device: "bob-workstation" })).json<BudgetBody>();
            assert.equal(theirs.subject, "device:bob-workstation");
            assert.deepEqual(theirs.windows.map((w) => [w.window, w.limit]), [["day", 300]]);
            assert.ok(theirs.windows[0]!.remaining < 100);
            // Only GET, only the exact path; no certificate, no answer.
            assert.equal((await sb().request({ path: "/v1/budget", method: "POST", body: {}, device: "alice-laptop" })).status, 405);
            for (const path of ["/v1/budget/", "/v1/Budget", "/v1/budget%2f", "/v1//budget", "/v1/budget;x"]) {
                const r = await sb().request({ path, device: "alice-laptop" });
                assert.ok(r.status >= 400 && r.status < 500 && !r.body.includes("windows"), `${path}: ${r.status} ${r.body}`);
            }
            const anonymous = await sb().request({ path: "/v1/budget", device: null }).catch(() => undefined);
            assert.ok(anonymous === undefined || anonymous.status >= 400, "refused without a certificate");
            assert.deepEqual(sb().ollamaRequests(), [], "nothing reached Ollama");
        });
    });
}
