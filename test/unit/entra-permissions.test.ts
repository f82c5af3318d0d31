/**
 * The Entra permissions table (components/identity/entra-permissions.ts) against what the program
 * really creates, docs/identity.md against the table, and the order Graph needs (issue 21, item 3).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ENTRA_DEPLOY_PERMISSIONS, permissionRow } from "../../components/identity/entra-permissions";
import { parseStackFile } from "../../components/stack-file";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";

const DOC = readFileSync(join(__dirname, "..", "..", "docs", "identity.md"), "utf8");

async function entraResources(requireMfa: boolean) {
    const file = parseStackFile(
        [
            "config:",
            "  zero-trust-ollama:domain: ollama.corp.example.com",
            "  zero-trust-ollama:identity:",
            "    provider: entra",
            "    tenantId: 00000000-1111-2222-3333-444444444444",
            '    allowedGroups: ["6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"]',
            `    requireMfa: ${requireMfa}`,
        ].join("\n") + "\n",
        "entra.yaml",
    );
    const r = await runProgramUnderMocks(file);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
    return r.resources;
}

describe("Entra deploy permissions", () => {
    test("one row per azuread resource type the program creates (requireMfa on), no row for a type it never creates", async () => {
        const types = [...new Set((await entraResources(true)).filter((r) => r.custom && r.type.startsWith("azuread:index/")).map((r) => r.type))].sort();
        assert.deepEqual(types, ENTRA_DEPLOY_PERMISSIONS.map((p) => p.type).sort());
        const withoutMfa = new Set((await entraResources(false)).map((r) => r.type));
        for (const p of ENTRA_DEPLOY_PERMISSIONS) assert.equal(withoutMfa.has(p.type), p.when !== "identity.requireMfa: true", `${p.type}: "${p.when}"`);
    });

    test("docs/identity.md lists exactly the table's rows", () => {
        const docRows = DOC.split("\n").map((l) => l.trim()).filter((l) => /^\| `[A-Za-z]+` \|/.test(l) && ENTRA_DEPLOY_PERMISSIONS.some((p) => l.startsWith(`| \`${p.type.slice(p.type.lastIndexOf(":") + 1)}\``)));
        assert.deepEqual(docRows, ENTRA_DEPLOY_PERMISSIONS.map(permissionRow));
        assert.match(DOC, /Security Defaults must be off/);
    });

    test("the Conditional Access policy waits for the service principal", async () => {
        const rs = await entraResources(true);
        const ca = rs.find((r) => r.type === "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy")!;
        const principal = rs.find((r) => r.type === "azuread:index/servicePrincipal:ServicePrincipal")!;
        assert.ok(ca.dependencies.includes(principal.urn), `dependencies: ${ca.dependencies.join(", ")}`);
    });
});
