/**
 * Running the program's own gateway config under the real binary: render the GatewaySpec with
 * the renderer for `gateway.kind` (the very function the Pulumi component uses), write it to the
 * state dir, have the binary validate it, then hand back the command that runs it in the
 * foreground. Renderers are loaded by path so a gateway kind whose renderer has not landed yet
 * fails with a clear message instead of breaking the whole sandbox.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { configWriterScript, CURRENT_LINK, currentFile, gatewaySupervisorScript, generationFile, generationId } from "../../components/gateway/reload";
import type { GatewaySpec } from "../../components/gateway/spec";
import { SESSION_TICKET_KEYS_RELATIVE, SESSION_TICKET_RANDOM_BYTES, sessionTicketKeyFile } from "../../components/gateway/tickets";
import { delay, SandboxError } from "./processes";

export const REPO_ROOT = resolve(__dirname, "../..");

/**
 * One export of a module another part of the project delivers (a renderer, the filter rules),
 * or a SandboxError saying `unavailable` while that module does not exist.
 */
export function loadDelivered<T>(modulePath: string, exportName: string, unavailable: string): T {
    const file = join(REPO_ROOT, modulePath);
    if (!existsSync(`${file}.ts`)) throw new SandboxError(unavailable);
    // A path chosen at run time, so a missing module is a message, not a compile error.
    const exported = (require(file) as Record<string, unknown>)[exportName];
    if (typeof exported !== "function") throw new SandboxError(`${modulePath}.ts does not export a function ${exportName}`);
    return exported as T;
}

interface Flavor {
    readonly module: string;
    /** Where the reloadable master writes its pid. */
    readonly pidFile: (spec: GatewaySpec) => string;
    /** Command that runs the gateway in the foreground as a reloadable master (its pid is the master's). */
    readonly runMaster: (config: string, spec: GatewaySpec) => { argv: string[]; stdoutFile?: string };
    readonly exportName: string;
    readonly configName: string;
    /** Command that validates the config file (exit 0 = valid). */
    readonly check: (config: string, spec: GatewaySpec) => string[];
    /** Command that runs the gateway in the foreground until SIGTERM. */
    readonly run: (config: string, spec: GatewaySpec) => string[];
    /** Adjust the spec to what this binary needs on disk before rendering (files it writes go to the state dir). */
    readonly placeFiles?: (spec: GatewaySpec) => GatewaySpec;
}

// nginx: -p makes relative paths land in the runtime dir, -e keeps even the pre-config error
// log out of /var/log; `daemon off` comes from -g because the rendered config is also the
// container's, where the image's command adds it the same way.
const nginxCheck = (config: string, runtimeDir: string, errorLog: string) => ["nginx", "-t", "-q", "-c", config, "-p", runtimeDir.replace(/\/?$/, "/"), "-e", errorLog];
const nginxRun = (config: string, runtimeDir: string, errorLog: string) => ["nginx", "-c", config, "-p", runtimeDir.replace(/\/?$/, "/"), "-e", errorLog, "-g", "daemon off;"];
const FLAVORS: Record<GatewaySpec["kind"], Flavor> = {
    nginx: {
        module: "components/gateway/nginx",
        exportName: "renderNginxConf",
        configName: "nginx.conf",
        check: (config, spec) => nginxCheck(config, spec.runtimeDir, spec.logging.errorLog),
        run: (config, spec) => nginxRun(config, spec.runtimeDir, spec.logging.errorLog),
        pidFile: (spec) => join(spec.runtimeDir, "nginx.pid"),
        runMaster: (config, spec) => ({ argv: nginxRun(config, spec.runtimeDir, spec.logging.errorLog) }),
    },
    // haproxy (owned with components/gateway/haproxy.ts): the renderer returns haproxy.cfg plus
    // the device maps it reads from its own directory; haproxy cannot write log files, so its
    // stdout (the JSON access log) is appended to the access log file by the shell it runs under
    // (exec: the shell is replaced, signals reach haproxy); stderr stays with the supervisor.
    haproxy: {
        module: "components/gateway/haproxy",
        exportName: "renderHaproxyFiles",
        configName: "haproxy.cfg",
        check: (config) => ["haproxy", "-c", "-q", "-f", config],
        run: (config, spec) => ["sh", "-c", 'exec haproxy -db -f "$1" >>"$2"', "haproxy", config, spec.logging.accessLog],
        pidFile: (spec) => join(spec.runtimeDir, "haproxy.pid"),
        // Master-worker, as in the container; -p records the master's pid for sandbox.json.
        runMaster: (config, spec) => ({ argv: ["haproxy", "-W", "-db", "-f", config, "-p", join(spec.runtimeDir, "haproxy.pid")], stdoutFile: spec.logging.accessLog }),
        placeFiles: combinedServerPem,
    },
};

/**
 * haproxy 2.6 reads a certificate's key from the same file or from `<cert>.key`; the sandbox PKI
 * keeps `server.crt` and `server.key`, so haproxy gets one private (0600) PEM with both.
 */
function combinedServerPem(spec: GatewaySpec): GatewaySpec {
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
    const flavor = FLAVORS[spec.kind];
    const render = loadDelivered<(s: GatewaySpec) => string | Record<string, string>>(flavor.module, flavor.exportName, `${spec.kind} sandbox not available yet: ${flavor.module}.ts (${flavor.exportName}) does not exist`);
    mkdirSync(spec.runtimeDir, { recursive: true, mode: 0o700 });
    const rendered = render(flavor.placeFiles ? flavor.placeFiles(spec) : spec);
    // A renderer returns the config alone, or every file by name (config included) for one directory.
    return typeof rendered === "string" ? { [flavor.configName]: rendered } : rendered;
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
    const flavor = FLAVORS[spec.kind];
    const configFile = join(stateDir, flavor.configName);
    for (const [name, text] of Object.entries(renderFiles(spec))) writeFileSync(join(stateDir, name), text, { mode: 0o600 });
    if (spec.tls.sessionTickets) writeSessionTicketKeys(spec, spec.tls.sessionTickets.keyFile);
    return validated(configFile, flavor.check(configFile, spec), flavor.run(configFile, spec));
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
    const flavor = FLAVORS[spec.kind];
    const generation = writeGatewayGeneration(spec, stateDir);
    const root = gatewayConfigRoot(stateDir);
    const configFile = currentFile(root, flavor.configName);
    const master = flavor.runMaster(configFile, spec);
    const check = flavor.check(configFile, spec);
    const script = gatewaySupervisorScript({ kind: spec.kind, link: join(root, CURRENT_LINK), run: master.argv, check, stdoutFile: master.stdoutFile });
    const pidFile = flavor.pidFile(spec);
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
    return validated(configFile, nginxCheck(configFile, runtimeDir, errorLog), nginxRun(configFile, runtimeDir, errorLog));
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
