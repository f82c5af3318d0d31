/**
 * The gateway and filter in front of the real Ollama at the pinned version (the binary
 * `npm run tools:build` makes), for both gateway kinds, with the tests' tiny model:
 * - the routes the running binary registers are exactly the fixture's (its own router's debug
 *   listing), so the endpoint-table check in test/unit/ollama-routes.test.ts judges the real set;
 * - every route it serves that the table does not allowlist, and every other method on an
 *   allowlisted path, is refused at the gateway and leaves no line in Ollama's own request log;
 * - the allowlisted inference routes produce real tokens, NDJSON and SSE arrive token by token,
 *   and a client that aborts mid-stream ends the generation on the server.
 * A missing binary fails the suite (npm test's prerequisite check names it first); never skipped.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { DENIED_ROUTES, ENDPOINTS, endpointPathRegex } from "../../components/gateway/endpoints";
import type { OllamaRouteFixture } from "../../scripts/lib/ollama-routes";
import { toolPath, TOOLS } from "../../scripts/lib/tools";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { freePort } from "../../scripts/sandbox/run";
import { createTinyModel } from "../../scripts/sandbox/real-ollama";
import { startSandbox, tempDir, type Sandbox } from "./harness";

const BINARY = toolPath("ollama");
const MISSING = !existsSync(BINARY);
const FIXTURE: OllamaRouteFixture = JSON.parse(readFileSync(`${__dirname}/../fixtures/ollama-routes.json`, "utf8"));
const MODEL = "zto-tiny";
/** Generation never ends by itself with the tiny model; this bound keeps a runaway test finite. */
const ENDLESS = 1_000_000;

interface GinRequest {
    readonly status: number;
    readonly method: string;
    readonly path: string;
}

/** Ollama's request log: gin writes one `[GIN] date | status | latency | client | METHOD "path"` line per handled request. */
function ginRequests(log: string): GinRequest[] {
    return [...log.matchAll(/^\[GIN\] [^|]+\|\s*(\d{3})\s*\|[^|]+\|[^|]+\|\s*([A-Z]+)\s+"([^"]*)"$/gm)].map((m) => ({ status: Number(m[1]), method: m[2], path: m[3] }));
}

/** The routes the running binary registered, from gin's debug listing at start-up. */
function ginRoutes(log: string): { method: string; path: string }[] {
    return [...log.matchAll(/^\[GIN-debug\] ([A-Z]+)\s+(\S+)\s+-->/gm)].map((m) => ({ method: m[1], path: m[2] }));
}

const sample = (pattern: string) => pattern.replace(/:digest/, `sha256:${"0".repeat(64)}`).replace(/:model/, `${MODEL}:latest`).replace(/:[A-Za-z]+/g, "x");
const allowlisted = (path: string) => ENDPOINTS.find((e) => new RegExp(endpointPathRegex(e)).test(path));

