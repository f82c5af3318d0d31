/**
 * The shared attack matrix against the real haproxy (2.6 here) running the rendered config in
 * the sandbox, in front of the stub Ollama: every refusal is proven by the stub having seen
 * nothing. Same cases as nginx (attack-matrix.ts); where haproxy answers differently the case
 * says so itself (`statusByKind`).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ATTACK_MATRIX } from "./attack-matrix";
import { runAttackMatrix } from "./attack-runner";

const NO_AUTH_REQUEST =
    "needs OIDC sign-in through auth_request to oauth2-proxy; haproxy has no auth_request, so identity.provider entra/oidc with gateway.kind haproxy is a config error (the device certificate is the identity)";

/** Matrix cases that cannot apply to the haproxy gateway, with the reason. */
const NOT_APPLICABLE: Readonly<Record<string, string>> = {
    "identity-forged-with-session": NO_AUTH_REQUEST,
    "identity-no-session-api": NO_AUTH_REQUEST,
    "identity-forged-headers-no-session": NO_AUTH_REQUEST,
    "identity-bad-bearer": NO_AUTH_REQUEST,
    "identity-browser-redirect": NO_AUTH_REQUEST,
    "identity-session-denied-route": NO_AUTH_REQUEST,
    "identity-oauth2-internal-path": NO_AUTH_REQUEST,
    "identity-bearer-ok": NO_AUTH_REQUEST,
    "smuggle-obs-fold":
        "haproxy replaces an obs-fold with spaces (RFC 7230 section 3.2.4 allows that or a 400), so the hidden Transfer-Encoding becomes text inside X-Pad, which the header allowlist drops: upstream gets a plain Content-Length request, nothing is smuggled",
};

test("haproxy skips exactly the matrix cases listed here as not applicable", () => {
    const skipped = ATTACK_MATRIX.filter((c) => !c.appliesTo.includes("haproxy")).map((c) => c.id);
    assert.deepEqual(skipped.sort(), Object.keys(NOT_APPLICABLE).sort());
});

runAttackMatrix("haproxy", { includeIdentity: false });
