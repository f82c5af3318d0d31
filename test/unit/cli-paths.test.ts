/**
 * Paths on the command line are relative to where the user typed the command (npm keeps it in
 * INIT_CWD), in plan and policy:check as in the sandbox and device:*; and a YAML syntax error keeps
 * the yaml library's code frame: the line, the column and the offending lines with a caret.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { parseStackFile, StackFileError } from "../../components/stack-file";
import { addDevice } from "../../scripts/lib/device-edit";

const ROOT = join(__dirname, "..", "..");
const elsewhere = mkdtempSync(join(tmpdir(), "zto-cli-paths-"));
after(() => rmSync(elsewhere, { recursive: true, force: true }));

function run(script: string, args: string[]) {
    // cwd is the package root, as under `npm run`; INIT_CWD is where the user was.
    const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "scripts", `${script}.ts`), ...args], { cwd: ROOT, encoding: "utf8", env: { ...process.env, INIT_CWD: elsewhere }, maxBuffer: 1 << 26 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const BROKEN = "config:\n  zero-trust-ollama:domain: x.example\n  zero-trust-ollama:gateway:\n    port: 8443\n   kind: nginx\n";

describe("paths from where the user ran the command", () => {
    test("plan --stack <relative> reads the file in INIT_CWD, not the package root", () => {
        copyFileSync(join(ROOT, "Pulumi.dev.yaml"), join(elsewhere, "Pulumi.mine.yaml"));
        const r = run("plan", ["--stack", "Pulumi.mine.yaml", "--json"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /urn:pulumi:mine::zero-trust-ollama::/);
        // The package root has Pulumi.dev.yaml; INIT_CWD has not: the relative path must fail there.
        const wrong = run("plan", ["--stack", "Pulumi.dev.yaml"]);
        assert.equal(wrong.code, 2);
        assert.match(wrong.stderr, new RegExp(`${elsewhere}/Pulumi\\.dev\\.yaml: cannot read stack file \\(ENOENT\\)`));
    });

    test("policy:check <relative export> reads the file in INIT_CWD", () => {
        copyFileSync(join(ROOT, "test/fixtures/stack-export-clean.json"), join(elsewhere, "export.json"));
        const r = run("policy-check", ["export.json", "--json"]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(Array.isArray(JSON.parse(r.stdout).violations));
        const wrong = run("policy-check", ["test/fixtures/stack-export-clean.json"]);
        assert.equal(wrong.code, 2, "a path relative to the package root must not be found from INIT_CWD");
    });
});

describe("YAML errors keep their code frame", () => {
    const frame = /not valid YAML: All mapping items must start at the same column at line 5, column 1:\n\n {4}port: 8443\n {3}kind: nginx\n\^/;

    test("reading a stack file", () => {
        assert.throws(() => parseStackFile(BROKEN, "Pulumi.bad.yaml"), (e: unknown) => e instanceof StackFileError && frame.test((e as Error).message) && (e as Error).message.startsWith("Pulumi.bad.yaml: "));
    });

    test("editing one with device:add", () => {
        assert.throws(() => addDevice(BROKEN, "Pulumi.bad.yaml", { name: "x", owner: "x@example.com" }), (e: unknown) => frame.test((e as Error).message));
    });

    test("plan prints it whole, exit 2", () => {
        writeFileSync(join(elsewhere, "Pulumi.bad.yaml"), BROKEN);
        const r = run("plan", ["--stack", "Pulumi.bad.yaml"]);
        assert.equal(r.code, 2);
        assert.match(r.stderr, frame);
        assert.doesNotMatch(r.stderr, /:\s*$(?![\s\S])/, "ends in a dangling colon");
    });
});
