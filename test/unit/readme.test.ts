/**
 * The README's first deploy can be done from the README alone: its deploy block has every step
 * a fresh machine needs, in order, with the values the dev stack really uses; and the test
 * section lists the prerequisites the check enforces.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { readStackFile } from "../../components/stack-file";
import { PREREQUISITES } from "../../scripts/prerequisites";

const ROOT = join(__dirname, "..", "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };

function section(heading: string): string {
    const start = README.indexOf(`\n## ${heading}\n`);
    assert.ok(start >= 0, `no "## ${heading}" section`);
    const end = README.indexOf("\n## ", start + 1);
    return README.slice(start, end < 0 ? undefined : end);
}
const bashBlocks = (text: string) => [...text.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]);

describe("README: deploy the dev stack", () => {
    const deploy = section("Deploy the dev stack");
    const [setup, after] = bashBlocks(deploy);

    test("every step a fresh machine needs, in the order they must run", () => {
        const steps = [
            /https:\/\/www\.pulumi\.com\/docs\/install\//,
            /curl -fsSL https:\/\/get\.pulumi\.com \| sh/,
            /^npm ci\b/m,
            /^sudo mkdir -p \/\S+/m,
            /^pulumi login --local$/m,
            /^export PULUMI_CONFIG_PASSPHRASE=/m,
            /^pulumi stack init dev\b/m,
            /^pulumi up --stack dev\b/m,
        ];
        let at = 0;
        for (const step of steps) {
            const m = step.exec(setup.slice(at));
            assert.ok(m, `missing, or out of order: ${step}`);
            at += m.index + m[0].length;
        }
        assert.match(deploy, /Node\.js 20\.10\+/);
        assert.match(deploy, /Docker engine/);
    });

    test("the models directory it creates is the dev stack's ollama.modelsPath", () => {
        const dev = loadStackConfig(readStackFile(join(ROOT, "Pulumi.dev.yaml")).raw);
        assert.equal(/^sudo mkdir -p (\S+)/m.exec(setup)?.[1], dev.ollama.modelsPath);
        assert.equal(dev.docker.host.startsWith("unix://"), true, "the preflight checks the path only on a local Docker host");
    });

    test("it says what needs the network and why", () => {
        for (const need of [/npm ci.*npm registry/s, /provider plugins/, /pulls the pinned Ollama and\s+nginx images/, /prompt\s+filter image/]) assert.match(deploy, need);
    });

    test("the commands after it exist with the flags it uses", () => {
        const calls = [...after.matchAll(/npm run ([\w:]+) -- (.*)/g)];
        assert.ok(calls.length >= 1);
        for (const [, script, args] of calls) {
            assert.ok(pkg.scripts[script], `no npm script ${script}`);
            const file = /scripts\/[\w-]+\.ts/.exec(pkg.scripts[script])![0];
            const source = readFileSync(join(ROOT, file), "utf8");
            for (const flag of args.match(/--[\w-]+/g) ?? []) assert.ok(source.includes(`"${flag.slice(2)}"`) || source.includes(`${flag.slice(2)}:`), `${script} has no ${flag}`);
        }
        const name = /--name (\S+)/.exec(after)?.[1];
        const enrolled = loadStackConfig(readStackFile(join(ROOT, "Pulumi.dev.yaml")).raw).devices.map((d) => d.name);
        assert.ok(enrolled.includes(name!), `${name} is not enrolled in the dev stack (${enrolled.join(", ")})`);
    });
});

describe("README: testing", () => {
    test("the prerequisites are listed next to the test command, as the check knows them", () => {
        const testing = section("Testing");
        assert.match(bashBlocks(testing)[0], /npm ci && npm test/);
        for (const p of PREREQUISITES) {
            const row = testing.split("\n").find((l) => l.startsWith("| ") && l.toLowerCase().includes(p.name === "node" ? "node.js" : p.name.replace("python3-", "")));
            assert.ok(row, `no prerequisite row for ${p.name}`);
            assert.ok(row.includes(p.min.replace(/\.0$/, "").replace(/\.0$/, "")), `${p.name}: the README does not say ${p.min}`);
        }
        assert.match(README.slice(0, README.indexOf("## Deploy")), /npm ci && npm test.*prerequisites/);
    });
});
