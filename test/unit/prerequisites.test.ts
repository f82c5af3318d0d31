/**
 * `npm test` starts with the prerequisite check: on a machine without the data-plane programs it
 * prints one line per missing program with how to install it and exits non-zero, before any test
 * can fail with `spawnSync nginx ENOENT`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { PREREQUISITES, checkPrerequisites, judge, versionAtLeast, type Prerequisite } from "../../scripts/prerequisites";

const ROOT = join(__dirname, "..", "..");
const emptyBin = mkdtempSync(join(tmpdir(), "zto-prereq-"));
after(() => rmSync(emptyBin, { recursive: true, force: true }));

const nginx = PREREQUISITES.find((p) => p.name === "nginx")!;

describe("prerequisite check", () => {
    test("the table covers what the tests run for real, Node first", () => {
        assert.deepEqual(
            PREREQUISITES.map((p) => p.name),
            ["node", "nginx", "haproxy", "openssl", "curl", "python3", "python3-httpx", "busybox", "chromium", "redis-server", "libssl-dev", "go", "oauth2-proxy", "ollama"],
        );
        assert.equal(PREREQUISITES[0].min, "20.10.0");
        for (const p of PREREQUISITES) assert.match(p.install, /apt-get install|nodejs\.org|go\.dev|npm run tools:build/, p.name);
    });

    test("versions compare numerically", () => {
        assert.ok(versionAtLeast("20.10.0", "20.10.0"));
        assert.ok(versionAtLeast("20.19.5", "20.10.0"));
        assert.ok(!versionAtLeast("20.9.0", "20.10.0"));
        assert.ok(!versionAtLeast("18.20.4", "20.10.0"));
        assert.ok(versionAtLeast("1.22.1", "1.22"));
    });

    test("missing, failing, too old and present each read as one line", () => {
        assert.deepEqual(judge(nginx, { ran: true, status: 0, output: "nginx version: nginx/1.22.1\n" }), { ok: true, name: "nginx", version: "1.22.1" });
        const missing = judge(nginx, { ran: false, status: null, output: "" });
        assert.ok(!missing.ok);
        assert.equal(missing.line, "missing: nginx (nginx not found); install: sudo apt-get install nginx (needed for running the rendered nginx.conf in the e2e tests)");
        const old = judge(nginx, { ran: true, status: 0, output: "nginx version: nginx/1.18.0\n" });
        assert.ok(!old.ok && /^too old: nginx 1\.18\.0 \(need 1\.22\.0 or later\); install: sudo apt-get install nginx/.test(old.line));
        const httpx = PREREQUISITES.find((p) => p.name === "python3-httpx")!;
        const broken = judge(httpx, { ran: true, status: 1, output: "Traceback (most recent call last):\nModuleNotFoundError: No module named 'httpx'\n" });
        assert.ok(!broken.ok && /^missing: python3-httpx \(.*failed: ModuleNotFoundError: No module named 'httpx'\); install: sudo apt-get install python3-httpx/.test(broken.line), JSON.stringify(broken));
    });

    test("an old Node is reported with where to get a new one", () => {
        const node: Prerequisite = { ...PREREQUISITES[0], command: process.execPath, args: ["-e", "console.log('18.20.4')"] };
        const [f] = checkPrerequisites([node]);
        assert.ok(!f.ok && /^too old: node 18\.20\.4 \(need 20\.10\.0 or later\); install: .*nodejs\.org/.test(f.line));
    });

    test("with nothing on PATH: one line per missing program with its install command, exit 1", () => {
        const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "scripts/prerequisites.ts")], { cwd: ROOT, encoding: "utf8", env: { ...process.env, PATH: emptyBin } });
        assert.equal(r.status, 1, r.stderr);
        const lines = r.stderr.trim().split("\n");
        for (const name of ["nginx", "haproxy", "openssl", "curl"]) {
            assert.equal(lines.filter((l) => l.startsWith(`prerequisites: missing: ${name} (`) && l.includes(`apt-get install ${name}`)).length, 1, r.stderr);
        }
        assert.match(lines[lines.length - 1], new RegExp(`^prerequisites: \\d+ of ${PREREQUISITES.length} missing`));
        assert.doesNotMatch(r.stderr, /^\s+at /m);
    });

    test("npm test runs it before anything else; --help exits 0", () => {
        const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string>; engines: { node: string } };
        assert.match(pkg.scripts.test, /^npm run --silent prerequisites && /);
        assert.equal(pkg.engines.node, ">=20.10");
        const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "scripts/prerequisites.ts"), "--help"], { cwd: ROOT, encoding: "utf8" });
        assert.equal(r.status, 0);
        assert.match(r.stdout, /^usage: npm run prerequisites/);
    });
});
