/**
 * `npm run sandbox -- --stack <Pulumi.<stack>.yaml> --state <dir>`: run the stack's data plane
 * locally (DESIGN.md §4) and print `ready <dir>/sandbox.json` once it accepts requests.
 *
 * While it runs, an edit of the stack file (device:add, device:revoke, a gateway limit) is put in
 * force without a restart, as `pulumi up` would: the gateway reloads in place and the sandbox
 * prints `reloaded <generation>`, or `reload refused: ...` on stderr (the old config keeps serving).
 *
 * Exit codes: 0 stopped by SIGINT/SIGTERM/SIGHUP; 1 failed to start or a child died; 2 invalid
 * arguments or stack config (nothing started).
 */
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { formatProblems } from "../components/config";
import { parseStackFile, parseStackFileConfig, readStackFileText, StackFileError } from "../components/stack-file";
import { fromUserCwd } from "./lib/cli";
import { PkiError } from "./sandbox/pki";
import { SandboxError } from "./sandbox/processes";
import { checkOllamaSpec } from "./sandbox/real-ollama";
import { startSandbox, type IdpKind, type RunningSandbox } from "./sandbox/run";
import { toolPath } from "./lib/tools";
import type { ExtraUser } from "./sandbox/stub-oauth2-proxy";

const USAGE = `usage: npm run sandbox -- --stack <Pulumi.<stack>.yaml> --state <dir> [options]
  --stack <file>              stack file to run (validated exactly as the program does)
  --state <dir>               state dir: CA, device certs, logs, sandbox.json (created or reused)
  --token-interval-ms <n>     stub Ollama: pause before each streamed token (default 25)
  --tokens <n>                stub Ollama: tokens per answer (default 8)
  --idp real|stub|auto        identity plane when identity.provider is not none: real = an OpenID
                              provider (oidc-provider) and the pinned oauth2-proxy binary run with
                              the component's rendered flags; stub = the recorder with ready tokens
                              (fault injection); auto (default) = real when the binary is built
  --user <email>:<g1,g2>[:<s>] add (or redefine) an IdP user; repeatable; <s>: its ID tokens'
                              lifetime in seconds (real IdP)
  --ollama <path-or-url>      a real Ollama instead of the stub: the ollama binary (run on a free
                              127.0.0.1 port, own model store in <state>/ollama, tiny model zto-tiny
                              created) or your own Ollama's loopback URL, e.g. http://127.0.0.1:11434
  --watch-pid <pid>           stop (exit 0) once that process is gone, e.g. a test runner that crashed`;

class UsageError extends Error {}


function wholeNumber(flag: string, value: string | undefined, min: number): number | undefined {
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`${flag} must be a whole number >= ${min} (got "${value}")`);
    return Number(value);
}

function extraUser(value: string): ExtraUser {
    const m = /^([^\s@:]+@[^\s@:]+\.[^\s@:]+):([^\s:]*)(?::([1-9]\d{0,5}))?$/.exec(value);
    if (!m) throw new UsageError(`--user must be <email>:<group,group>[:<id-token-seconds>] such as carol@example.com:ml-eng,admins (got "${value}")`);
    return { email: m[1], groups: m[2].split(",").filter(Boolean), ...(m[3] ? { idTokenTtlSeconds: Number(m[3]) } : {}) };
}

function idpKind(value: string | undefined): IdpKind {
    switch (value ?? "auto") {
        case "real":
            return "real";
        case "stub":
            return "stub";
        case "auto":
            return existsSync(toolPath("oauth2Proxy")) ? "real" : "stub";
        default:
            throw new UsageError(`--idp must be real, stub or auto (got "${value}")`);
    }
}

/** A URL stays as given; a path is taken from where the user typed the command. */
function ollamaSpec(value: string): string {
    if (value === "") throw new UsageError("--ollama needs the ollama binary's path or a URL like http://127.0.0.1:11434");
    const spec = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : fromUserCwd(value);
    try {
        checkOllamaSpec(spec);
    } catch (e) {
        throw new UsageError((e as Error).message);
    }
    return spec;
}

const OPTIONS = {
    stack: { type: "string" },
    state: { type: "string" },
    "token-interval-ms": { type: "string" },
    tokens: { type: "string" },
    user: { type: "string", multiple: true },
    idp: { type: "string" },
    ollama: { type: "string" },
    "watch-pid": { type: "string" },
    help: { type: "boolean" },
} as const;

