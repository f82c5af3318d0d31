/**
 * Running the program's own gateway config under the real binary: render the GatewaySpec with
 * the renderer for `gateway.kind` (the very function the Pulumi component uses, from the one
 * table of gateway kinds), write it to the state dir, have the binary validate it with the
 * kind's check, then hand back the command that runs it in the foreground.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { configWriterScript, CURRENT_LINK, currentFile, gatewaySupervisorScript, generationFile, generationId } from "../../components/gateway/reload";
import { GATEWAY_KINDS, type RunPlacement } from "../../components/gateway/kinds";
import type { GatewaySpec } from "../../components/gateway/spec";
import { SESSION_TICKET_KEYS_RELATIVE, SESSION_TICKET_RANDOM_BYTES, sessionTicketKeyFile } from "../../components/gateway/tickets";
import { delay, SandboxError } from "./processes";

export const REPO_ROOT = resolve(__dirname, "../..");

/** nginx and haproxy outside a container: the runtime dir is the prefix, the spec's error log the pre-config log. */
const placement = (spec: GatewaySpec): RunPlacement => ({ errorLog: spec.logging.errorLog, prefix: spec.runtimeDir, pidFile: GATEWAY_KINDS[spec.kind].pidFile(spec.runtimeDir) });

/**
 * The command that runs the gateway master, and where its stdout goes: a binary that writes its
 * access log only to stdout gets it appended to the spec's access log file.
 */
function master(config: string, spec: GatewaySpec): { argv: string[]; stdoutFile?: string } {
    const described = GATEWAY_KINDS[spec.kind];
    return { argv: described.run(config, placement(spec)), stdoutFile: described.accessLogOnStdout ? spec.logging.accessLog : undefined };
}

/**
 * For a binary that loads the server key only beside its certificate: one private (0600) PEM with
 * both (the sandbox PKI keeps `server.crt` and `server.key` apart).
 */
function keyBesideCert(spec: GatewaySpec): GatewaySpec {
    if (!GATEWAY_KINDS[spec.kind].keyBesideCert) return spec;
    const pem = join(spec.runtimeDir, "server.pem");
    writeFileSync(pem, readFileSync(spec.tls.cert, "utf8") + readFileSync(spec.tls.key, "utf8"), { mode: 0o600 });
    return { ...spec, tls: { ...spec.tls, cert: pem, key: pem } };
}

export interface PreparedGateway {
    readonly configFile: string;
    readonly command: string;
    readonly args: readonly string[];
}

/** Every file the gateway config for `spec.kind` consists of, by name (one directory). */
function renderFiles(spec: GatewaySpec): Record<string, string> {
    mkdirSync(spec.runtimeDir, { recursive: true, mode: 0o700 });
    return GATEWAY_KINDS[spec.kind].render(keyBesideCert(spec));
}

/**
 * A new ticket key file of fresh random bytes at `path`, as the container's writer uploads one
 * per generation. Never rewritten: a generation keeps the keys it was loaded with.
 */
function writeSessionTicketKeys(spec: GatewaySpec, path: string): void {
    if (!spec.tls.sessionTickets || existsSync(path)) return;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, sessionTicketKeyFile(spec.kind, randomBytes(SESSION_TICKET_RANDOM_BYTES[spec.kind])), { mode: 0o600, flag: "wx" });
}

/** Render, write and validate the gateway config for `spec.kind` as plain files; nothing is started. */
export function prepareGateway(spec: GatewaySpec, stateDir: string): PreparedGateway {
    const configFile = join(stateDir, GATEWAY_KINDS[spec.kind].configFile);
    for (const [name, text] of Object.entries(renderFiles(spec))) writeFileSync(join(stateDir, name), text, { mode: 0o600 });
    if (spec.tls.sessionTickets) writeSessionTicketKeys(spec, spec.tls.sessionTickets.keyFile);
    const { argv, stdoutFile } = master(configFile, spec);
    // The master alone: its stdout, when that is the access log, goes to the file by the shell it
    // runs under (exec: the shell is replaced, signals reach the binary).
    const run = stdoutFile === undefined ? argv : ["sh", "-c", 'exec "$@" >>"$0"', stdoutFile, ...argv];
    return validated(configFile, GATEWAY_KINDS[spec.kind].check(configFile, placement(spec)), run);
}

/** Where the sandbox keeps its gateway config generations (the container's config volume). */
export const gatewayConfigRoot = (stateDir: string) => join(stateDir, "gateway-config");

