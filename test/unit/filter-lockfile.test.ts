/**
 * The deployed filter image installs exactly the locked dependencies: filter/Dockerfile copies
 * filter/package-lock.json into the build context and runs `npm ci`, and the lockfile pins what
 * filter/package.json asks for, each package with its integrity hash.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { buildSync } from "esbuild";

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

describe("the filter image's build context holds what its bundle reads", () => {
    test("every repository file esbuild bundles from outside filter/src is copied by the Dockerfile and let in by its .dockerignore", () => {
        const root = join(FILTER, "..");
        const { metafile } = buildSync({ entryPoints: [join(FILTER, "src/main.ts")], absWorkingDir: root, bundle: true, platform: "node", target: "node20", external: ["better-sqlite3"], write: false, metafile: true, logLevel: "error" });
        const read_ = Object.keys(metafile.inputs).filter((f) => !f.startsWith("node_modules/") && !f.startsWith("filter/src/"));
        assert.ok(read_.length > 0, "the bundle reads stack-side modules");
        const copied = [...read("Dockerfile").matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(" "));
        const letIn = read("Dockerfile.dockerignore").split("\n").filter((l) => l.startsWith("!")).map((l) => l.slice(1));
        const covers = (entries: string[], file: string) => entries.some((e) => (e.endsWith("/") ? file.startsWith(e) : file === e));
        for (const file of read_) {
            assert.ok(covers(copied, file), `filter/Dockerfile does not COPY ${file}, which the bundle imports`);
            assert.ok(covers(letIn, file), `filter/Dockerfile.dockerignore does not let in ${file}`);
        }
    });
});
