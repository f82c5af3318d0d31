/**
 * npm run ollama:routes: print the route fixture (test/fixtures/ollama-routes.json) for the Ollama
 * release the stack pins, read from that release's source. Run it after moving the pin:
 *   npm run -s ollama:routes > test/fixtures/ollama-routes.json
 */
import { TOOLS } from "./lib/tools";
import { fixtureFromModule, goModuleDir } from "./lib/ollama-routes";

if (process.argv.includes("--help") || process.argv.includes("-h")) {
    console.log("usage: npm run -s ollama:routes > test/fixtures/ollama-routes.json   (the pinned Ollama's routes, from its source)");
    process.exit(0);
}
const { module, version } = TOOLS.ollama;
const dir = goModuleDir(module, version);
if (!dir) {
    console.error(`ollama:routes: cannot get the source of ${module}@${version} (is go installed and the module proxy reachable?)`);
    process.exit(1);
}
process.stdout.write(JSON.stringify(fixtureFromModule(module, version, dir), null, 1) + "\n");
