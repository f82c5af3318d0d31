/**
 * Tests and scripts remove the temporary directories they create: every file that makes one
 * under the system temp dir also removes it (rmSync), or makes it through the e2e harness's
 * tempDir, which removes its directories when the process exits.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";

const ROOT = join(__dirname, "..", "..");

function tsFiles(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

test("every file that creates a temp dir removes it", () => {
    const files = [...tsFiles(join(ROOT, "test")), ...tsFiles(join(ROOT, "scripts"))];
    const creating = files.filter((f) => /mkdtempSync\(join\(tmpdir\(\)/.test(readFileSync(f, "utf8")));
    assert.ok(creating.length >= 10, `only ${creating.length} files create temp dirs: is the pattern still matching?`);
    const leaking = creating.filter((f) => !/\brmSync\(/.test(readFileSync(f, "utf8"))).map((f) => relative(ROOT, f));
    assert.deepEqual(leaking, []);
});
