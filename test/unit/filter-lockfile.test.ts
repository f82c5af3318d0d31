/**
 * The deployed filter image installs exactly the locked dependencies: filter/Dockerfile copies
 * filter/package-lock.json into the build context and runs `npm ci`, and the lockfile pins what
 * filter/package.json asks for, each package with its integrity hash.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";

const FILTER = join(__dirname, "..", "..", "filter");
const read = (name: string) => readFileSync(join(FILTER, name), "utf8");

interface LockEntry {
    version?: string;
    integrity?: string;
}

describe("filter image dependencies are locked", () => {
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const lock = JSON.parse(read("package-lock.json")) as { lockfileVersion: number; packages: Record<string, LockEntry & { dependencies?: Record<string, string>; devDependencies?: Record<string, string> }> };

    test("the Dockerfile copies the lockfile and uses npm ci, never npm install", () => {
        const dockerfile = read("Dockerfile");
        assert.match(dockerfile, /^COPY filter\/package\.json filter\/package-lock\.json \.\/$/m);
        assert.match(dockerfile, /^RUN npm ci\b/m);
        assert.doesNotMatch(dockerfile, /npm (install|i)\b/);
        assert.match(read("Dockerfile.dockerignore"), /^!filter\/package-lock\.json$/m);
    });

    test("the lockfile is for this package.json: same direct dependencies, each at its pinned version", () => {
        assert.ok(lock.lockfileVersion >= 2);
        assert.deepEqual(lock.packages[""].dependencies, pkg.dependencies);
        assert.deepEqual(lock.packages[""].devDependencies, pkg.devDependencies);
        for (const [name, version] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
            assert.equal(lock.packages[`node_modules/${name}`]?.version, version, name);
        }
    });

    // `resolved` URLs are left out (as in the root lockfile): npm ci takes the configured registry
    // and refuses any tarball whose hash differs.
    test("every locked package has a version and an integrity hash", () => {
        const entries = Object.entries(lock.packages).filter(([k]) => k !== "");
        assert.ok(entries.length >= 3);
        for (const [k, e] of entries) {
            assert.match(e.version ?? "", /^\d+\.\d+\.\d+/, k);
            assert.match(e.integrity ?? "", /^sha512-/, k);
        }
    });
});
