/**
 * A misspelled config namespace or key must stop every entry point, naming the key and the
 * closest known spelling: the program (index.ts under mocks), `plan` and `sandbox`, with nothing
 * registered or started. The three forms are the ones an operator hit: `zero-trust-olama:` on
 * identity (sign-in silently off), filter (the filter silently default) and devices (every device gone).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { closestKnown, editDistance, namespaceProblems, parsePulumiConfig, parseStackConfig } from "../../components/config";
import { parseStackFile, parseStackFileConfig } from "../../components/stack-file";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";

const ROOT = join(__dirname, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "zto-namespaces-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const PROD = readFileSync(join(ROOT, "Pulumi.prod.yaml"), "utf8");
const DEV = readFileSync(join(ROOT, "Pulumi.dev.yaml"), "utf8");

/** The stack file with one key's namespace misspelled the way the issue reports. */
function misspelled(text: string, key: string): string {
    const right = `  zero-trust-ollama:${key}:`;
    assert.ok(text.includes(right), `example stack has no ${right}`);
    return text.replace(right, `  zero-trust-olama:${key}:`);
}

const FORMS = [
    { key: "identity", stack: "prod", text: () => misspelled(PROD, "identity") },
    { key: "filter", stack: "prod", text: () => misspelled(PROD, "filter") },
    { key: "devices", stack: "dev", text: () => misspelled(DEV, "devices") },
];

/** The error must name the misspelled key and suggest the right one. */
const namesKey = (key: string) => new RegExp(`zero-trust-olama:${key}: unknown config namespace "zero-trust-olama" \\(did you mean "zero-trust-ollama:${key}"\\?`);

function runScript(script: string, args: string[]) {
    const r = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "scripts", `${script}.ts`), ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000, maxBuffer: 1 << 26 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("a misspelled namespace fails closed everywhere", () => {
    for (const form of FORMS) {
        describe(`zero-trust-olama:${form.key}`, () => {
            const file = join(tmp, `Pulumi.${form.key}-typo.yaml`);
            writeFileSync(file, form.text());

            test("the program under mocks: a RunError naming the key, nothing registered", async () => {
                const stack = parseStackFile(form.text(), file);
                const harness = await runProgramUnderMocks(stack);
                assert.equal(harness.ok, false);
                assert.equal(harness.resources.length, 0);
                await assert.rejects(runProgramUnderMocks(stack, { viaIndex: true }), (e: unknown) => {
                    assert.ok(e instanceof pulumi.RunError, String(e));
                    assert.match((e as Error).message, namesKey(form.key));
                    return true;
                });
            });

            test("npm run plan: exit 2 naming the key, no resource tree", () => {
                const r = runScript("plan", ["--stack", file]);
                assert.equal(r.code, 2, r.stderr);
                assert.match(r.stderr, namesKey(form.key));
                assert.equal(r.stdout, "");
            });

            test("npm run sandbox: exit 2 naming the key, nothing started or created", () => {
                const state = join(tmp, `state-${form.key}`);
                const r = runScript("sandbox", ["--stack", file, "--state", state]);
                assert.equal(r.code, 2, r.stderr);
                assert.match(r.stderr, namesKey(form.key));
                assert.doesNotMatch(r.stdout, /ready/);
                assert.equal(existsSync(state), false, "the sandbox created its state dir for an invalid stack");
            });
        });
    }
});

describe("did you mean", () => {
    test("edit distance counts a swap of neighbours as one edit", () => {
        assert.equal(editDistance("zero-trust-olama", "zero-trust-ollama"), 1);
        assert.equal(editDistance("prot", "port"), 1);
        assert.equal(editDistance("", "abc"), 3);
        assert.equal(editDistance("tailscale", "tailscale"), 0);
        assert.equal(closestKnown("gatway", ["domain", "gateway", "identity"]), "gateway");
        assert.equal(closestKnown("kubernetes", ["docker", "tailscale"]), undefined);
    });

    test("namespaces: providers the program uses and pulumi: pass; anything else is named, with the closest", () => {
        assert.deepEqual(namespaceProblems(["tailscale:tailnet", "docker:host", "azuread:tenantId", "tls:x", "random:y", "pulumi:tags", "noNamespace"]), []);
        const [typo, unknown] = namespaceProblems(["tailscal:apiKey", "aws:region"]);
        assert.equal(typo.path, "tailscal:apiKey");
        assert.match(typo.message, /did you mean "tailscale:apiKey"\?/);
        assert.equal(unknown.path, "aws:region");
        assert.match(unknown.message, /unknown config namespace "aws" \(keys must be zero-trust-ollama:<key> or belong to a provider this program uses: docker, tailscale, azuread, tls, random, pulumi\)/);
    });

    const DEPTHS = [
        { raw: { domain: "x.example", gatway: {} }, path: "zero-trust-ollama:gatway", guess: "gateway" },
        { raw: { domain: "x.example", gateway: { prot: 8443 } }, path: "zero-trust-ollama:gateway.prot", guess: "port" },
        { raw: { domain: "x.example", devices: [{ name: "a", owner: "a@example.com", grups: [] }] }, path: "zero-trust-ollama:devices[0].grups", guess: "groups" },
        { raw: { domain: "x.example", identity: { provider: "none", alowedEmails: [] } }, path: "zero-trust-ollama:identity.alowedEmails", guess: "allowedEmails" },
        {
            raw: { domain: "x.example", ollama: { nodes: [{ name: "n1", dockerHost: "ssh://u@h", models: ["m:1"], tailscaleAddress: "100.64.0.9", modelPath: "/m" }] } },
            path: "zero-trust-ollama:ollama.nodes[0].modelPath",
            guess: "modelsPath",
        },
    ];
    for (const d of DEPTHS) {
        test(`unknown key ${d.path}: did you mean "${d.guess}"`, () => {
            const r = parseStackConfig(d.raw);
            assert.equal(r.ok, false);
            const hit = !r.ok && r.problems.find((p) => p.path === d.path);
            assert.ok(hit, JSON.stringify(r));
            assert.match(hit.message, new RegExp(`^unknown key \\(did you mean "${d.guess}"\\?`));
        });
    }

    test("a key close to nothing gets no guess", () => {
        const r = parseStackConfig({ domain: "x.example", gateway: { colour: "blue" } });
        assert.ok(!r.ok && r.problems.some((p) => p.path === "zero-trust-ollama:gateway.colour" && p.message.startsWith("unknown key (check the spelling")));
    });

    test("the program's config map and a stack file go through the same checks", () => {
        const viaMap = parsePulumiConfig({ "zero-trust-ollama:domain": "x.example", "zero-trust-olama:filter": '{"enabled":false}' }, () => false);
        const viaFile = parseStackFileConfig(parseStackFile("config:\n  zero-trust-ollama:domain: x.example\n  zero-trust-olama:filter:\n    enabled: false\n", "s.yaml"));
        assert.deepEqual(viaFile, viaMap);
        assert.ok(!viaMap.ok && viaMap.problems.length === 1);
    });
});
