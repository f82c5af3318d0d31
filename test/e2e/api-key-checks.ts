/**
 * Static per-device API keys (devices[].apiKey), checked the same way against every gateway kind:
 * a keyed device needs its own key on every request, a key never works from another device's
 * certificate, refusals are 401 JSON and reach nothing, and the key is never forwarded.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startSandbox, type Sandbox } from "./harness";

export function runApiKeyChecks(kind: "nginx" | "haproxy"): void {
    describe(`device API keys without an IdP (identity none) through the real ${kind}`, () => {
        let sb: Sandbox;
        before(async () => {
            sb = await startSandbox({
                config: {
                    domain: "ollama.test",
                    devices: [
                        { name: "build-box", owner: "build@example.com", groups: ["ci"], apiKey: true },
                        { name: "dev-laptop", owner: "dev@example.com", groups: ["ml"] },
                    ],
                    gateway: { kind },
                    filter: { enabled: false },
                },
            });
            assert.equal(sb.info.gateway.kind, kind);
        });
        after(async () => {
            await sb?.stop();
        });

        const refused = (key: string): [string, string, Record<string, string>][] => [
            ["keyed device without its key", "build-box", {}],
            ["a key-shaped token that is nobody's key", "build-box", { Authorization: `Bearer ${"A".repeat(48)}` }],
            ["the key sent as Basic credentials", "build-box", { Authorization: `Basic ${Buffer.from(`x:${key}`).toString("base64")}` }],
            ["the key with a character appended", "build-box", { Authorization: `Bearer ${key}x` }],
            ["the key from another device's certificate", "dev-laptop", { Authorization: `Bearer ${key}` }],
        ];

        test("every wrong or missing key is refused with 401 api_key_invalid, nothing reaches Ollama", async () => {
            const key = sb.info.devices["build-box"].apiKey;
            assert.ok(key, "sandbox.json lists the key of the apiKey device");
            assert.equal(sb.info.devices["dev-laptop"].apiKey, undefined);
            sb.resetOllamaLog();
            for (const [what, device, headers] of refused(key)) {
                const r = await sb.request({ path: "/api/tags", device, headers });
                assert.equal(r.status, 401, `${what}: ${r.body}`);
                assert.equal(r.json<{ error: { code: string } }>().error.code, "api_key_invalid", what);
            }
            assert.deepEqual(sb.ollamaRequests(), []);
        });

        test("the right key (any case of Bearer) passes and is not forwarded; a keyless device needs only its certificate", async () => {
            const key = sb.info.devices["build-box"].apiKey!;
            sb.resetOllamaLog();
            assert.equal((await sb.request({ path: "/api/tags", device: "build-box", headers: { Authorization: `bearer  ${key}` } })).status, 200);
            assert.equal((await sb.request({ path: "/api/tags", device: "dev-laptop" })).status, 200);
            const [keyed, keyless] = sb.ollamaRequests();
            assert.equal(keyed.headers["x-auth-request-user"], "build@example.com");
            assert.equal(keyed.headers.authorization, undefined);
            assert.equal(keyless.headers["x-device-name"], "dev-laptop");
            assert.equal(keyless.headers["x-auth-request-user"], "dev@example.com");
        });
    });
}
