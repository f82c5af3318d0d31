/**
 * docs/SECURITY.md must point at real things. Every file it names exists, every symbol it says a
 * file implements is in that file, every quoted test title is a test in the named file, every
 * policy is a rule of the pack with a test, every attack-matrix case exists, and every control
 * marked "proven" cites at least one test, policy or attack case. Claims a plan can show (health
 * checks, container least privilege, published ports, pinned images) are also checked against the
 * resource graph of every example stack, so a claim cannot stay in the doc once the plan breaks it.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { before, describe, test } from "node:test";
import { isTailscaleAddress } from "../../components/config";
import { ROLE_LABEL } from "../../components/hardening";
import { readStackFile } from "../../components/stack-file";
import { GET_DEVICE_TOKEN } from "../../components/tailnet";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";

const ROOT = resolve(__dirname, "../..");
const DOC = readFileSync(join(ROOT, "docs/SECURITY.md"), "utf8");
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

/** Every file under test/, for "is this policy tested anywhere". */
function testFiles(dir = join(ROOT, "test")): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

interface Row {
    readonly control: string;
    readonly cells: readonly string[];
    readonly status: string;
}

/** Rows of the control tables: `| # | Control | Implemented in | Proven by | Status |`. */
function controlRows(): Row[] {
    return DOC.split("\n")
        .filter((l) => /^\|\s*[A-Z]+-\d+\s*\|/.test(l))
        .map((l) => {
            const cells = l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
            return { control: `${cells[0]} ${cells[1]}`, cells, status: cells[cells.length - 1] };
        });
}

const PATH = /`((?:components|scripts|test|policies|filter|docs|\.github|\.ci)\/[\w./-]+|index\.ts|Pulumi\.[\w.]*ya?ml)`/g;

