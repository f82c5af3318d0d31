/**
 * The endpoint table against the routes the pinned Ollama really registers. The fixture lists
 * them (read from that release's server/routes.go, version recorded); each one is either
 * allowlisted in ENDPOINTS with exactly Ollama's methods or listed in DENIED_ROUTES. A route a
 * future pin adds fails here until someone decides which it is. The fixture itself is checked
 * against the source in the Go module cache (required in CI, where the tools build fetched it).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { DENIED_ROUTES, ENDPOINTS, endpointPathRegex, type Endpoint } from "../../components/gateway/endpoints";
import { fixtureFromModule, goModuleDir, routesFromSource, type OllamaRouteFixture } from "../../scripts/lib/ollama-routes";
import { TOOLS } from "../../scripts/lib/tools";

const FIXTURE: OllamaRouteFixture = JSON.parse(readFileSync(path.join(__dirname, "../fixtures/ollama-routes.json"), "utf8"));

/** A concrete path for a gin pattern, with a realistic value per parameter. */
export function samplePath(pattern: string): string {
    const samples: Record<string, string> = { model: "llama3.2:3b", digest: `sha256:${"0".repeat(64)}`, encodedKey: "c3NoLWVkMjU1MTk" };
    return pattern.replace(/:([A-Za-z]+)/g, (_, name: string) => samples[name] ?? "x");
}
const patternRegex = (pattern: string) => new RegExp(`^${pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[A-Za-z]+/g, "[^/]+")}$`);
const endpointFor = (concrete: string): Endpoint | undefined => ENDPOINTS.find((e) => new RegExp(endpointPathRegex(e)).test(concrete));

function methodsByPath(fixture: OllamaRouteFixture): Map<string, string[]> {
    const by = new Map<string, string[]>();
    for (const r of fixture.routes) by.set(r.path, [...(by.get(r.path) ?? []), r.method].sort());
    return by;
}

test("the fixture is for the release the stack pins and the tests run", () => {
    assert.equal(FIXTURE.version, TOOLS.ollama.version);
    assert.ok(FIXTURE.routes.length >= 30, `only ${FIXTURE.routes.length} routes`);
});

test("every route of the pinned Ollama is allowlisted with the same methods or denied", () => {
    const problems: string[] = [];
    let allowlisted = 0;
    let denied = 0;
    for (const [pattern, methods] of methodsByPath(FIXTURE)) {
        const concrete = samplePath(pattern);
        const e = endpointFor(concrete);
        if (e) {
            const ours = [...e.methods].sort();
            if (JSON.stringify(ours) !== JSON.stringify(methods)) problems.push(`${pattern}: Ollama serves ${methods.join(",")}, the table allows ${ours.join(",")}`);
            else allowlisted += methods.length;
            continue;
        }
        for (const m of methods) {
            if (DENIED_ROUTES.some((d) => d.method === m && patternRegex(pattern).test(d.path))) denied++;
            else problems.push(`${m} ${pattern}: served by Ollama ${FIXTURE.version} but neither in ENDPOINTS nor in DENIED_ROUTES`);
        }
    }
    assert.deepEqual(problems, []);
    assert.equal(allowlisted + denied, FIXTURE.routes.length);
});

test("every allowlisted endpoint and method is a route the pinned Ollama serves", () => {
    const by = methodsByPath(FIXTURE);
    for (const e of ENDPOINTS) {
        const pattern = [...by.keys()].find((p) => new RegExp(endpointPathRegex(e)).test(samplePath(p)));
        assert.ok(pattern, `${e.id} (${e.path}) is not a route of Ollama ${FIXTURE.version}`);
        for (const m of e.methods) assert.ok(by.get(pattern)!.includes(m), `${m} ${e.path} is not served by Ollama ${FIXTURE.version}`);
    }
});

test("a route the table does not mention fails the check", () => {
    const withNew: OllamaRouteFixture = { ...FIXTURE, routes: [...FIXTURE.routes, { method: "POST", path: "/api/experimental/shiny" }] };
    const unknown = [...methodsByPath(withNew)].filter(([p, ms]) => !endpointFor(samplePath(p)) && ms.some((m) => !DENIED_ROUTES.some((d) => d.method === m && patternRegex(p).test(d.path))));
    assert.deepEqual(unknown.map(([p]) => p), ["/api/experimental/shiny"]);
});

test("the route reader takes every r.<METHOD> call and refuses registration styles it cannot read", () => {
    const src = 'func (s *Server) GenerateRoutes(rc *x) {\n\tr.GET("/a", h)\n\tr.POST("/b/:id", m(), h)\n}\nfunc other() { r.GET("/not-here", h) }\n';
    assert.deepEqual(routesFromSource(src), [{ method: "GET", path: "/a" }, { method: "POST", path: "/b/:id" }]);
    assert.throws(() => routesFromSource('func (s *Server) GenerateRoutes() {\n\tg := r.Group("/x")\n}\n'), /r\.Group/);
    assert.throws(() => routesFromSource("package server\n"), /no GenerateRoutes/);
});

test("the fixture equals the routes in the pinned release's source", () => {
    const { module, version } = TOOLS.ollama;
    const dir = goModuleDir(module, version);
    if (!dir) {
        // Developers without Go still get the table check above; CI must read the source.
        assert.notEqual(process.env.CI, "true", `CI: the source of ${module}@${version} is not in the Go module cache (npm run tools:build fetches it)`);
        return;
    }
    assert.deepEqual(fixtureFromModule(module, version, dir), FIXTURE, "regenerate with: npm run -s ollama:routes > test/fixtures/ollama-routes.json");
});
