/**
 * docs/SECURITY.md must point at real things. Every file it names exists, every symbol it says a
 * file implements is in that file, every quoted test title is a test in the named file, every
 * policy is a rule of the pack with a test, every attack-matrix case exists, and every control
 * marked "proven" cites at least one test, policy or attack case.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";

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
