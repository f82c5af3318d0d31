/**
 * `npm run policy:check -- <stack-export.json> [--json] [--policy-config <file>]`
 *
 * Sends the resources of a `pulumi stack export` document to the policy pack's own analyzer server
 * (./lib/policy-server), offline: resource policies see each resource's inputs, stack policies its
 * outputs (DESIGN.md §5). Encrypted secrets in the
 * export stay "[secret]". Exit 0: no mandatory violation; 1: mandatory violation(s); 2: invalid input.
 */
import { parseArgs } from "node:util";
import { POLICIES } from "../policies/all";
import { cleanUpOnSignal, exitWithUsageIfAsked, fromUserCwd } from "./lib/cli";
import { EXIT, PolicyInputError, formatPolicyReport, graphFromStackExport, hasMandatory, loadPolicyConfig, readJsonFile, runCli, violationsJson } from "./lib/policy-eval";
import { PolicyServerError, analyzeWithPackServer, stopPolicyServers } from "./lib/policy-server";

const USAGE = `usage: npm run policy:check -- <stack-export.json> [--json] [--policy-config <file.json>]
  <stack-export.json>     a \`pulumi stack export\` document (paths are relative to where you ran the command)
  --json                  print { violations } as JSON instead of the report
  --policy-config <file>  policy configuration (enforcement levels, rule settings) as JSON
Exit codes: 0 no mandatory violation, 1 mandatory violation(s), 2 invalid input.`;

async function main(argv: string[]): Promise<number> {
    exitWithUsageIfAsked(argv, USAGE);
    let parsed;
    try {
        parsed = parseArgs({ args: argv, options: { json: { type: "boolean", default: false }, "policy-config": { type: "string" } }, strict: true, allowPositionals: true });
    } catch (e) {
        throw new PolicyInputError(`${(e as Error).message}\n${USAGE}`);
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new PolicyInputError(`expected exactly one stack export file (got ${positionals.length})\n${USAGE}`);
    const resolved = loadPolicyConfig(POLICIES, values["policy-config"] === undefined ? undefined : fromUserCwd(values["policy-config"]));
    const graph = graphFromStackExport(readJsonFile(fromUserCwd(positionals[0]), "stack export"), positionals[0]);
    const violations = await analyzeWithPackServer(resolved, graph);
    if (values.json) process.stdout.write(JSON.stringify({ violations: violationsJson(violations) }, null, 2) + "\n");
    else process.stdout.write(`${positionals[0]}: ${graph.length} resources\n${formatPolicyReport(violations, POLICIES.length)}\n`);
    return hasMandatory(violations) ? EXIT.mandatoryViolation : EXIT.clean;
}

if (require.main === module) {
    cleanUpOnSignal("policy:check", stopPolicyServers);
    runCli("policy:check", () => main(process.argv.slice(2)), (e) => e instanceof PolicyInputError || e instanceof PolicyServerError);
}
