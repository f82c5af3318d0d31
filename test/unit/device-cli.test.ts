import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import { applyCommands } from "../../scripts/lib/device-edit";

const ROOT = resolve(__dirname, "../..");
const work = mkdtempSync(join(tmpdir(), "device-cli-"));
after(() => rmSync(work, { recursive: true, force: true }));

function run(script: "device-add" | "device-revoke", args: string[], env: NodeJS.ProcessEnv = process.env) {
    const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "scripts", `${script}.ts`), ...args], { cwd: ROOT, encoding: "utf8", env });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh copy of an example stack file, and a check that it is still byte-for-byte the original. */
function copyOf(example: "dev" | "prod") {
    const dir = mkdtempSync(join(work, "stack-"));
    const path = join(dir, `Pulumi.${example}.yaml`);
    copyFileSync(join(ROOT, `Pulumi.${example}.yaml`), path);
    const original = readFileSync(path);
    const mtime = statSync(path).mtimeMs;
    return {
        path,
        assertUntouched() {
            assert.ok(readFileSync(path).equals(original), "file content unchanged");
            assert.equal(statSync(path).mtimeMs, mtime, "file not rewritten");
            assert.deepEqual(readdirSync(dir), [`Pulumi.${example}.yaml`], "no temporary file left behind");
        },
    };
}

const noStackTrace = (s: string) => assert.doesNotMatch(s, /^\s+at .+:\d+:\d+\)?$/m, `stack trace printed:\n${s}`);

