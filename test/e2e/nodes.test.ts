/**
 * The GPU node pool against real nginx processes: the gateway (with its pool router) and one
 * enclave proxy per node, each in front of that node's own stub Ollama, all on 127.0.0.1. The
 * sandbox runs in-process so the test can stop and restart a node's stub Ollama.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { after, before, describe, test } from "node:test";
import type { OllamaRequestEntry } from "../../scripts/sandbox/stub-ollama";
import { startSandbox, type RunningSandbox } from "../../scripts/sandbox/run";
import { delay } from "../../scripts/sandbox/processes";
import { nodePoolStack, POOL_MODELS } from "../../scripts/lib/node-pool-stack";
import { runSoak } from "../../scripts/soak-nodes";
import { gatewayRequest, makeForeignCaCert, tempDir, type HttpResult } from "./harness";

const FAIL_TIMEOUT_S = 8;

function requestsOf(logFile: string): OllamaRequestEntry[] {
    return readFileSync(logFile, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((e) => e.kind === "request");
}
const modelOf = (e: OllamaRequestEntry) => (e.body ? (JSON.parse(e.body) as { model?: string }).model : undefined);

/** A streamed generation, read as it arrives; `complete` is false when the connection broke first. */
function stream(sb: RunningSandbox, body: object, onFirstChunk: () => void): Promise<{ status: number; text: string; chunks: number; complete: boolean }> {
    const info = sb.info;
    const u = new URL(info.url);
    const device = Object.values(info.devices)[0];
    return new Promise((done, fail) => {
        const req = httpsRequest(
            { host: u.hostname, port: Number(u.port), path: "/api/generate", method: "POST", headers: { "Content-Type": "application/json" }, ca: readFileSync(info.ca), cert: readFileSync(device.cert), key: readFileSync(device.key), agent: false },
            (res) => {
                let text = "";
                let chunks = 0;
                res.setEncoding("utf8");
                res.on("data", (c: string) => {
                    if (chunks++ === 0) onFirstChunk();
                    text += c;
                });
                res.on("end", () => done({ status: res.statusCode ?? 0, text, chunks, complete: true }));
                res.on("error", () => done({ status: res.statusCode ?? 0, text, chunks, complete: false }));
                res.on("aborted", () => done({ status: res.statusCode ?? 0, text, chunks, complete: false }));
            },
        );
        req.on("error", fail);
        req.end(JSON.stringify(body));
    });
}

