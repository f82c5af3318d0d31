/**
 * `npm run plan` and `npm run policy:check` as CI runs them: separate processes, exit codes
 * 0/1/2, JSON output, secrets masked, one-line errors and never a stack trace.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";

const ROOT = join(__dirname, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "policy-cli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function run(script: "plan" | "policy-check", args: string[], nodeArgs: string[] = []): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [...nodeArgs, "--import", "tsx", join(ROOT, "scripts", `${script}.ts`), ...args], { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 28 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function write(name: string, text: string): string {
    const path = join(tmp, name);
    writeFileSync(path, text);
    return path;
}

/** A Node stack frame ("    at fn (file:line:col)") anywhere in the output. */
const STACK_FRAME = /^\s+at .+[:(]/m;

function assertCleanError(r: { code: number | null; stdout: string; stderr: string }, pattern: RegExp): void {
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr + r.stdout, STACK_FRAME);
}

describe("npm run plan", () => {
    test("dev stack: resource tree and a clean report, exit 0", () => {
        const r = run("plan", ["--stack", "Pulumi.dev.yaml"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^Resources \(\d+\):/m);
        assert.match(r.stdout, /^ {2}ollama {2}zero-trust-ollama:ollama:OllamaRuntime\n {4}ollama-image {2}docker:index\/remoteImage:RemoteImage/m);
        assert.match(r.stdout, /Summary: 0 mandatory, \d+ advisory violation\(s\)\./);
    });

    test("prod stack --json: the documented shape, stack name from the file, secrets shown as [secret]", () => {
        const r = run("plan", ["--stack", "Pulumi.prod.yaml", "--json"]);
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout) as { resources: Record<string, unknown>[]; violations: { policy: string; enforcementLevel: string; urn: string }[] };
        // requireMfa: the Security Defaults preflight is the one advisory (the plan cannot read the tenant).
        assert.deepEqual(out.violations.map((v) => [v.policy, v.enforcementLevel, v.urn.slice(v.urn.lastIndexOf("::") + 2)]), [["entra-require-security-defaults-off", "advisory", "entra-require-mfa"]]);
        for (const res of out.resources) assert.deepEqual(Object.keys(res).sort(), ["inputs", "name", "parent", "type", "urn"]);
        const cert = out.resources.find((x) => x.name === "pki-server-cert") as { urn: string; parent: string; inputs: Record<string, unknown> };
        assert.match(cert.urn, /^urn:pulumi:prod::zero-trust-ollama::/);
        assert.match(cert.parent, /zero-trust-ollama:pki:Pki::pki$/);
        assert.equal(cert.inputs.caPrivateKeyPem, "[secret]");
        // The mocked private keys are PEM blocks; none may appear anywhere in the output.
        assert.doesNotMatch(r.stdout, /BEGIN PRIVATE KEY/);
    });

    test("a mandatory violation (digest pinning made mandatory by policy config) exits 1", () => {
        const cfg = write("pin.json", JSON.stringify({ "image-require-digest-pin": "mandatory" }));
        const r = run("plan", ["--stack", "Pulumi.dev.yaml", "--json", "--policy-config", cfg]);
        assert.equal(r.code, 1, r.stderr);
        const out = JSON.parse(r.stdout) as { violations: { policy: string; enforcementLevel: string; urn: string }[] };
        assert.ok(out.violations.some((v) => v.policy === "image-require-digest-pin" && v.enforcementLevel === "mandatory" && v.urn.endsWith("::ollama-image")));
    });

    test("secure: values need no passphrase", () => {
        const stack = write(
            "Pulumi.oidc.yaml",
            [
                "config:",
                "  zero-trust-ollama:domain: ollama.example.internal",
                "  zero-trust-ollama:identity:",
                "    provider: oidc",
                "    issuerUrl: https://login.example.com/realms/main",
                "    clientId: ollama-gateway",
                "    allowedEmailDomains: [example.com]",
                "  zero-trust-ollama:oidcClientSecret:",
                "    secure: AAABAGFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh",
                "",
            ].join("\n"),
        );
        const r = run("plan", ["--stack", stack, "--json"]);
        assert.ok(r.code === 0 || r.code === 1, r.stderr);
        assert.doesNotMatch(r.stdout, /AAABAGFhYWFh/);
    });

    test("a Tailscale host-name lookup is answered offline with a placeholder address", () => {
        const prod = readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8");
        assert.match(prod, /^ {4}serverAddress: .*\n/m);
        const stack = write("Pulumi.lookup.yaml", prod.replace(/^ {4}serverAddress: .*\n/m, ""));
        const r = run("plan", ["--stack", stack, "--json"]);
        assert.equal(r.code, 0, r.stderr);
        const gateway = (JSON.parse(r.stdout) as { resources: { name: string; inputs: { ports?: { ip: string }[] } }[] }).resources.find((x) => x.name === "gateway-container");
        assert.deepEqual(gateway?.inputs.ports?.map((p) => p.ip), ["100.64.0.1"]);
    });

    test("invalid stack config: exit 2 naming every offending key, nothing else", () => {
        const stack = write("Pulumi.bad.yaml", "config:\n  zero-trust-ollama:domain: NOT A DOMAIN\n  zero-trust-ollama:gateway:\n    port: 0\n    colour: blue\n");
        const r = run("plan", ["--stack", stack]);
        assertCleanError(r, /zero-trust-ollama:domain/);
        assert.match(r.stderr, /zero-trust-ollama:gateway\.port/);
        assert.match(r.stderr, /zero-trust-ollama:gateway\.colour: unknown key/);
        assert.equal(r.stdout, "");
    });

    test("bad invocations and unreadable files: exit 2 with a one-line reason", () => {
        assertCleanError(run("plan", []), /--stack is required/);
        assertCleanError(run("plan", ["--stack", "Pulumi.dev.yaml", "--nope"]), /Unknown option '--nope'/);
        assertCleanError(run("plan", ["--stack", join(tmp, "missing.yaml")]), /cannot read stack file \(ENOENT\)/);
        assertCleanError(run("plan", ["--stack", write("Pulumi.yamlbad.yaml", "config: [unclosed")]), /not valid YAML/);
        assertCleanError(run("plan", ["--stack", "Pulumi.dev.yaml", "--policy-config", write("cfg.json", '{"tls-require-strong-keys": {"minRsaBits": 512}}')]), /tls-require-strong-keys\.minRsaBits: must be >= 2048/);
    });

    test("an unhandled rejection anywhere in the process is one line, exit 2", () => {
        // Rejects once the tool has installed its handlers (nothing else in the process listens).
        const preload = write("late-rejection.cjs", 'const t = setInterval(() => { if (process.listenerCount("unhandledRejection") > 0) { clearInterval(t); Promise.reject(new Error("late boom")); } }, 1);\n');
        assertCleanError(run("plan", ["--stack", "Pulumi.dev.yaml"], ["--require", preload]), /^plan: failed: late boom$/m);
        assertCleanError(run("policy-check", ["test/fixtures/stack-export-clean.json"], ["--require", preload]), /^policy:check: failed: late boom$/m);
    });

    test("an unexpected failure inside a policy is still one line, exit 2", () => {
        const cfg = write("regex.json", JSON.stringify({ "random-require-cookie-secret-length": { namePattern: "(" } }));
        assertCleanError(run("plan", ["--stack", "Pulumi.prod.yaml", "--policy-config", cfg]), /policy random-require-cookie-secret-length failed on .*Invalid regular expression/);
    });
});