describe("device:add / device:revoke command line", () => {
    test("add, then revoke: exit 0, next steps printed, file back to the original bytes", () => {
        const f = copyOf("dev");
        const add = run("device-add", ["--stack", f.path, "--name", "carol-phone", "--owner", "carol@example.com", "--groups", "ml-eng,analysts"]);
        assert.equal(add.code, 0, add.stderr);
        assert.match(add.stdout, /enrolled "carol-phone" \(owner carol@example\.com\)/);
        // A copy outside the project directory: Pulumi would not read it without --config-file.
        assert.match(add.stdout, /^next: pulumi up --stack dev --config-file \S+Pulumi\.dev\.yaml /m);
        assert.match(add.stdout, /^ {2}or: npm run sandbox -- --stack \S+Pulumi\.dev\.yaml --state <its state dir>/m);
        assert.match(add.stdout, /^then: npm run device:bundle -- --stack-name dev --name carol-phone --out \.\/carol-phone-bundle$/m);
        assert.match(readFileSync(f.path, "utf8"), /    - name: carol-phone\n      owner: carol@example.com\n      groups: \[ml-eng, analysts\]\n/);
        const revoke = run("device-revoke", ["--stack", f.path, "--name", "carol-phone"]);
        assert.equal(revoke.code, 0, revoke.stderr);
        assert.match(revoke.stdout, /removed "carol-phone"/);
        assert.doesNotMatch(revoke.stdout, /revokedDevices/, "no node id, no tailnet hint");
        assert.equal(readFileSync(f.path, "utf8"), readFileSync(join(ROOT, "Pulumi.dev.yaml"), "utf8"));
    });

    test("revoking a device with a Tailscale node id prints the revokedDevices entry that withdraws its approval; the file changes only in devices", () => {
        const f = copyOf("prod");
        const revoke = run("device-revoke", ["--stack", f.path, "--name", "alice-laptop"]);
        assert.equal(revoke.code, 0, revoke.stderr);
        assert.match(revoke.stdout, /leaves it approved at the tailnet[\s\S]*zero-trust-ollama:tailscale\.revokedDevices[\s\S]*\n {6}- name: alice-laptop\n {8}tailscaleDeviceId: nA1b2C3d4E5CNTRL\n?$/);
        assert.doesNotMatch(readFileSync(f.path, "utf8"), /revokedDevices|alice-laptop/);
    });

    test("refusals exit 1 with the reason, no stack trace, and leave the file untouched", () => {
        const cases: [string, "dev" | "prod", "device-add" | "device-revoke", string[], RegExp][] = [
            ["duplicate", "dev", "device-add", ["--name", "alice-laptop", "--owner", "a2@example.com"], /device "alice-laptop" is already enrolled/],
            ["invalid email", "dev", "device-add", ["--name", "dave-pc", "--owner", "dave"], /zero-trust-ollama:devices\[2\]\.owner: must be an email address .*\(got "dave"\) \(set with --owner\)/],
            ["tailscale id missing", "prod", "device-add", ["--name", "dave-pc", "--owner", "dave@corp.example.com"], /devices\[3\]\.tailscaleDeviceId: is required when tailscale\.enabled is true/],
            ["unknown name", "dev", "device-revoke", ["--name", "mallory"], /no device named "mallory" \(enrolled: alice-laptop, bob-workstation\)/],
        ];
        for (const [label, example, script, args, expected] of cases) {
            const f = copyOf(example);
            const r = run(script, ["--stack", f.path, ...args]);
            assert.equal(r.code, 1, `${label}: ${r.stderr}`);
            assert.match(r.stderr, expected, label);
            assert.equal(r.stdout, "", label);
            noStackTrace(r.stderr);
            f.assertUntouched();
        }
    });

    test("usage errors exit 2 and print the usage", () => {
        const f = copyOf("dev");
        for (const args of [["--stack", f.path, "--name", "x"], ["--stack", f.path, "--name", "x", "--owner", "x@example.com", "--colour", "red"], ["--stack", f.path, "stray"]]) {
            const r = run("device-add", args);
            assert.equal(r.code, 2, r.stderr);
            assert.match(r.stderr, /^error: .+\n\nusage: npm run device:add/);
            noStackTrace(r.stderr);
        }
        f.assertUntouched();
    });

    test("a relative --stack is relative to where the user ran npm (INIT_CWD), not the package root", () => {
        const f = copyOf("dev");
        const r = run("device-add", ["--stack", "Pulumi.dev.yaml", "--name", "erin-tablet", "--owner", "erin@example.com"], { ...process.env, INIT_CWD: dirname(f.path) });
        assert.equal(r.code, 0, r.stderr);
        assert.match(readFileSync(f.path, "utf8"), /- name: erin-tablet/);
        assert.equal(readFileSync(join(ROOT, "Pulumi.dev.yaml"), "utf8").includes("erin-tablet"), false, "the repository's own stack file is untouched");
    });

    test("the next steps fit where the stack file is: the project's own, or a sandbox copy in .sandbox/", () => {
        const copy = join(mkdtempSync(join(work, "try-")), "Pulumi.try.yaml");
        copyFileSync(join(ROOT, "Pulumi.dev.yaml"), copy);
        // Like the README's `.sandbox/Pulumi.try.yaml`: a copy outside the project directory.
        const env = { ...process.env, INIT_CWD: dirname(copy) };
        const add = run("device-add", ["--stack", "Pulumi.try.yaml", "--name", "carol-phone", "--owner", "carol@example.com"], env);
        assert.equal(add.code, 0, add.stderr);
        assert.doesNotMatch(add.stdout, /--stack try(?! --config-file)/, "pulumi would look for Pulumi.try.yaml in the project directory, not here");
        assert.match(add.stdout, new RegExp(`^next: pulumi --cwd \\S+ up --stack try --config-file ${copy.replace(/[.]/g, "\\.")} `, "m"));
        assert.match(add.stdout, /^ {2}or: npm run sandbox -- --stack Pulumi\.try\.yaml --state <its state dir>/m);
        assert.match(add.stdout, /^ {2}or: npm run device:bundle -- --sandbox <its state dir>\/sandbox\.json --name carol-phone/m);
        // A stack file in the project directory is what `pulumi up --stack <name>` reads.
        assert.deepEqual(applyCommands("Pulumi.dev.yaml", join(ROOT, "Pulumi.dev.yaml")), { deploy: "pulumi up --stack dev" });
    });

    test("a missing stack file is a clear error", () => {
        const r = run("device-revoke", ["--stack", join(work, "Pulumi.nope.yaml"), "--name", "x"]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /Pulumi\.nope\.yaml: cannot read stack file \(ENOENT\)/);
        noStackTrace(r.stderr);
    });
});
