/**
 * What every command-line script shares: `--help`, paths relative to where the user typed the
 * command, and stopping on SIGINT/SIGTERM/SIGHUP with everything the script started cleaned up.
 */
import { constants } from "node:os";
import { isAbsolute, resolve as resolvePath } from "node:path";

/**
 * A path argument resolved against the directory the user typed the command in: `npm run`
 * changes to the package root but keeps the original directory in INIT_CWD.
 */
export function fromUserCwd(path: string): string {
    return isAbsolute(path) ? path : resolvePath(process.env.INIT_CWD ?? process.cwd(), path);
}

/** `--help` or `-h` anywhere in argv: print the usage to stdout and exit 0, before any work starts. */
export function exitWithUsageIfAsked(argv: readonly string[], usage: string): void {
    if (!argv.includes("--help") && !argv.includes("-h")) return;
    process.stdout.write(usage.trimEnd() + "\n");
    process.exit(0);
}

export const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Run `cleanup` once on the first SIGINT, SIGTERM or SIGHUP, then exit with 128 + the signal
 * number (130 for Ctrl-C), as a shell reports a command the signal ended. Signals that arrive
 * while cleaning up are ignored, so a second Ctrl-C cannot leave children behind.
 */
export function cleanUpOnSignal(tool: string, cleanup: () => Promise<void> | void): void {
    let stopping = false;
    for (const signal of STOP_SIGNALS) {
        process.on(signal, () => {
            if (stopping) return;
            stopping = true;
            process.stderr.write(`${tool}: ${signal}: stopping what was started\n`);
            Promise.resolve()
                .then(cleanup)
                .catch((e: unknown) => process.stderr.write(`${tool}: cleanup failed: ${e instanceof Error ? e.message : String(e)}\n`))
                .finally(() => process.exit(128 + constants.signals[signal]));
        });
    }
}