describe("npm run policy:check", () => {
    test("the hand-written export with violations: exit 1, every planted violation found", () => {
        const r = run("policy-check", ["test/fixtures/stack-export-violations.json", "--json"]);
        assert.equal(r.code, 1, r.stderr);
        const { violations } = JSON.parse(r.stdout) as { violations: { policy: string; enforcementLevel: string; urn: string | null; message: string }[] };
        const fired = new Set(violations.filter((v) => v.enforcementLevel === "mandatory").map((v) => v.policy));
        assert.deepEqual(
            [...fired].sort(),
            ["container-disallow-dangerous-capabilities", "container-disallow-docker-socket", "entra-disallow-implicit-grant", "gateway-require-single-ingress", "ollama-disallow-host-ports", "ollama-require-internal-network", "ollama-restrict-network-peers", "tls-require-strong-keys"],
        );
        assert.ok(violations.every((v) => typeof v.urn === "string" && v.urn.startsWith("urn:pulumi:prod::")));
    });

    test("the same stack with the invariants kept: exit 0, human report", () => {
        const r = run("policy-check", ["test/fixtures/stack-export-clean.json"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /stack-export-clean\.json: 14 resources/);
        assert.match(r.stdout, /Summary: 0 mandatory, 1 advisory/);
    });

    test("malformed input: exit 2 with a clear message, never a stack trace", () => {
        assertCleanError(run("policy-check", [write("garbage.json", "{ not json")]), /garbage\.json: stack export is not valid JSON/);
        assertCleanError(run("policy-check", [write("shape.json", JSON.stringify({ version: 3, deployment: { resources: [{ urn: "urn:pulumi:s::p::t::a" }] } }))]), /deployment\.resources\[0\]\.type: must be a resource type token/);
        assertCleanError(run("policy-check", [write("nodeploy.json", "[]")]), /top level must be a JSON object/);
        assertCleanError(run("policy-check", [join(tmp, "absent.json")]), /cannot read stack export \(ENOENT\)/);
        assertCleanError(run("policy-check", []), /expected exactly one stack export file/);
    });

    test("the fixtures are export-shaped: version 3, URNs naming their type, inputs and outputs on custom resources", () => {
        for (const f of ["stack-export-violations.json", "stack-export-clean.json"]) {
            const doc = JSON.parse(readFileSync(join(ROOT, "test/fixtures", f), "utf8"));
            assert.equal(doc.version, 3);
            for (const r of doc.deployment.resources as { urn: string; type: string; custom: boolean; inputs?: object; outputs?: object }[]) {
                assert.match(r.urn, new RegExp(`^urn:pulumi:prod::zero-trust-ollama::(.*\\$)?${r.type.replace(/[$]/g, "\\$&")}::[a-z0-9-]+$`), r.urn);
                if (r.custom && !r.type.startsWith("pulumi:")) assert.ok(r.inputs && r.outputs, r.urn);
            }
        }
    });
});