function parseCli(argv: string[]) {
    let values;
    try {
        ({ values } = parseArgs({
            args: argv,
            options: OPTIONS,
            strict: true,
            allowPositionals: false,
        }));
    } catch (e) {
        throw new UsageError((e as Error).message);
    }
    if (values.help) {
        console.log(USAGE);
        process.exit(0);
    }
    if (!values.stack) throw new UsageError("--stack <Pulumi.<stack>.yaml> is required");
    if (!values.state) throw new UsageError("--state <dir> is required");
    return {
        stack: fromUserCwd(values.stack),
        stateDir: fromUserCwd(values.state),
        tokenIntervalMs: wholeNumber("--token-interval-ms", values["token-interval-ms"], 0),
        tokens: wholeNumber("--tokens", values.tokens, 1),
        extraUsers: (values.user ?? []).map(extraUser),
        idp: idpKind(values.idp),
        ollama: values.ollama === undefined ? undefined : ollamaSpec(values.ollama),
        watchPid: wholeNumber("--watch-pid", values["watch-pid"], 1),
    };
}

const WATCH_INTERVAL_MS = 500;
/** How often the stack file is read for an edit: part of the time from an edit to the reload. */
const STACK_POLL_MS = 200;

/**
 * Put every edit of the stack file in force (see the header); an edit that fails validation
 * changes nothing. Edits are told apart by content, not mtime: two writes within one kernel
 * clock tick keep the same mtime, and a missed edit would leave a revoked device in force.
 * `loadedText` is what the running config was read from, so an edit made while the sandbox
 * was starting is picked up too.
 */
function reloadOnEdit(stack: string, loadedText: string, sandbox: RunningSandbox): void {
    let seen = loadedText;
    const check = () => {
        let text: string;
        try {
            text = readFileSync(stack, "utf8");
        } catch {
            return; // mid-replace by an editor: the next poll sees the new file
        }
        // Empty is a truncate caught before its write (no stack file is empty); the write follows.
        if (text === seen || text === "") return;
        seen = text;
        try {
            const parsed = parseStackFileConfig(parseStackFile(text, stack));
            if (!parsed.ok) {
                console.error(`reload refused, the running config stays in force: ${stack}: ${formatProblems(parsed.problems)}`);
                return;
            }
            console.log(`reloaded ${sandbox.reload(parsed.config)}`);
        } catch (e) {
            if (!(e instanceof StackFileError || e instanceof SandboxError || e instanceof PkiError)) throw e;
            console.error(`reload refused, the running config stays in force: ${e.message}`);
        }
    };
    setInterval(check, STACK_POLL_MS).unref();
    check();
}

/** Call `gone` once process `pid` no longer exists (checked by signal 0, which sends nothing). */
function watchProcess(pid: number, gone: () => void): void {
    const timer = setInterval(() => {
        try {
            process.kill(pid, 0);
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "ESRCH") return;
            clearInterval(timer);
            console.error(`sandbox stopping: process ${pid} (--watch-pid) has exited`);
            gone();
        }
    }, WATCH_INTERVAL_MS);
    timer.unref();
}

async function main(): Promise<number> {
    let args;
    let cfg;
    let loadedText = "";
    try {
        args = parseCli(process.argv.slice(2));
        loadedText = readStackFileText(args.stack);
        const parsed = parseStackFileConfig(parseStackFile(loadedText, args.stack));
        if (!parsed.ok) {
            console.error(`${args.stack}: ${formatProblems(parsed.problems)}`);
            return 2;
        }
        cfg = parsed.config;
    } catch (e) {
        if (e instanceof UsageError) console.error(`${e.message}\n${USAGE}`);
        else if (e instanceof StackFileError) console.error(e.message);
        else throw e;
        return 2;
    }
    if (cfg.identity.provider === "none" && args.extraUsers.length) console.error("note: --user is ignored because identity.provider is none (devices are the identity)");

    // Handlers go in before anything starts: a signal during start-up must still stop the children.
    let signalled: () => void = () => {};
    const stopRequested = new Promise<void>((done) => (signalled = done));
    // `on`, not `once`: a second Ctrl-C while stopping must not kill us before nginx is down.
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => signalled());
    if (args.watchPid) watchProcess(args.watchPid, signalled);

    let sandbox: RunningSandbox;
    try {
        sandbox = await startSandbox(cfg, args);
    } catch (e) {
        if (e instanceof SandboxError || e instanceof PkiError) {
            console.error(`sandbox failed to start: ${e.message}`);
            return 1;
        }
        throw e;
    }
    console.log(`ready ${sandbox.infoPath}`);
    reloadOnEdit(args.stack, loadedText, sandbox);

    const outcome = await Promise.race([stopRequested.then(() => ({ code: 0, why: undefined })), sandbox.failed.then((why) => ({ code: 1, why }))]);
    if (outcome.why) console.error(`sandbox stopping: ${outcome.why}`);
    await sandbox.stop();
    return outcome.code;
}

main().then(
    (code) => process.exit(code),
    (e: unknown) => {
        // Not an expected failure: still one line, never a stack trace.
        console.error(`sandbox failed: ${e instanceof Error ? e.message : String(e)}`);
        process.exit(1);
    },
);