describe("GPU node pool through the real nginx gateway and enclaves", () => {
    let sb: RunningSandbox;
    const generate = (model: string, extra: object = {}): Promise<HttpResult> => gatewayRequest(sb.info, { path: "/api/generate", method: "POST", body: { model, prompt: "hello", stream: false, ...extra } });
    const node = (name: string) => sb.nodes!.find((n) => n.name === name)!;

    before(async () => {
        sb = await startSandbox(nodePoolStack({ failTimeoutSeconds: FAIL_TIMEOUT_S }), { stateDir: tempDir("zto-nodes-e2e-"), tokenIntervalMs: 40, tokens: 10 });
    });
    after(async () => {
        await sb?.stop();
    });

    test("each model lands only on nodes that serve it; the shared model is spread over its nodes", async () => {
        const sent = [...Array(6).fill(POOL_MODELS.shared), ...Array(3).fill(POOL_MODELS.gpuAOnly), ...Array(3).fill(POOL_MODELS.gpuCOnly)] as string[];
        const results = await Promise.all(sent.map((m) => generate(m)));
        assert.deepEqual(results.map((r) => r.status), sent.map(() => 200));
        const byNode = Object.fromEntries(sb.nodes!.map((n) => [n.name, requestsOf(n.ollamaLog).map(modelOf)]));
        assert.ok(byNode["gpu-a"].every((m) => m === POOL_MODELS.shared || m === POOL_MODELS.gpuAOnly), JSON.stringify(byNode));
        assert.ok(byNode["gpu-b"].every((m) => m === POOL_MODELS.shared), JSON.stringify(byNode));
        assert.ok(byNode["gpu-c"].every((m) => m === POOL_MODELS.gpuCOnly), JSON.stringify(byNode));
        assert.equal(byNode["gpu-a"].filter((m) => m === POOL_MODELS.gpuAOnly).length, 3);
        assert.equal(byNode["gpu-c"].length, 3);
        const shared = (n: string) => byNode[n].filter((m) => m === POOL_MODELS.shared).length;
        assert.equal(shared("gpu-a") + shared("gpu-b"), 6);
        assert.ok(shared("gpu-a") > 0 && shared("gpu-b") > 0, `least connections spreads concurrent requests: ${JSON.stringify(byNode)}`);
        assert.deepEqual(requestsOf(sb.info.ollamaLog!), [], "nothing goes to an Ollama outside the pool");
    });

    describe("a node's enclave admits only the gateway's certificate and only allowlisted endpoints", () => {
        const enclaveInfo = () => ({ ...sb.info, url: sb.info.nodes!["gpu-b"].enclave });
        const gatewayCert = () => sb.info.gatewayClient!;
        const cases: { what: string; device: () => { cert: string; key: string } | null | string; method?: string; path: string; status: number; code?: string }[] = [
            { what: "an enrolled device's certificate (same CA)", device: () => "alice", path: "/api/version", status: 403, code: "client_not_gateway" },
            { what: "no client certificate", device: () => null, path: "/api/version", status: 400, code: "client_certificate_required" },
            { what: "a foreign CA's certificate", device: () => makeForeignCaCert("foreign-gw"), path: "/api/version", status: 400, code: "client_certificate_invalid" },
            { what: "the gateway's certificate on /api/pull", device: gatewayCert, method: "POST", path: "/api/pull", status: 403, code: "route_not_allowed" },
            { what: "the gateway's certificate on /api/delete", device: gatewayCert, method: "DELETE", path: "/api/delete", status: 403, code: "route_not_allowed" },
            { what: "the gateway's certificate on /", device: gatewayCert, path: "/", status: 403, code: "route_not_allowed" },
            { what: "the gateway's certificate on an encoded /api/pull", device: gatewayCert, method: "POST", path: "/api/%70ull", status: 403, code: "route_not_allowed" },
            { what: "the gateway's certificate on /api/tags/../pull", device: gatewayCert, method: "POST", path: "/api/tags/../pull", status: 403, code: "route_not_allowed" },
            { what: "the gateway's certificate with a wrong method", device: gatewayCert, method: "DELETE", path: "/api/tags", status: 405, code: "method_not_allowed" },
        ];
        for (const c of cases) {
            test(`refuses ${c.what} (${c.status}), and its Ollama receives nothing`, async () => {
                const before = requestsOf(node("gpu-b").ollamaLog).length;
                const r = await gatewayRequest(enclaveInfo(), { path: c.path, method: c.method, device: c.device() as never });
                assert.equal(r.status, c.status, r.body);
                if (c.code) assert.equal(r.json<{ error: { code: string } }>().error.code, c.code);
                assert.equal(requestsOf(node("gpu-b").ollamaLog).length, before, "the node's Ollama received nothing");
            });
        }
        test("admits the gateway's certificate on an allowlisted endpoint (the refusals above can pass)", async () => {
            const before = requestsOf(node("gpu-b").ollamaLog).length;
            const r = await gatewayRequest(enclaveInfo(), { path: "/api/version", device: gatewayCert() });
            assert.equal(r.status, 200);
            assert.equal(requestsOf(node("gpu-b").ollamaLog).length, before + 1);
        });
    });

    test("metadata calls are answered by another node while one node is down", async () => {
        await node("gpu-c").stopOllama();
        try {
            const results = await Promise.all(Array.from({ length: 8 }, () => gatewayRequest(sb.info, { path: "/api/tags" })));
            assert.deepEqual(results.map((r) => r.status), Array(8).fill(200));
            const versions = await Promise.all(Array.from({ length: 4 }, () => gatewayRequest(sb.info, { path: "/api/version" })));
            assert.deepEqual(versions.map((r) => r.status), Array(4).fill(200));
        } finally {
            await node("gpu-c").startOllama();
        }
    });

    test("a node dying mid-stream: the stream breaks without detail, later requests go to the other node, and the failed node stays out for the fail timeout", async () => {
        // Find which node a streamed generation of the shared model is on, then stop it mid-stream.
        const counts = () => Object.fromEntries(["gpu-a", "gpu-b"].map((n) => [n, requestsOf(node(n).ollamaLog).length]));
        const before = counts();
        let victim = "";
        const result = await stream(sb, { model: POOL_MODELS.shared, prompt: "hello", stream: true }, () => {
            const now = counts();
            victim = now["gpu-a"] > before["gpu-a"] ? "gpu-a" : "gpu-b";
            void node(victim).stopOllama();
        });
        assert.equal(result.status, 200);
        assert.equal(result.complete, false, `the stream must not look complete: ${result.text}`);
        assert.doesNotMatch(result.text, /"done":true/);
        assert.doesNotMatch(result.text, /127\.0\.0\.1|100\.101\.|nginx|enclave|upstream/i, "no internal detail in what the client got");
        const other = victim === "gpu-a" ? "gpu-b" : "gpu-a";

        // Every following request succeeds, on the remaining node.
        const otherBefore = requestsOf(node(other).ollamaLog).length;
        const following = await Promise.all(Array.from({ length: 4 }, () => generate(POOL_MODELS.shared)));
        assert.deepEqual(following.map((r) => r.status), Array(4).fill(200), following.map((r) => r.body).join("\n"));
        assert.equal(requestsOf(node(other).ollamaLog).length, otherBefore + 4);

        // Back up at once, the failed node still gets nothing until its fail timeout has passed.
        await node(victim).startOllama();
        const victimBefore = requestsOf(node(victim).ollamaLog).length;
        const during = await Promise.all(Array.from({ length: 4 }, () => generate(POOL_MODELS.shared)));
        assert.deepEqual(during.map((r) => r.status), Array(4).fill(200));
        assert.equal(requestsOf(node(victim).ollamaLog).length, victimBefore, "the failed node is out of the pool for the fail timeout");

        await delay((FAIL_TIMEOUT_S + 1) * 1000);
        const later = await Promise.all(Array.from({ length: 6 }, () => generate(POOL_MODELS.shared)));
        assert.deepEqual(later.map((r) => r.status), Array(6).fill(200));
        assert.ok(requestsOf(node(victim).ollamaLog).length > victimBefore, "after the fail timeout the node is back in the pool");
    });
});

