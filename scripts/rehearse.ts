/**
 * `npm run rehearse -- --stack <Pulumi.<stack>.yaml> [--port <n>] [--name <stack name>] [--matrix] [--keep]`
 *
 * Creates the stack's containers on the local Docker engine (docs/rehearsal.md): the program
 * under plan's mocks, every Docker input mapped or listed as not applicable, local stand-in
 * images, every container healthy. --matrix measures and prints who can reach whom. Everything
 * is removed on exit unless --keep (then until SIGINT/SIGTERM). Exit 0 ok, 1 rehearsal failed,
 * 2 invalid input.
 */
import { parseArgs } from "node:util";
import { parse, stringify } from "yaml";
import { readFileSync } from "node:fs";
import { StackFileError, parseStackFile } from "../components/stack-file";
import { exitWithUsageIfAsked } from "./lib/cli";
import { OFFLINE_CALLS, stackNameOf } from "./plan";
import { formatMatrix, measure } from "./rehearsal/matrix";
import { endRehearsal, rehearse, RehearsalError } from "./rehearsal/run";
import { MappingError } from "./rehearsal/mapping";

const USAGE = "usage: npm run rehearse -- --stack <Pulumi.<stack>.yaml> [--port <n>] [--name <stack name>] [--matrix] [--keep]";

/** The stack file, with gateway.port replaced when --port is given (another process may hold the stack's port). */
export function stackWithPort(file: string, port: string | undefined) {
    const text = readFileSync(file, "utf8");
    if (port === undefined) return parseStackFile(text, file);
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new StackFileError(`--port: "${port}" is not a TCP port`);
    const doc = parse(text);
    const key = "zero-trust-ollama:gateway";
    doc.config[key] = { ...(doc.config?.[key] ?? {}), port: Number(port) };
    return parseStackFile(stringify(doc), `${file} (gateway.port ${port})`);
}

async function main(argv: string[]): Promise<number> {
    exitWithUsageIfAsked(argv, USAGE);
    let values;
    try {
        ({ values } = parseArgs({ args: argv, options: { stack: { type: "string" }, port: { type: "string" }, name: { type: "string" }, matrix: { type: "boolean", default: false }, keep: { type: "boolean", default: false } }, strict: true, allowPositionals: false }));
    } catch (e) {
        process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
        return 2;
    }
    if (!values.stack) {
        process.stderr.write(`--stack is required\n${USAGE}\n`);
        return 2;
    }
    const stackName = values.name ?? `${stackNameOf(values.stack)}-rehearsal`;
    if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(stackName)) {
        process.stderr.write(`--name: "${stackName}" must be lowercase letters, digits and dashes\n`);
        return 2;
    }
    const log = (line: string) => process.stdout.write(`${line}\n`);
    const t0 = Date.now();
    const r = await rehearse(stackWithPort(values.stack, values.port), { stackName, calls: OFFLINE_CALLS, log });
    let stopping = false;
    const stop = async () => {
        if (stopping) return;
        stopping = true;
        await endRehearsal(r);
    };
    try {
        const oneShots = r.deployed.containers.filter((c) => c.plan.runToExit).length;
        log(`rehearse: ${r.deployed.containers.length - oneShots} services healthy and ${oneShots} one-shot container(s) exited 0, at ${r.url} (program ${r.timings.program} s, images ${r.timings.images} s, create ${r.timings.create} s, healthy ${r.timings.healthy} s; total ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        if (values.matrix) {
            const tm = Date.now();
            log(formatMatrix(values.stack, await measure(r.deployed)));
            log(`rehearse: matrix measured in ${((Date.now() - tm) / 1000).toFixed(1)} s`);
        }
        if (values.keep) {
            log("rehearse: kept running; SIGINT or SIGTERM removes it");
            await new Promise<void>((resolve) => {
                process.once("SIGINT", () => resolve());
                process.once("SIGTERM", () => resolve());
            });
        }
    } finally {
        await stop();
    }
    return 0;
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => process.exit(code),
        (e) => {
            const known = e instanceof StackFileError || e instanceof MappingError || e instanceof RehearsalError;
            process.stderr.write(`rehearse: ${known ? e.message : `failed: ${(e as Error).message}`}\n`);
            process.exit(e instanceof StackFileError || e instanceof MappingError ? 2 : 1);
        },
    );
}
