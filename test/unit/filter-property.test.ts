/**
 * Property tests (fast-check): no input crashes the decision function or the detectors, and a
 * redacted body never contains a value a detector matched. Inputs mix arbitrary unicode with
 * planted PII so the generators reach the interesting code paths, not only the empty ones.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { loadStackConfig } from "../../components/config";
import { PII_DETECTORS, renderFilterRules } from "../../components/filter/rules";
import { ENDPOINTS } from "../../components/gateway/endpoints";
import { compilePolicy, decide, type Forward } from "../../filter/src/decide";
import { findJailbreak } from "../../filter/src/jailbreak";
import { findPii } from "../../filter/src/pii";

const policy = (pii: "block" | "redact") => compilePolicy(renderFilterRules(loadStackConfig({ domain: "ollama.example.internal", filter: { pii, maxPromptChars: 1_000_000 } })));
const REDACT = policy("redact");
const BLOCK = policy("block");

const PLANTED = ["alice@example.com", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "123-45-6789", "+44 20 7946 0958", "(555) 123-4567", "AKIAIOSFODNN7EXAMPLE", "ghp_" + "x".repeat(36), "xoxb-1234567890-abcdefghij", "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"];
const SEPARATORS = [" ", "", "\n", "@", "-", ".", "+", "x", "1", "é", "\u200b"];

/** Text built from random pieces, planted PII values and separators that tempt boundary bugs. */
const piiText = fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom(...PLANTED), fc.constantFrom(...SEPARATORS), fc.stringMatching(/^[0-9 -]{1,24}$/), fc.stringMatching(/^[A-Za-z0-9._%+-]{1,10}@[a-z0-9.-]{1,12}$/)), { maxLength: 30 }).map((parts) => parts.join(""));

const json = fc.jsonValue({ maxDepth: 4 });
const body = fc.oneof(
    json,
    fc.record({ model: fc.constantFrom("llama3.2:3b", "bad model", "x"), messages: fc.array(fc.record({ role: fc.constantFrom("user", "system", "assistant", "tool", "evil"), content: fc.oneof(piiText, json) }), { maxLength: 5 }) }, { requiredKeys: [] }),
    fc.record({ model: fc.constant("llama3.2:3b"), prompt: piiText, system: piiText, options: fc.dictionary(fc.constantFrom("num_ctx", "num_predict", "temperature", "num_gpu"), fc.oneof(fc.integer(), fc.double(), fc.string())) }, { requiredKeys: ["model"] }),
);

describe("decision function", () => {
    test("never throws and always answers forward or a well-formed refusal", () => {
        fc.assert(
            fc.property(fc.constantFrom(...ENDPOINTS.map((e) => e.path), "/api/pull", "/", "/v1/models/x"), fc.constantFrom("GET", "POST", "HEAD", "DELETE"), body, fc.boolean(), (path, method, b, redactMode) => {
                const d = decide(redactMode ? REDACT : BLOCK, { method, path, identity: { groups: ["g"] }, body: Buffer.from(JSON.stringify(b) ?? "") });
                if (d.action === "refuse") {
                    assert.ok(d.status >= 400 && d.status < 500);
                    assert.match(d.code, /^[a-z_]+$/);
                    assert.match(d.rule, /^[a-z0-9_.-]+$/);
                } else assert.equal(d.action, "forward");
            }),
            { numRuns: 3000 },
        );
    });

    test("arbitrary bytes as a body never throw", () => {
        fc.assert(
            fc.property(fc.uint8Array({ maxLength: 512 }), fc.constantFrom("/api/chat", "/v1/messages", "/v1/responses"), (bytes, path) => {
                const d = decide(BLOCK, { method: "POST", path, identity: { groups: [] }, body: Buffer.from(bytes) });
                assert.ok(d.action === "refuse" || d.action === "forward");
            }),
            { numRuns: 2000 },
        );
    });

    test("a redacted body never contains a value any detector matched", () => {
        fc.assert(
            fc.property(fc.array(piiText, { minLength: 1, maxLength: 4 }), (texts) => {
                const req = { model: "llama3.2:3b", messages: texts.map((content) => ({ role: "user", content })) };
                const d = decide(REDACT, { method: "POST", path: "/api/chat", identity: { groups: [] }, body: Buffer.from(JSON.stringify(req)) });
                if (d.action !== "forward") return; // e.g. jailbreak-free texts only reach here; refusals forward nothing
                const sent = JSON.parse((d as Forward).body!.toString()) as typeof req;
                sent.messages.forEach((m, i) => {
                    for (const match of findPii(texts[i]!, PII_DETECTORS)) {
                        const value = texts[i]!.slice(match.start, match.end);
                        assert.ok(!m.content.includes(value), `leaked ${JSON.stringify(value)} in ${JSON.stringify(m.content)}`);
                    }
                    // Re-scanning the redacted text finds nothing either.
                    assert.deepEqual(findPii(m.content, PII_DETECTORS), []);
                });
            }),
            {
                numRuns: 3000,
                // Counterexamples fast-check found earlier: values glued together, hidden by invisible characters.
                examples: [
                    [["alice@example.com(555) 123-4567", ""]],
                    [["DE89 3704 0044 0532 0130 00+44 20 7946 0958DE89 3704 0044 0532 0130 00"]],
                    [["123-45-6789xoxb-1234567890-abcdefghij 123-45-6789\u200bx"]],
                    [["alice@example.com(555) 123-4567\u200bAKIAIOSFODNN7EXAMPLE", ""]],
                    [["0\u200b4111 1111 1111 1111+44 20 7946 0958", ""]],
                ],
            },
        );
    });
});

describe("detectors", () => {
    test("never throw, and return sorted, non-overlapping, in-bounds matches", () => {
        fc.assert(
            fc.property(fc.oneof(piiText, fc.string({ unit: "binary", maxLength: 300 })), (text) => {
                const matches = findPii(text, PII_DETECTORS);
                let cursor = 0;
                for (const m of matches) {
                    assert.ok(m.start >= cursor && m.end > m.start && m.end <= text.length);
                    cursor = m.end;
                }
                findJailbreak(text);
            }),
            { numRuns: 5000 },
        );
    });
});