describe("GPU node pool without the filter, and a bounded soak", () => {
    let sb: RunningSandbox;
    before(async () => {
        sb = await startSandbox(nodePoolStack({ failTimeoutSeconds: 2, filter: false }), { stateDir: tempDir("zto-nodes-nofilter-"), tokenIntervalMs: 5, tokens: 8 });
    });
    after(async () => {
        await sb?.stop();
    });

    test("without the filter the gateway cannot see the model: inference goes to the default model's nodes", async () => {
        // A client naming a model in the routing header cannot steer the request (only the filter's hop can).
        const r = await Promise.all(Array.from({ length: 4 }, () => gatewayRequest(sb.info, { path: "/api/generate", method: "POST", headers: { "X-Zto-Model": POOL_MODELS.gpuCOnly }, body: { model: POOL_MODELS.shared, prompt: "x", stream: false } })));
        assert.deepEqual(r.map((x) => x.status), Array(4).fill(200));
        const got = Object.fromEntries(sb.nodes!.map((n) => [n.name, requestsOf(n.ollamaLog).length]));
        assert.equal(got["gpu-c"], 0, "gpu-c does not serve the default model");
        assert.equal(got["gpu-a"] + got["gpu-b"], 4);
    });

    test("12 s of load with one node restarted halfway: no metadata 5xx, no descriptor or memory growth in the gateway workers", async () => {
        const report = await runSoak(sb, { durationS: 12, concurrency: 4, restartNode: "gpu-b", downS: 1, failTimeoutS: 2 });
        assert.equal(report.metadata5xxTotal, 0, JSON.stringify(report.requests));
        assert.ok(report.requests.total > 0);
        assert.ok(report.nodeRequests.afterRestart["gpu-b"] > 0, `the restarted node rejoins the pool: ${JSON.stringify(report.nodeRequests)}`);
        assert.ok(report.gatewayWorkers.start.length > 0, "gateway workers found");
        // A leak per request would add hundreds of descriptors; keepalive pools may add a few.
        assert.ok(report.gatewayWorkers.fdGrowth < 64, `descriptors grew by ${report.gatewayWorkers.fdGrowth}`);
        assert.ok(report.gatewayWorkers.rssGrowthKiB < 16 * 1024, `resident memory grew by ${report.gatewayWorkers.rssGrowthKiB} KiB`);
    });
});
