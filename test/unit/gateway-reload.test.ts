/**
 * The gateway's reload pieces as pure functions, and the two scripts run for real under dash and
 * under busybox (the shell and tools of the alpine gateway images): the writer flips `current`
 * atomically and prunes old generations; the supervisor signals a reload only for a generation
 * whose check passes, and forwards SIGTERM. The sandbox's reload scope is checked too.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { configWriterScript, gatewaySupervisorScript, generationFile, generationId, shellQuote } from "../../components/gateway/reload";
import { keysNeedingRestart } from "../../scripts/sandbox/run";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const temp = () => {
    const d = mkdtempSync(join(tmpdir(), "zto-reload-"));
    dirs.push(d);
    return d;
};

describe("generations", () => {
    test("the id digests every file by path, in any order, and nothing else", () => {
        const id = generationId({ "a.conf": "x", "tls/b.crt": "y" });
        assert.match(id, /^[0-9a-f]{16}$/);
        assert.equal(generationId({ "tls/b.crt": "y", "a.conf": "x" }), id);
        assert.notEqual(generationId({ "a.conf": "x", "tls/b.crt": "z" }), id);
        assert.notEqual(generationId({ "a.conf": "xtls/b.crt", "": "y" }), id, "path and content boundaries count");
    });

    test("a generation path needs a well-formed id", () => {
        assert.equal(generationFile("/etc/nginx/zto", "0123456789abcdef", "nginx.conf"), "/etc/nginx/zto/generations/0123456789abcdef/nginx.conf");
        for (const bad of ["", "../../etc", "0123456789ABCDEF", "0123456789abcde"]) assert.throws(() => generationFile("/r", bad, "x"), /16 lowercase hex/);
    });

    test("shell words are quoted literally; line breaks are refused", () => {
        assert.equal(execFileSync("sh", ["-c", `printf %s ${shellQuote(`it's $HOME; "x"`)}`], { encoding: "utf8" }), `it's $HOME; "x"`);
        assert.throws(() => shellQuote("a\nb"), /line break/);
    });
});

/** dash, and busybox with its own applets first on PATH (as in the alpine images). */
function shells(): { name: string; sh: string; env: NodeJS.ProcessEnv }[] {
    const list = [{ name: "dash", sh: "sh", env: process.env }];
    const busybox = ["/usr/bin/busybox", "/bin/busybox"].find(existsSync);
    if (!busybox) {
        if (process.env.CI === "true") throw new Error("busybox is not installed (apt-get install busybox; .ci/setup.d/30-reload-busybox.sh)");
        return list;
    }
    const bin = temp();
    for (const applet of ["sh", "mv", "ln", "rm", "readlink", "sleep", "tr", "kill"]) symlinkSync(busybox, join(bin, applet));
    return [...list, { name: "busybox", sh: join(bin, "sh"), env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } }];
}

for (const shell of shells()) {
    describe(`under ${shell.name}`, () => {
        const write = (root: string, id: string, text: string) => {
            mkdirSync(generationFile(root, id, ""), { recursive: true });
            writeFileSync(generationFile(root, id, "app.conf"), text);
            return spawnSync(shell.sh, ["-c", configWriterScript(root), "zto-config-writer", id], { encoding: "utf8", env: shell.env });
        };

        test("the writer flips current to the new generation and keeps only it and the one before", () => {
            const root = temp();
            const ids = ["1111111111111111", "2222222222222222", "3333333333333333"];
            for (const id of ids) assert.equal(write(root, id, id).status, 0);
            assert.equal(readlinkSync(join(root, "current")), `generations/${ids[2]}`);
            assert.equal(readFileSync(join(root, "current", "app.conf"), "utf8"), ids[2]);
            assert.deepEqual(readdirSync(join(root, "generations")).sort(), ids.slice(1));
            assert.ok(!existsSync(join(root, "current.next")));
        });

        test("the writer refuses a missing generation or a malformed id and leaves current alone", () => {
            const root = temp();
            write(root, "1111111111111111", "one");
            const missing = spawnSync(shell.sh, ["-c", configWriterScript(root), "w", "4444444444444444"], { encoding: "utf8", env: shell.env });
            assert.equal(missing.status, 1);
            assert.match(missing.stderr, /generations\/4444444444444444 is missing/);
            const bad = spawnSync(shell.sh, ["-c", configWriterScript(root), "w", "../x"], { encoding: "utf8", env: shell.env });
            assert.equal(bad.status, 2);
            assert.equal(readlinkSync(join(root, "current")), "generations/1111111111111111");
        });

        test("the supervisor reloads only for a generation that passes the check, and passes SIGTERM on", async () => {
            const root = temp();
            write(root, "1111111111111111", "good");
            const signals = join(root, "signals.log");
            // A stand-in master that records the signals it gets; the check accepts "good" configs only.
            const master = ["sh", "-c", `trap 'echo HUP >> ${signals}' HUP; trap 'echo TERM >> ${signals}; exit 0' TERM; while :; do sleep 0.1; done`];
            const check = ["sh", "-c", `grep -qx good ${join(root, "current", "app.conf")} || { echo "bad config"; exit 1; }`];
            const p = spawn(shell.sh, ["-c", gatewaySupervisorScript({ kind: "nginx", link: join(root, "current"), run: master, check }), "zto-gateway"], { env: shell.env, stdio: ["ignore", "ignore", "pipe"] });
            let stderr = "";
            p.stderr.on("data", (b) => (stderr += b));
            const waitFor = async (what: RegExp) => {
                for (let i = 0; i < 100 && !what.test(stderr); i++) await new Promise((r) => setTimeout(r, 50));
                assert.match(stderr, what);
            };
            try {
                await waitFor(/started on generations\/1111111111111111/);
                write(root, "2222222222222222", "broken");
                await waitFor(/REFUSED generations\/2222222222222222: sh rejected it, still serving generations\/1111111111111111: bad config/);
                write(root, "3333333333333333", "good");
                await waitFor(/reloading nginx master \d+: generations\/1111111111111111 -> generations\/3333333333333333/);
                await new Promise((r) => setTimeout(r, 300));
                assert.equal(readFileSync(signals, "utf8"), "HUP\n", "one reload, for the generation that passed");
                p.kill("SIGTERM");
                const code = await new Promise<number | null>((r) => p.on("exit", (c) => r(c)));
                assert.equal(code, 0, "exits with the master's status");
                assert.equal(readFileSync(signals, "utf8"), "HUP\nTERM\n");
            } finally {
                p.kill("SIGKILL");
            }
        });
    });
}

describe("sandbox reload scope", () => {
    const base = { domain: "ollama.test", devices: [{ name: "a", owner: "a@example.com" }], filter: { enabled: false } };
    test("devices and gateway limits reload; anything that needs new processes or ports is named", () => {
        const running = loadStackConfig(base);
        assert.deepEqual(keysNeedingRestart(running, loadStackConfig({ ...base, devices: [], gateway: { rateLimitPerMinute: 5, reloadDrainSeconds: 3 } })), []);
        assert.deepEqual(keysNeedingRestart(running, loadStackConfig({ ...base, gateway: { kind: "haproxy", port: 9000 } })), ["gateway.kind", "gateway.port"]);
        assert.deepEqual(keysNeedingRestart(running, loadStackConfig({ ...base, domain: "other.test", filter: { enabled: true } })), ["domain", "filter"]);
    });
});