describe("docs/SECURITY.md points at real code, tests and policies", () => {
    const rows = controlRows();

    test("the table has rows for each of the five principles", () => {
        for (const prefix of ["VE", "LP", "AB", "SC", "MO"]) assert.ok(rows.some((r) => r.cells[0].startsWith(prefix + "-")), `no ${prefix}-n rows`);
    });

    test("every file it names exists", () => {
        const named = [...DOC.matchAll(PATH)].map((m) => m[1]);
        assert.ok(named.length >= 50, `only ${named.length} file references found: is the pattern still matching?`);
        const missing = named.filter((p) => !existsSync(join(ROOT, p)));
        assert.deepEqual([...new Set(missing)], []);
    });

    test("every symbol it attributes to a file is in that file", () => {
        const wrong: string[] = [];
        const attributions = [...DOC.matchAll(/`([\w./-]+\.(?:ts|yml))` \(((?:`[^`]+`(?:, )?)+)\)/g)];
        assert.ok(attributions.length >= 20, `only ${attributions.length} symbol attributions found`);
        for (const m of attributions) {
            const text = read(m[1]);
            for (const sym of m[2].matchAll(/`([^`]+)`/g)) if (!text.includes(sym[1])) wrong.push(`${m[1]}: ${sym[1]}`);
        }
        assert.deepEqual(wrong, []);
    });

    test("every quoted test title is a test or suite in the named file", () => {
        const wrong: string[] = [];
        const titles = [...DOC.matchAll(/`(test\/[\w./-]+\.test\.ts)` › "((?:[^"\\]|\\.)+)"/g)];
        assert.ok(titles.length >= 40, `only ${titles.length} test titles found`);
        for (const m of titles) {
            const title = m[2].replace(/\\(.)/g, "$1");
            if (!read(m[1]).includes(JSON.stringify(title).slice(1, -1))) wrong.push(`${m[1]} › ${title}`);
        }
        assert.deepEqual(wrong, []);
    });

    test("every policy is a rule of the pack and some test exercises it", () => {
        const tests = testFiles().map((f) => readFileSync(f, "utf8"));
        const wrong: string[] = [];
        const policies = [...DOC.matchAll(/policy `([a-z0-9-]+)`/g)];
        assert.ok(policies.length >= 15, `only ${policies.length} policies found`);
        for (const m of policies) {
            if (!existsSync(join(ROOT, "policies/rules", `${m[1]}.ts`))) wrong.push(`${m[1]}: no policies/rules/${m[1]}.ts`);
            else if (!tests.some((t) => t.includes(m[1]))) wrong.push(`${m[1]}: no test mentions it`);
        }
        assert.deepEqual(wrong, []);
    });

    test("every attack-matrix case exists", () => {
        const matrix = read("test/e2e/attack-matrix.ts");
        const wrong: string[] = [];
        const cases = [...DOC.matchAll(/case `([a-z0-9-]+)(\*?)`/g)];
        assert.ok(cases.length >= 15, `only ${cases.length} attack cases found`);
        for (const m of cases) {
            const found = m[2] ? matrix.includes(`id: \`${m[1]}`) || matrix.includes(`id: "${m[1]}`) : matrix.includes(`id: "${m[1]}"`);
            if (!found) wrong.push(m[1] + m[2]);
        }
        assert.deepEqual(wrong, []);
    });

    test("a control marked proven cites a test, a policy or an attack case; others say why not", () => {
        assert.ok(rows.length >= 30, `only ${rows.length} controls`);
        for (const r of rows) {
            assert.match(r.status, /^(proven|partial|not proven)\b/, `${r.control}: status "${r.status}"`);
            const proof = r.cells[3];
            const cites = /› "|policy `|case `/.test(proof);
            if (r.status.startsWith("proven")) assert.ok(cites, `${r.control} is marked proven but cites nothing`);
            else assert.ok(r.status.length > "not proven".length + 3, `${r.control}: say what is missing`);
        }
    });
});

type Graph = readonly RecordedResource[];
const CONTAINER = "docker:index/container:Container";
const containers = (g: Graph) => g.filter((r) => r.type === CONTAINER);
const roleOf = (r: RecordedResource) => ((r.inputs.labels ?? []) as { label: string; value: string }[]).find((l) => l.label === ROLE_LABEL)?.value;

/**
 * Controls whose claim the plan can show, each as a check over one stack's resources returning
 * what breaks it (empty: the claim holds).
 */
const PLAN_CHECKS: Record<string, { claim: RegExp; check: (g: Graph, stack: string) => string[] }> = {
    "MO-5": {
        claim: /Health checks on every container/,
        // One-shot containers (restart "no", attached until they exit) are not services to watch.
        check: (g) => containers(g).filter((c) => !(c.inputs.restart === "no" && c.inputs.attach === true) && !(c.inputs.healthcheck?.tests?.length > 0)).map((c) => `${c.name} has no healthcheck`),
    },
    "LP-7": {
        claim: /every capability dropped, no-new-privileges, read-only root filesystems, not privileged, no host namespaces, no Docker socket/,
        check: (g) =>
            containers(g).flatMap((c) => {
                const i = c.inputs;
                const bad: string[] = [];
                if (!(i.capabilities?.drops ?? []).includes("ALL")) bad.push("capabilities not all dropped");
                if (!(i.securityOpts ?? []).includes("no-new-privileges:true")) bad.push("no no-new-privileges");
                if (i.readOnly !== true) bad.push("root filesystem writable");
                if (i.privileged === true) bad.push("privileged");
                for (const ns of ["networkMode", "pidMode", "ipcMode", "userns"]) if (i[ns] === "host") bad.push(`${ns}: host`);
                for (const m of [...(i.mounts ?? []), ...(i.volumes ?? [])]) if (/docker\.sock/.test(String(m.source ?? m.hostPath ?? ""))) bad.push("mounts the Docker socket");
                return bad.map((b) => `${c.name}: ${b}`);
            }),
    },
    "AB-1": {
        claim: /Ollama has no host port/,
        check: (g) => containers(g).filter((c) => roleOf(c) === "ollama" && (c.inputs.ports?.length ?? 0) > 0).map((c) => `${c.name} publishes ${JSON.stringify(c.inputs.ports)}`),
    },
    "AB-3": {
        claim: /the gateway is the only container that publishes a port, exactly one, on 127\.0\.0\.1 or the Tailscale address, never a wildcard.*a GPU node's enclave proxy publishes one port on the node's Tailscale address/,
        check: (g) =>
            containers(g).flatMap((c) => {
                const ports = (c.inputs.ports ?? []) as { ip?: string }[];
                // A GPU node's enclave proxy runs on the node's own host, reachable on its Tailscale address only.
                const publishes = roleOf(c) === "gateway" || roleOf(c) === "enclave";
                if (!publishes) return ports.length ? [`${c.name} (${roleOf(c)}) publishes a port`] : [];
                if (ports.length !== 1) return [`${c.name} publishes ${ports.length} ports`];
                const ip = ports[0].ip ?? "every address";
                const allowed = roleOf(c) === "gateway" ? ip === "127.0.0.1" || isTailscaleAddress(ip) : isTailscaleAddress(ip);
                return allowed ? [] : [`${c.name} listens on ${ip}`];
            }),
    },
    "AB-12": {
        claim: /images pinned by digest \(mandatory with `requirePinnedImages`, as in the prod example\)/,
        check: (g, stack) =>
            stack !== "Pulumi.prod.yaml" ? [] : g.filter((r) => r.type === "docker:index/remoteImage:RemoteImage" && !/@sha256:[a-f0-9]{64}$/.test(r.inputs.name)).map((r) => `${r.name}: ${r.inputs.name} not pinned`),
    },
};

describe("docs/SECURITY.md claims hold in the plan of every example stack", () => {
    const graphs = new Map<string, Graph>();
    before(async () => {
        const calls = { [GET_DEVICE_TOKEN]: (i: Record<string, any>) => ({ id: "doc", hostname: i.hostname, name: i.hostname, addresses: ["100.64.0.1"], tags: [] }) };
        for (const f of ["Pulumi.dev.yaml", "Pulumi.prod.yaml", "test/fixtures/Pulumi.nodes.yaml"]) {
            const r = await runProgramUnderMocks(readStackFile(join(ROOT, f)), { calls });
            assert.ok(r.ok, `${f}: ${JSON.stringify(!r.ok && r.problems)}`);
            graphs.set(f, r.resources);
        }
    });

    for (const [control, { claim, check }] of Object.entries(PLAN_CHECKS)) {
        test(`${control}: the claim is in the doc and no example stack's plan breaks it`, () => {
            const row = controlRows().find((r) => r.cells[0] === control);
            assert.ok(row, `no ${control} row`);
            assert.match(row.cells[1], claim, `${control}'s claim changed: update its plan check`);
            const broken = [...graphs].flatMap(([stack, g]) => check(g, stack).map((b) => `${stack}: ${b}`));
            assert.deepEqual(broken, []);
            assert.ok([...graphs.values()].every((g) => containers(g).length > 0), "a stack without containers checks nothing");
        });
    }
});
