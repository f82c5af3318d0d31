/**
 * bench:gateway's C new-connection client counts what it claims against the real gateways: every
 * connection answered 200, resumption seen only when the gateway resumed (a full-handshake run
 * resumes nothing), and it is built (or refused with what to install) by content hash.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { handshakeClient, runHandshakes } from "../../scripts/lib/handshake-client";
import { REPO_ROOT, startSandbox } from "./harness";

const scratch = mkdtempSync(join(tmpdir(), "zto-handshake-client-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("handshake client", () => {
    const binary = handshakeClient();

    test("built once per source: a second call finds the same binary", () => {
        assert.equal(handshakeClient(), binary);
    });

    test("without a C compiler: a clear error naming what to install, no binary", () => {
        const r = spawnSync(process.execPath, ["--import", "tsx", "-e", 'require("./scripts/lib/handshake-client").handshakeClient()'], {
            cwd: REPO_ROOT,
            env: { ...process.env, CC: "zto-no-such-cc", ZTO_TOOLS_DIR: scratch },
            encoding: "utf8",
        });
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /cannot build the handshake client .*zto-no-such-cc is not installed/);
        assert.match(r.stderr, /apt-get install gcc libssl-dev/);
    });

    test("bad arguments: usage, exit 2", () => {
        const r = spawnSync(binary, ["--host", "127.0.0.1", "--port", "0"], { encoding: "utf8" });
        assert.equal(r.status, 2);
        assert.match(r.stderr, /^usage: handshake-client/);
    });

    for (const kind of ["nginx", "haproxy"] as const) {
        test(`against the real ${kind} gateway: full handshakes resume nothing, resumed runs resume`, { timeout: 180_000 }, async () => {
            const sb = await startSandbox({
                config: { domain: "ollama.test", devices: [{ name: "alice-laptop", owner: "alice@example.com", groups: ["ml-eng"] }], gateway: { kind }, identity: { provider: "none" }, filter: { enabled: false } },
                readyTimeoutMs: 120_000,
            });
            try {
                const device = sb.info.devices["alice-laptop"];
                const target = { host: "127.0.0.1", port: Number(new URL(sb.info.url).port), ca: sb.info.ca, cert: device.cert, key: device.key };
                const full = await runHandshakes(binary, target, { connections: 6, threads: 1, resume: false, timeoutMs: 60_000 });
                assert.deepEqual({ ok: full.ok, errors: full.errors, resumed: full.resumed }, { ok: 6, errors: 0, resumed: 0 });
                const resumed = await runHandshakes(binary, target, { connections: 6, threads: 1, resume: true, timeoutMs: 60_000 });
                assert.equal(resumed.ok, 6);
                // Every connection but the first (no ticket yet) resumes, on haproxy too, which sends
                // no new ticket on a resumed connection (the client offers its newest one again).
                assert.equal(resumed.resumed, 5, JSON.stringify(resumed));
                // Every request reached the stub: the client counted answers, not just handshakes.
                assert.equal(sb.ollamaRequests().filter((r) => r.path === "/api/version").length, 12);
            } finally {
                await sb.stop();
            }
        });
    }
});
