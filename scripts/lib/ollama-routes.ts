/**
 * The HTTP routes an Ollama release registers, read from its own source (server/routes.go,
 * GenerateRoutes): every `r.<METHOD>("<path>", ...)` call. Any other way of adding a route there
 * (a group, Any, Handle, NoRoute) is an error, so a new registration style cannot slip past the
 * route check unseen. The source comes from the Go module cache (`go mod download -json`), the
 * same download the tools build uses.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";

export interface OllamaRoute {
    readonly method: string;
    /** gin pattern, e.g. /api/blobs/:digest */
    readonly path: string;
}

export interface OllamaRouteFixture {
    /** Go module version the routes were read from (TOOLS.ollama.version). */
    readonly version: string;
    readonly source: string;
    readonly routes: readonly OllamaRoute[];
}

const ROUTE_CALL = /\br\.(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)\("([^"]+)"/g;
const OTHER_REGISTRATION = /\br\.(Any|Handle|Group|NoRoute|NoMethod|Match|StaticFS|Static|StaticFile)\(/;

/** The routes of GenerateRoutes in a routes.go source text. */
export function routesFromSource(routesGo: string): OllamaRoute[] {
    const start = routesGo.indexOf("func (s *Server) GenerateRoutes(");
    if (start === -1) throw new Error("server/routes.go has no GenerateRoutes function; the route list cannot be read");
    const end = routesGo.indexOf("\nfunc ", start + 1);
    const body = routesGo.slice(start, end === -1 ? undefined : end);
    const other = OTHER_REGISTRATION.exec(body);
    if (other) throw new Error(`GenerateRoutes registers routes with r.${other[1]}(...), which this reader does not understand`);
    return [...body.matchAll(ROUTE_CALL)].map((m) => ({ method: m[1], path: m[2] }));
}

/** Source directory of a Go module version from the module cache (downloading it if needed); undefined without go. */
export function goModuleDir(module: string, version: string): string | undefined {
    try {
        const out = execFileSync("go", ["mod", "download", "-json", `${module}@${version}`], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 });
        const dir = (JSON.parse(out) as { Dir?: string }).Dir;
        return dir && existsSync(dir) ? dir : undefined;
    } catch {
        return undefined;
    }
}

export function fixtureFromModule(module: string, version: string, dir: string): OllamaRouteFixture {
    const routes = routesFromSource(readFileSync(path.join(dir, "server", "routes.go"), "utf8"));
    return { version, source: `${module}@${version} server/routes.go GenerateRoutes`, routes };
}
