/** The verdict on 50 concurrent requests at a budget that fits 10 reservations, shared by the in-process and the multi-process tests. */
import assert from "node:assert/strict";

export const CROWD = 50;

/** Asserts every reply is an admission or a budget refusal, at least 10 were admitted and Ollama saw exactly those; returns how many. */
export function checkCrowd(replies: readonly { readonly status: number; readonly body: string }[], reachedOllama: number): number {
    const admitted = replies.filter((r) => r.status === 200).length;
    const refused = replies.filter((r) => r.status === 429);
    assert.equal(admitted + refused.length, CROWD);
    assert.ok(admitted >= 10, `at least the 10 that fit were admitted (${admitted})`);
    for (const r of refused) assert.equal(JSON.parse(r.body).error.code, "token_budget_exceeded");
    assert.equal(reachedOllama, admitted, "Ollama received exactly the admitted requests");
    return admitted;
}
