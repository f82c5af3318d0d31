/**
 * Before deploying, the program checks on a local Docker host that `ollama.modelsPath` exists as a
 * directory: Docker would otherwise fail on the bind mount half-way through `pulumi up`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadStackConfig } from "../../components/config";
import { modelsPathProblems, statPath } from "../../components/host-preflight";
import { readStackFile } from "../../components/stack-file";

const dir = mkdtempSync(join(tmpdir(), "zto-preflight-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const withModels = (modelsPath: string, extra: Record<string, unknown> = {}) => loadStackConfig({ domain: "x.example", ollama: { modelsPath }, ...extra });

describe("models path preflight", () => {
    test("a missing path on the local Docker host names the key, the path and how to create it", () => {
        const missing = join(dir, "nope");
        const [p, ...rest] = modelsPathProblems(withModels(missing), statPath);
        assert.deepEqual(rest, []);
        assert.equal(p.path, "zero-trust-ollama:ollama.modelsPath");
        assert.match(p.message, new RegExp(`^${missing} does not exist on this Docker host.*encrypted filesystem.*sudo mkdir -p ${missing}`));
    });

    test("a file is not a directory; an existing directory passes", () => {
        const file = join(dir, "file");
        writeFileSync(file, "");
        assert.match(modelsPathProblems(withModels(file), statPath)[0].message, /is not a directory/);
        assert.deepEqual(modelsPathProblems(withModels(dir), statPath), []);
    });

    test("remote Docker hosts and GPU nodes are not this machine: nothing is checked here", () => {
        const looked: string[] = [];
        const stat = (p: string) => (looked.push(p), undefined);
        assert.deepEqual(modelsPathProblems(withModels("/srv/x", { docker: { host: "ssh://ops@gpu-host" } }), stat), []);
        assert.deepEqual(looked, []);
    });

    test("the dev stack's default path is what the check and the README talk about", () => {
        const dev = loadStackConfig(readStackFile("Pulumi.dev.yaml").raw);
        const seen: string[] = [];
        modelsPathProblems(dev, (p) => (seen.push(p), { isDirectory: true }));
        assert.deepEqual(seen, [dev.ollama.modelsPath]);
    });
});
