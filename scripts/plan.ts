/**
 * `npm run plan -- --stack <Pulumi.<stack>.yaml> [--json] [--policy-config <file>]`
 *
 * Runs the program under Pulumi mocks (no CLI, credentials or network), evaluates the policy pack
 * on every resource it registers (in process, ./lib/plan-eval: the real analyzer server costs 2.3
 * times as much at 1,000 devices; `policy:check` uses it), and prints the resource tree and the
 * policy report (or JSON).
 * Exit 0: no mandatory violation; 1: mandatory violation(s); 2: invalid input. DESIGN.md §5.
 */
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { formatProblems } from "../components/config";
import { StackFileError, readStackFile } from "../components/stack-file";
import { GET_DEVICE_TOKEN } from "../components/tailnet";
import { POLICIES } from "../policies/all";
import { exitWithUsageIfAsked, fromUserCwd } from "./lib/cli";
import { runProgramUnderMocks, type RecordedResource } from "./lib/mock-program";
import { evaluatePolicies } from "./lib/plan-eval";
import { EXIT, PolicyInputError, resourceRefsToUrns, runCli, formatPolicyReport, graphFromMockRun, hasMandatory, loadPolicyConfig, violationsJson } from "./lib/policy-eval";

const USAGE = `usage: npm run plan -- --stack <Pulumi.<stack>.yaml> [--json] [--policy-config <file.json>]
  --stack <file>          the stack file to plan (paths are relative to where you ran the command)
  --json                  print { resources, violations } as JSON instead of the tree and report
  --policy-config <file>  policy configuration (enforcement levels, rule settings) as JSON
Exit codes: 0 no mandatory violation, 1 mandatory violation(s), 2 invalid input.`;

/** Tailscale address `plan` answers a server host-name lookup with (no tailnet is reachable offline). */
export const PLACEHOLDER_TAILSCALE_ADDRESS = "100.64.0.1";

/** Invokes the program may make, answered offline with placeholders. */
export const OFFLINE_CALLS = {
    [GET_DEVICE_TOKEN]: (inputs: Record<string, any>) => ({ id: "plan-placeholder", hostname: inputs.hostname, name: inputs.hostname, addresses: [PLACEHOLDER_TAILSCALE_ADDRESS], tags: [] }),
};

/** `Pulumi.prod.yaml` -> `prod`; the stack name appears in every URN. */
export function stackNameOf(path: string): string {
    const m = /^Pulumi\.(.+)\.ya?ml$/.exec(basename(path));
    return m ? m[1] : "plan";
}

function resourceTree(resources: readonly RecordedResource[]): string {
    const known = new Set(resources.map((r) => r.urn));
    const children = new Map<string, RecordedResource[]>();
    const roots: RecordedResource[] = [];
    for (const r of resources) {
        if (r.parent && known.has(r.parent)) children.set(r.parent, [...(children.get(r.parent) ?? []), r]);
        else roots.push(r);
    }
    const lines = [`Resources (${resources.length}):`];
    const stack: [RecordedResource, number][] = roots.map((r) => [r, 1] as [RecordedResource, number]).reverse();
    while (stack.length) {
        const [r, depth] = stack.pop()!;
        const secrets = r.secretInputs.length ? `  (secret: ${r.secretInputs.join(", ")})` : "";
        lines.push(`${"  ".repeat(depth)}${r.name}  ${r.type}${secrets}`);
        for (const c of [...(children.get(r.urn) ?? [])].reverse()) stack.push([c, depth + 1]);
    }
    return lines.join("\n");
}

class UsageError extends PolicyInputError {}

async function main(argv: string[]): Promise<number> {
    exitWithUsageIfAsked(argv, USAGE);
    let values;
    try {
        ({ values } = parseArgs({ args: argv, options: { stack: { type: "string" }, json: { type: "boolean", default: false }, "policy-config": { type: "string" } }, strict: true, allowPositionals: false }));
    } catch (e) {
        throw new UsageError(`${(e as Error).message}\n${USAGE}`);
    }
    if (!values.stack) throw new UsageError(`--stack is required\n${USAGE}`);
    const resolved = loadPolicyConfig(POLICIES, values["policy-config"] === undefined ? undefined : fromUserCwd(values["policy-config"]));
    const file = readStackFile(fromUserCwd(values.stack));
    const run = await runProgramUnderMocks(file, { stack: stackNameOf(values.stack), calls: OFFLINE_CALLS });
    if (!run.ok) {
        process.stderr.write(`${values.stack}: ${formatProblems(run.problems)}\n`);
        return EXIT.invalidInput;
    }
    const violations = await evaluatePolicies(resolved, graphFromMockRun(run.resources));
    if (values.json) {
        const resources = run.resources.map((r) => ({ urn: r.urn, type: r.type, name: r.name, parent: r.parent ?? null, inputs: resourceRefsToUrns(r.maskedInputs) }));
        process.stdout.write(JSON.stringify({ resources, violations: violationsJson(violations) }, null, 2) + "\n");
    } else {
        process.stdout.write(`${resourceTree(run.resources)}\n\n${formatPolicyReport(violations, POLICIES.length)}\n`);
    }
    return hasMandatory(violations) ? EXIT.mandatoryViolation : EXIT.clean;
}

if (require.main === module) {
    // The Pulumi runtime records `new Error().stack` for every promise (leak diagnostics) and
    // every resource (source positions); with tsx's source maps on, that was most of plan's time
    // for large stacks. plan never prints a stack trace: capture none, map none.
    Error.stackTraceLimit = 0;
    process.setSourceMapsEnabled(false);
    // Known input problems carry their own message; anything else is still reported in one line.
    runCli("plan", () => main(process.argv.slice(2)), (e) => e instanceof PolicyInputError || e instanceof StackFileError);
}