/**
 * Render `spec` into a new generation under the state dir and put it in force the way the
 * container's writer does: the files first, then the program's own writer script flips the
 * link. The running supervisor (see prepareReloadableGateway) checks and loads it. Returns its id.
 */
export function writeGatewayGeneration(spec: GatewaySpec, stateDir: string): string {
    const root = gatewayConfigRoot(stateDir);
    const files = renderFiles(spec);
    const id = generationId(files);
    mkdirSync(generationFile(root, id, ""), { recursive: true, mode: 0o700 });
    for (const [name, text] of Object.entries(files)) writeFileSync(generationFile(root, id, name), text, { mode: 0o600 });
    // The spec names the key file through the `current` link; this generation's own copy is written here.
    writeSessionTicketKeys(spec, generationFile(root, id, SESSION_TICKET_KEYS_RELATIVE[spec.kind]));
    try {
        execFileSync("sh", ["-c", configWriterScript(root), "zto-config-writer", id], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
    } catch (e) {
        throw new SandboxError(`the config writer could not put generation ${id} in force: ${String((e as { stderr?: string }).stderr ?? (e as Error).message).trim()}`);
    }
    return id;
}

export interface ReloadableGateway extends PreparedGateway {
    /** The generation in force at start. */
    readonly generation: string;
    /** Where the master writes its pid (the supervisor's own pid is the child's). */
    readonly pidFile: string;
}

/**
 * The first generation, validated, and the command that runs the gateway as the container does:
 * the program's supervisor script around the binary, reloading it in place whenever a later
 * writeGatewayGeneration moves the link to a config that passes the binary's check.
 */
export function prepareReloadableGateway(spec: GatewaySpec, stateDir: string): ReloadableGateway {
    const generation = writeGatewayGeneration(spec, stateDir);
    const root = gatewayConfigRoot(stateDir);
    const configFile = currentFile(root, GATEWAY_KINDS[spec.kind].configFile);
    const { argv, stdoutFile } = master(configFile, spec);
    const check = GATEWAY_KINDS[spec.kind].check(configFile, placement(spec));
    const script = gatewaySupervisorScript({ kind: spec.kind, link: join(root, CURRENT_LINK), run: argv, check, stdoutFile });
    const pidFile = GATEWAY_KINDS[spec.kind].pidFile(spec.runtimeDir);
    // A stale pid file from an earlier run must never be taken for this master's.
    rmSync(pidFile, { force: true });
    return { ...validated(configFile, check, ["sh", "-c", script, "zto-gateway"]), generation, pidFile };
}

/** Run the binary's own config check; the prepared command once it passes. */
function validated(configFile: string, check: string[], run: string[]): PreparedGateway {
    const [checkCmd, ...checkArgs] = check;
    try {
        execFileSync(checkCmd, checkArgs, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
    } catch (e) {
        const err = e as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
        if (err.code === "ENOENT") throw new SandboxError(`${checkCmd} is not installed (apt-get install ${checkCmd})`);
        throw new SandboxError(`${checkCmd} rejected the rendered config ${configFile}:\n${`${err.stderr ?? ""}${err.stdout ?? ""}`.trim()}`);
    }
    const [command, ...args] = run;
    return { configFile, command, args };
}

/** An nginx config rendered elsewhere (a GPU node's enclave proxy): write, validate, prepare. */
export function prepareNginx(conf: string, configFile: string, runtimeDir: string, errorLog: string): PreparedGateway {
    mkdirSync(runtimeDir, { recursive: true, mode: 0o700 });
    writeFileSync(configFile, conf, { mode: 0o600 });
    const at = { errorLog, prefix: runtimeDir };
    return validated(configFile, GATEWAY_KINDS.nginx.check(configFile, at), GATEWAY_KINDS.nginx.run(configFile, at));
}

/** Wait until something accepts TCP connections on host:port, while `alive()` stays true. */
export async function waitForListener(host: string, port: number, alive: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (!alive()) throw new SandboxError("the gateway exited while starting");
        const ok = await new Promise<boolean>((done) => {
            const s = connect({ host, port }, () => {
                s.destroy();
                done(true);
            });
            s.on("error", () => done(false));
        });
        if (ok) return;
        await delay(25);
    }
    throw new SandboxError(`the gateway did not listen on ${host}:${port} within ${timeoutMs} ms`);
}