/** Every request the gateway must refuse: each served route that is not allowlisted, and every other method on an allowlisted one. */
function refusalCases(): { method: string; path: string }[] {
    const cases: { method: string; path: string }[] = [];
    for (const r of FIXTURE.routes) if (!allowlisted(sample(r.path))) cases.push({ method: r.method, path: sample(r.path) });
    for (const d of DENIED_ROUTES) cases.push({ method: d.method, path: d.path });
    for (const e of ENDPOINTS) {
        const path = e.modelParam ? `${e.path}${MODEL}:latest` : e.path;
        for (const m of ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]) if (!(e.methods as readonly string[]).includes(m)) cases.push({ method: m, path });
    }
    // Spellings that must not reach a denied route through normalisation.
    cases.push({ method: "POST", path: "/api/tags/../create" }, { method: "POST", path: "//api/create" }, { method: "POST", path: "/api/create/" }, { method: "POST", path: "/API/CREATE" }, { method: "POST", path: "/api/%63reate" });
    const seen = new Set<string>();
    return cases.filter((c) => !seen.has(`${c.method} ${c.path}`) && seen.add(`${c.method} ${c.path}`));
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = probe();
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error(`${what}: not seen within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

for (const kind of ["nginx", "haproxy"] as const) {
    describe(`real Ollama ${TOOLS.ollama.version} behind ${kind} + filter`, () => {
        let sb: Sandbox;
        let log: string;
        const logText = () => readFileSync(log, "utf8");
        /** Requests Ollama logged after byte `offset` of its log (bytes: the log holds UTF-8 from llama.cpp). */
        const requestsSince = (offset: number) => ginRequests(readFileSync(log).subarray(offset).toString("utf8"));
        const logSize = () => statSync(log).size;

        before(async () => {
            assert.ok(!MISSING, `${BINARY} is missing (CI must build it: npm run tools:build)`);
            sb = await startSandbox({
                config: {
                    domain: "ollama.localhost",
                    devices: [{ name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] }],
                    gateway: { kind },
                    identity: { provider: "none" },
                    ollama: { gpus: "none" },
                    filter: { enabled: true, maxOutputTokens: 1_048_576, modelsByGroup: { "*": [MODEL] } },
                },
                extraArgs: ["--ollama", BINARY],
                readyTimeoutMs: 120_000,
            });
            assert.equal(sb.info.ollamaServer?.kind, "binary");
            assert.equal(`v${sb.info.ollamaServer?.version}`, TOOLS.ollama.version);
            log = sb.info.ollamaLog!;
        });
        after(async () => {
            await sb?.stop();
        });

        test("the running binary registers exactly the fixture's routes", () => {
            assert.deepEqual(ginRoutes(logText()), FIXTURE.routes.map((r) => ({ method: r.method, path: r.path })));
        });

        test("every refused route and method leaves no line in Ollama's request log", async () => {
            const cases = refusalCases();
            const offset = logSize();
            const outcomes: string[] = [];
            for (const c of cases) {
                const r = await sb.request({ path: c.path, method: c.method, body: c.method === "GET" || c.method === "HEAD" ? undefined : { model: MODEL } });
                if (r.status < 400 || r.status >= 500) outcomes.push(`${c.method} ${c.path} -> ${r.status}`);
            }
            assert.deepEqual(outcomes, [], "every case is refused with a 4xx");
            // A request that does reach Ollama marks the end: gin logs in order of completion, so
            // once the marker's line is there, any leaked request's line would be too.
            const marker = await sb.request({ path: "/api/version", method: "GET" });
            assert.equal(marker.status, 200);
            await until("the marker in Ollama's log", () => (requestsSince(offset).some((q) => q.path === "/api/version") ? true : undefined), 10_000);
            assert.deepEqual(requestsSince(offset), [{ status: 200, method: "GET", path: "/api/version" }], `${cases.length} refusals, only the marker reached Ollama`);
        });

        test("allowlisted inference routes answer with real tokens from the tiny model", async () => {
            const offset = logSize();
            const gen = await sb.request({ path: "/api/generate", method: "POST", body: { model: MODEL, prompt: "hello", stream: false, options: { num_predict: 4 } }, timeoutMs: 60_000 });
            assert.equal(gen.status, 200, gen.body);
            const g = gen.json<{ response: string; eval_count: number; done_reason: string }>();
            assert.equal(g.eval_count, 4);
            assert.ok(g.response.trim().length > 0);
            const chat = await sb.request({ path: "/api/chat", method: "POST", body: { model: MODEL, stream: false, messages: [{ role: "user", content: "hi" }], options: { num_predict: 3 } }, timeoutMs: 60_000 });
            assert.equal(chat.status, 200, chat.body);
            assert.ok(chat.json<{ message: { content: string } }>().message.content.length > 0);
            const oai = await sb.request({ path: "/v1/chat/completions", method: "POST", body: { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 3 }, timeoutMs: 60_000 });
            assert.equal(oai.status, 200, oai.body);
            assert.equal(oai.json<{ choices: { finish_reason: string }[] }>().choices[0].finish_reason, "length");
            const embed = await sb.request({ path: "/api/embed", method: "POST", body: { model: MODEL, input: ["one", "two"] }, timeoutMs: 60_000 });
            assert.equal(embed.status, 200, embed.body);
            const vectors = embed.json<{ embeddings: number[][] }>().embeddings;
            assert.deepEqual(vectors.map((v) => v.length), [64, 64]);
            const tags = await sb.request({ path: "/api/tags", method: "GET" });
            assert.deepEqual(tags.json<{ models: { name: string }[] }>().models.map((m) => m.name), [`${MODEL}:latest`]);
            await until("four inference lines", () => (requestsSince(offset).length >= 5 ? true : undefined), 10_000);
            assert.deepEqual(
                requestsSince(offset).map((q) => `${q.status} ${q.method} ${q.path}`),
                ["200 POST /api/generate", "200 POST /api/chat", "200 POST /v1/chat/completions", "200 POST /api/embed", "200 GET /api/tags"],
            );
        });

        test("a cloud model is refused by the filter even though Ollama would be asked; Ollama sees nothing", async () => {
            const offset = logSize();
            for (const model of ["glm-5:cloud", "gpt-oss:120b-cloud"]) {
                const r = await sb.request({ path: "/api/chat", method: "POST", body: { model, messages: [{ role: "user", content: "hi" }] } });
                assert.equal(r.status, 403);
                assert.equal(r.json<{ error: { rule: string } }>().error.rule, "models.cloud");
            }
            await sb.request({ path: "/api/version", method: "GET" });
            await until("the marker", () => (requestsSince(offset).length ? true : undefined), 10_000);
            assert.deepEqual(requestsSince(offset).map((q) => q.path), ["/api/version"]);
        });

        test("NDJSON and SSE arrive token by token", async () => {
            // Finite answers: complete, correctly framed.
            const nd = await sb.request({ path: "/api/generate", method: "POST", body: { model: MODEL, prompt: "hello", options: { num_predict: 8 } }, timeoutMs: 60_000 });
            assert.equal(nd.status, 200, nd.body);
            const lines = nd.body.trimEnd().split("\n").map((l) => JSON.parse(l) as { done: boolean; response: string });
            assert.deepEqual(lines.map((l) => l.done), [...Array(8).fill(false), true], "eight token lines and the final one");
            const sse = await sb.request({ path: "/v1/chat/completions", method: "POST", body: { model: MODEL, stream: true, messages: [{ role: "user", content: "hi" }], max_tokens: 8 }, timeoutMs: 60_000 });
            assert.equal(sse.status, 200, sse.body);
            assert.match(String(sse.headers["content-type"]), /^text\/event-stream/);
            assert.equal((sse.body.match(/^data: \{/gm) ?? []).length, 9);
            assert.match(sse.body, /data: \[DONE\]\n\n$/);
            // Asked for a million tokens, an answer ends only when it is aborted: any token that
            // arrives before then went through gateway and filter unbuffered. Six pieces with a
            // few tokens each (the tiny model makes one every few ms, so TCP may join some).
            for (const [path, body, frame] of [
                ["/api/generate", { model: MODEL, prompt: "hello", options: { num_predict: ENDLESS } }, /^\{"model":"zto-tiny","created_at":"[^"]+","response":"[^"]*","done":false\}$/],
                ["/v1/chat/completions", { model: MODEL, stream: true, messages: [{ role: "user", content: "hi" }], max_tokens: ENDLESS }, /^data: \{"id":"chatcmpl-\d+","object":"chat\.completion\.chunk".*"finish_reason":null\}\]\}$/],
            ] as const) {
                const r = await sb.request({ path, method: "POST", body, abortAfterChunks: 6, timeoutMs: 60_000 });
                assert.equal(r.aborted, true);
                assert.equal(r.chunks.length, 6);
                const frames = r.body.split(/\n+/).filter((l) => l.length > 0);
                const complete = frames.slice(0, -1); // the last may be cut by the abort
                assert.ok(complete.length >= 5 && complete.length < 500, `${path}: ${complete.length} token frames before the abort`);
                for (const f of complete) assert.match(f, frame);
            }
        });

        test("a client abort mid-stream ends the generation on the real server", async () => {
            for (const [path, body] of [
                ["/api/generate", { model: MODEL, prompt: "hello", options: { num_predict: ENDLESS } }],
                ["/v1/chat/completions", { model: MODEL, stream: true, messages: [{ role: "user", content: "hi" }], max_tokens: ENDLESS }],
            ] as const) {
                const offset = logSize();
                const r = await sb.request({ path, method: "POST", body, abortAfterChunks: 3, timeoutMs: 60_000 });
                assert.equal(r.aborted, true);
                // The handler returns (and gin logs it) only when the generation stops; asked for a
                // million tokens, it stops this soon only because the abort reached the server.
                const done = await until(`${path} ending on the server`, () => requestsSince(offset).find((q) => q.path === path), 30_000);
                assert.equal(done.method, "POST");
                // One generation slot (OLLAMA_NUM_PARALLEL=1): the next request is served, so the slot is free.
                // A bound, not a measurement: once in CI, with another test file running beside this one,
                // the slot took longer than 30 s to free after the handler had returned.
                const next = await sb.request({ path: "/api/generate", method: "POST", body: { model: MODEL, prompt: "x", stream: false, options: { num_predict: 1 } }, timeoutMs: 120_000 });
                assert.equal(next.status, 200, next.body);
                const ps = await sb.request({ path: "/api/ps", method: "GET" });
                assert.deepEqual(ps.json<{ models: { name: string }[] }>().models.map((m) => m.name), [`${MODEL}:latest`]);
            }
        });
    });
}

describe("the user's own Ollama by URL behind the sandbox gateway", () => {
    test("--ollama http://127.0.0.1:<port> fronts an Ollama the sandbox did not start", async () => {
        assert.ok(!MISSING, `${BINARY} is missing (CI must build it: npm run tools:build)`);
        // Stands in for the user's own `ollama serve`: started here, stopped here.
        const home = tempDir("zto-own-ollama-");
        const port = await freePort();
        const own = spawn(BINARY, ["serve"], { env: { PATH: process.env.PATH, HOME: home, OLLAMA_HOST: `127.0.0.1:${port}`, OLLAMA_MODELS: join(home, "models") }, stdio: "ignore" });
        let sb: Sandbox | undefined;
        try {
            const url = `http://127.0.0.1:${port}`;
            for (let i = 0; ; i++) {
                const up = await fetch(`${url}/api/version`).then((r) => r.ok, () => false);
                if (up) break;
                assert.ok(i < 300, "the own Ollama did not start within 30 s");
                await new Promise((r) => setTimeout(r, 100));
            }
            await createTinyModel(url);
            sb = await startSandbox({
                config: { domain: "ollama.localhost", devices: [{ name: "alice-laptop", owner: "alice@example.com" }], identity: { provider: "none" }, ollama: { gpus: "none" }, filter: { enabled: true, modelsByGroup: { "*": [MODEL] } } },
                extraArgs: ["--ollama", url],
                readyTimeoutMs: 60_000,
            });
            assert.deepEqual({ kind: sb.info.ollamaServer?.kind, ollama: sb.info.ollama, log: sb.info.ollamaLog }, { kind: "url", ollama: url, log: undefined });
            const r = await sb.request({ path: "/api/generate", method: "POST", body: { model: MODEL, prompt: "hi", stream: false, options: { num_predict: 2 } }, timeoutMs: 60_000 });
            assert.equal(r.status, 200, r.body);
            assert.equal(r.json<{ eval_count: number }>().eval_count, 2);
            assert.equal((await sb.request({ path: "/api/pull", method: "POST", body: { model: "x" } })).status, 403);
        } finally {
            await sb?.stop();
            own.kill("SIGTERM");
        }
    });
});
