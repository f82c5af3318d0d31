/**
 * One sandbox run (DESIGN.md §4): PKI in the state dir, stub Ollama, stub oauth2-proxy (when the
 * stack has an identity provider), the filter (when enabled) and the real gateway binary running
 * the config the program's renderer produced, then `sandbox.json` describing it all.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { nodePoolSettings, type StackConfig } from "../../components/config";
import { deriveGatewaySpec, type GatewayPlacement, type GatewaySpec, type Upstream } from "../../components/gateway/spec";
import { startFilter, type RunningFilter } from "./filter";
import { gatewayConfigRoot, prepareReloadableGateway, waitForListener, writeGatewayGeneration, type ReloadableGateway } from "./gateway";
import { currentFile } from "../../components/gateway/reload";
import { SESSION_TICKET_KEYS_RELATIVE } from "../../components/gateway/tickets";
import { apiKeyDigest } from "../../components/identity/api-keys";
import { ensureSandboxApiKeys } from "./api-keys";
import { ensureSandboxPki } from "./pki";
import { SandboxError, Supervisor, type ChildHandle } from "./processes";
import { startStubOauth2Proxy, sandboxUsers, SESSION_COOKIE, type ExtraUser, type SandboxUser } from "./stub-oauth2-proxy";
import { startStubOllama } from "./stub-ollama";
import type { RunningRealIdentity } from "./real-identity";
import { startRealOllama, type RealOllama } from "./real-ollama";
import { startStubSyslog } from "./stub-syslog";
import { signInUsers, type SignedInUser } from "./sign-in";
import { startSandboxNodes, type SandboxNode, type SandboxNodePool } from "./nodes";

/** Contents of `<state>/sandbox.json`. The first seven fields are the DESIGN.md §4 contract. */
export interface SandboxInfo {
    /** `https://127.0.0.1:<port>`: the gateway. */
    readonly url: string;
    /** CA certificate (PEM path): trust it for the server, it signed every device cert. */
    readonly ca: string;
    /** CA private key (PEM path), for tests that mint extra certificates. */
    readonly caKey: string;
    /** Every device in config: its client certificate and key, and the cert's fingerprints. */
    readonly devices: Readonly<Record<string, { readonly cert: string; readonly key: string; readonly fingerprintSha1: string; readonly fingerprintSha256: string; /** devices[].apiKey: the device's static API key. */ readonly apiKey?: string }>>;
    /**
     * IdP users (empty when identity.provider is none), each with a session cookie and a bearer
     * token. The stub's are random tokens it honours for the run. With the real IdP the sandbox
     * signed each user in at start (see SignedInUser: the password, which device, what the callback
     * answered, when the cookie and the bearer expire; they are not renewed).
     */
    readonly users: Readonly<Record<string, { readonly cookie: string; readonly bearer: string; readonly groups: readonly string[]; readonly password?: string; readonly signIn?: SignedInUser["signIn"] }>>;
    /** `http://127.0.0.1:<port>`: the stub Ollama (or, with --ollama, the real one), direct (bypassing the gateway). */
    readonly ollama: string;
    /**
     * Stub: JSON lines, one per request it received (see OllamaLogEntry). With `--ollama <binary>`:
     * that server's own log (a `[GIN]` line per request it handled). Absent with `--ollama <url>`:
     * the sandbox cannot see that server's log.
     */
    readonly ollamaLog?: string;
    /** With --ollama: which real Ollama the gateway fronts. */
    readonly ollamaServer?: { readonly kind: RealOllama["kind"]; readonly version: string; readonly pid?: number; readonly modelsDir?: string };
    readonly stateDir: string;
    /** The config domain: the server certificate's DNS SAN (besides localhost, 127.0.0.1, ::1). */
    readonly domain: string;
    /** Process id of the sandbox itself. */
    readonly pid: number;
    /**
     * `pid` is the supervisor (the sandbox's child, as the container's command), `masterPid` the
     * nginx/haproxy master it runs and reloads in place; `generation` is the config in force.
     */
    readonly gateway: { readonly kind: "nginx" | "haproxy"; readonly pid: number; readonly masterPid: number; readonly config: string; readonly generation: string; readonly accessLog: string; readonly errorLog: string };
    /**
     * oauth2-proxy, when identity.provider is not none. `stub`: `log` lists every request it got.
     * `real`: the pinned binary; `log` is its output, `args` its command line, `pid` stops it.
     */
    readonly oauth2Proxy?: { readonly kind: IdpKind; readonly url: string; readonly log: string; readonly cookieName: string; readonly pid?: number; readonly args?: readonly string[] };
    /** With `--idp real` and identity.sessionStore redis: the redis-server holding the sessions (`url` has no credentials). */
    readonly sessionStore?: { readonly url: string; readonly password: string; readonly pid: number; readonly log: string };
    /** With `--idp real`: the OpenID provider and the client oauth2-proxy signs in with (`log`: one JSON line per request). */
    readonly idp?: { readonly issuer: string; readonly clientId: string; readonly clientSecret: string; readonly redirectUri: string; readonly log: string };
    /** The prompt filter, when filter.enabled. */
    readonly filter?: { readonly url: string; readonly rules: string; readonly auditLog: string };
    /** Local stand-in for siem.syslogAddress, when set: every record received, one JSON line each. */
    readonly syslog?: { readonly address: string; readonly log: string };
    /** ollama.nodes: per node its enclave proxy and stub Ollama (the top-level `ollama` then gets nothing). */
    readonly nodes?: Readonly<Record<string, { readonly enclave: string; readonly enclavePid: number; readonly ollama: string; readonly ollamaLog: string; readonly models: readonly string[] }>>;
    /** ollama.nodes: the gateway's own client certificate, the only one the enclaves admit. */
    readonly gatewayClient?: { readonly cert: string; readonly key: string };
}

/** stub: the recorder/fault injector with ready tokens; real: oidc-provider and the pinned oauth2-proxy. */
export type IdpKind = "stub" | "real";

export interface SandboxRunOptions {
    readonly stateDir: string;
    /** Which identity plane runs when identity.provider is not none; default stub. */
    readonly idp?: IdpKind;
    /** Stub Ollama: pause before each streamed token. */
    readonly tokenIntervalMs?: number;
    /** Stub Ollama: tokens per generated answer. */
    readonly tokens?: number;
    /** Extra stub IdP users; they replace same-email users derived from config. */
    readonly extraUsers?: readonly ExtraUser[];
    /** A real Ollama instead of the stub: a binary to run or a loopback URL (see real-ollama.ts). */
    readonly ollama?: string;
}

export interface RunningSandbox {
    readonly info: SandboxInfo;
    readonly infoPath: string;
    /** Resolves with the reason when a child process dies on its own. */
    readonly failed: Promise<string>;
    /** Stop every child and stub; removes sandbox.json (its ports and tokens are dead then). */
    stop(): Promise<void>;
    /** ollama.nodes: the running nodes, whose stub Ollama an in-process caller may stop and start. */
    readonly nodes?: readonly SandboxNode[];
    /**
     * Put an edited stack config in force without a restart, as `pulumi up` does: device
     * certificates for new devices, a new gateway config generation (the running gateway checks
     * and reloads it in place), sandbox.json updated. Returns the generation id. Throws
     * SandboxError, changing nothing, when the edit touches more than devices and gateway limits.
     */
    reload(cfg: StackConfig): string;
}

/** gateway keys whose change needs new processes or ports, not a reload. */
const GATEWAY_KEYS_FIXED = ["kind", "listen", "port", "image"] as const;

/**
 * What an edit changes beyond devices and the gateway's reloadable settings, by top-level key
 * (`gateway.<key>` inside the gateway): the sandbox runs those as started, so it refuses them.
 */
export function keysNeedingRestart(running: StackConfig, edited: StackConfig): string[] {
    const changed: string[] = [];
    for (const key of new Set([...Object.keys(running), ...Object.keys(edited)]) as Set<keyof StackConfig>) {
        if (key === "devices" || key === "gateway") continue;
        if (JSON.stringify(running[key]) !== JSON.stringify(edited[key])) changed.push(key);
    }
    for (const key of GATEWAY_KEYS_FIXED) if (JSON.stringify(running.gateway[key]) !== JSON.stringify(edited.gateway[key])) changed.push(`gateway.${key}`);
    return changed;
}

/** A port nothing listens on right now, for a child that cannot report the port it bound. */
export function freePort(host = "127.0.0.1"): Promise<number> {
    return new Promise((done, fail) => {
        const s = createServer();
        s.once("error", fail);
        s.listen(0, host, () => {
            const { port } = s.address() as { port: number };
            s.close(() => done(port));
        });
    });
}

/** Every model some group may use: what the stub Ollama claims to have. */
function configuredModels(cfg: StackConfig): string[] {
    return [...new Set(Object.values(cfg.filter.modelsByGroup).flat())];
}

const asUpstream = (s: { host: string; port: number }): Upstream => ({ host: s.host, port: s.port });

function writeJsonAtomically(path: string, value: unknown): void {
    writeFileSync(`${path}.tmp`, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
}

const BIND_ATTEMPTS = 3;

/** The master's pid, once its pid file is written (it is, by the time the port listens or shortly after). */
async function masterPidOf(pidFile: string, child: ChildHandle): Promise<number> {
    for (let i = 0; i < 100 && child.running(); i++) {
        const text = existsSync(pidFile) ? readFileSync(pidFile, "utf8").trim() : "";
        if (/^\d+$/.test(text)) return Number(text);
        await new Promise((r) => setTimeout(r, 20));
    }
    throw new SandboxError(`the gateway master wrote no pid to ${pidFile}`);
}

/**
 * Render and start the gateway on a free port. The port is picked before the binary binds it, so
 * another process can take it in between; that one case is retried on a new port.
 */
async function startGateway(supervisor: Supervisor, specFor: (listen: Upstream) => GatewaySpec, stateDir: string): Promise<{ listen: Upstream; gateway: ReloadableGateway; child: ChildHandle; masterPid: number }> {
    for (let attempt = 1; ; attempt++) {
        const listen = { host: "127.0.0.1", port: await freePort() };
        const spec = specFor(listen);
        const gateway = prepareReloadableGateway(spec, stateDir);
        const child = await supervisor.spawn("gateway", gateway.command, gateway.args, { logFile: join(stateDir, "logs", "gateway.out") });
        try {
            await waitForListener(listen.host, listen.port, child.running);
            return { listen, gateway, child, masterPid: await masterPidOf(gateway.pidFile, child) };
        } catch (e) {
            const output = `${child.lastOutput()}\n${existsSync(spec.logging.errorLog) ? readFileSync(spec.logging.errorLog, "utf8") : ""}`;
            const portTaken = /Address already in use|cannot bind socket/.test(output);
            if (portTaken && attempt < BIND_ATTEMPTS) continue;
            throw new SandboxError(`${(e as Error).message}${output.trim() ? `; its output:\n  ${output.trim().split("\n").slice(-10).join("\n  ")}` : ""}`);
        }
    }
}

/** Tries of one sign-in request the gateway's sign-in rate limit (identity.authRateLimitPerMinute) answered 429. */
const SIGN_IN_ATTEMPTS = 5;

/**
 * The real identity plane: every user signed in through the running gateway (cookie) and at the
 * provider (bearer), so sandbox.json holds what DESIGN.md §4 promises. A user signs in with a
 * device they own, else the first device: the session is not bound to a device. The sign-ins come
 * from 127.0.0.1 like any client's and keep to the gateway's sign-in rate: a 429 is waited out.
 */
async function signInSandboxUsers(cfg: StackConfig, target: Parameters<typeof signInUsers>[0], users: Parameters<typeof signInUsers>[1]): Promise<SandboxInfo["users"]> {
    const deviceFor = (email: string) => (cfg.devices.find((d) => d.owner === email) ?? cfg.devices[0])?.name;
    try {
        return await signInUsers(target, users, { deviceFor, sessionCookie: SESSION_COOKIE, rateLimitRetry: { waitMs: Math.ceil(60_000 / cfg.gateway.authRateLimitPerMinute) + 250, attempts: SIGN_IN_ATTEMPTS } });
    } catch (e) {
        throw new SandboxError(`signing the sandbox users in with the real oauth2-proxy failed: ${(e as Error).message}`);
    }
}

export async function startSandbox(cfg: StackConfig, opts: SandboxRunOptions): Promise<RunningSandbox> {
    const stateDir = resolve(opts.stateDir);
    const logs = join(stateDir, "logs");
    mkdirSync(logs, { recursive: true, mode: 0o700 });
    const infoPath = join(stateDir, "sandbox.json");
    rmSync(infoPath, { force: true });
    const pki = ensureSandboxPki(stateDir, cfg);

    let reportFailure: (reason: string) => void = () => {};
    const failed = new Promise<string>((done) => (reportFailure = done));
    // A child that dies while starting surfaces as the start-up error instead.
    let started = false;
    const supervisor = new Supervisor((reason) => started && reportFailure(reason));
    const stubs: { close(): Promise<void> }[] = [];
    const stop = async () => {
        await supervisor.stopAll();
        for (const s of stubs.reverse()) await s.close();
        rmSync(infoPath, { force: true });
    };

    try {
        // Logs describe this run only, so a test reading them sees nothing from an earlier run.
        const logFile = (name: string) => {
            const path = join(logs, name);
            writeFileSync(path, "", { mode: 0o600 });
            return path;
        };
        const accessLog = logFile("gateway-access.log");
        const errorLog = logFile("gateway-error.log");

        let ollama: { host: string; port: number; url: string };
        let ollamaLog: string | undefined;
        let realOllama: RealOllama | undefined;
        if (opts.ollama !== undefined) {
            if (nodePoolSettings(cfg)) throw new SandboxError("--ollama cannot be combined with ollama.nodes (each node runs its own stub Ollama)");
            realOllama = await startRealOllama(supervisor, { spec: opts.ollama, stateDir, freePort });
            ollama = realOllama;
            ollamaLog = realOllama.log;
        } else {
            ollamaLog = logFile("ollama-requests.jsonl");
            const stub = await startStubOllama({ logFile: ollamaLog, tokenIntervalMs: opts.tokenIntervalMs, tokens: opts.tokens, models: configuredModels(cfg) });
            stubs.push(stub);
            ollama = stub;
        }

        let users: SandboxUser[] = [];
        let oauth2: { server: Upstream; log: string } | undefined;
        const realIdp = cfg.identity.provider !== "none" && opts.idp === "real";
        if (cfg.identity.provider !== "none") users = sandboxUsers(cfg, opts.extraUsers);
        if (realIdp) {
            // oauth2-proxy starts after the gateway (its redirect URI names the gateway's port); nginx only needs the address now.
            oauth2 = { server: { host: "127.0.0.1", port: await freePort() }, log: logFile("oauth2-proxy.out") };
        } else if (cfg.identity.provider !== "none") {
            const log = logFile("oauth2-proxy.jsonl");
            const server = await startStubOauth2Proxy({ users, identity: cfg.identity, logFile: log });
            stubs.push(server);
            oauth2 = { server, log };
        }

        // The stack's SIEM is neither reachable from nor meant for a sandbox: the renderers get the
        // same config with syslog pointed at a local stand-in (same protocol) instead.
        let syslog: SandboxInfo["syslog"];
        if (cfg.siem.syslogAddress) {
            const log = logFile("syslog.jsonl");
            const stub = await startStubSyslog(cfg.siem.syslogAddress.startsWith("tcp:") ? "tcp" : "udp", log);
            stubs.push(stub);
            syslog = { address: stub.address, log };
        }
        const withSyslogStub = (c: StackConfig): StackConfig => (syslog ? { ...c, siem: { ...c.siem, syslogAddress: syslog.address } } : c);
        const rendered = withSyslogStub(cfg);

        // ollama.nodes: the gateway's pool router (an internal listener of the gateway's nginx) is
        // "Ollama" for the filter and for the gateway's own hop; it picks a node per request.
        const poolSettings = nodePoolSettings(cfg);
        let pool: SandboxNodePool | undefined;
        if (poolSettings) {
            const router = { host: "127.0.0.1", port: await freePort() };
            pool = await startSandboxNodes(supervisor, cfg, poolSettings, stateDir, pki.ca, { router, tokenIntervalMs: opts.tokenIntervalMs, tokens: opts.tokens, workerUser: process.getuid?.() === 0 ? "root" : undefined, freePort });
            stubs.push(pool);
        }
        const upstreamOllama = pool ? pool.nodePool.router! : asUpstream(ollama);

        let filter: RunningFilter | undefined;
        if (cfg.filter.enabled) filter = await startFilter(supervisor, rendered, stateDir, `http://${upstreamOllama.host}:${upstreamOllama.port}`);

        const placement: Omit<GatewayPlacement, "listen"> = {
            tlsFiles: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert },
            sessionTicketKeys: currentFile(gatewayConfigRoot(stateDir), SESSION_TICKET_KEYS_RELATIVE[cfg.gateway.kind]),
            ollama: upstreamOllama,
            ...(pool ? { nodePool: pool.nodePool } : {}),
            filter: filter && asUpstream(filter),
            oauth2Proxy: oauth2 && asUpstream(oauth2.server),
            runtimeDir: join(stateDir, "run", cfg.gateway.kind),
            accessLog,
            errorLog,
            // As root, nginx would drop workers to "nobody", who cannot enter the private state dir.
            workerUser: process.getuid?.() === 0 ? "root" : undefined,
        };
        // Devices (certificates, API keys) as the gateway sees them, for this config or an edited one.
        const deviceState = (c: StackConfig) => {
            const certs = ensureSandboxPki(stateDir, c).devices;
            const keys = ensureSandboxApiKeys(stateDir, c);
            return {
                facts: Object.fromEntries(Object.entries(certs).map(([name, d]) => [name, { fingerprintSha1: d.identity.sha1, serial: d.identity.serial, apiKeyDigest: keys[name] && apiKeyDigest(keys[name]) }])),
                info: Object.fromEntries(
                    Object.entries(certs).map(([name, d]) => [name, { cert: d.cert, key: d.key, fingerprintSha1: d.identity.sha1, fingerprintSha256: d.identity.sha256, ...(keys[name] ? { apiKey: keys[name] } : {}) }]),
                ) as SandboxInfo["devices"],
            };
        };
        const devices = deviceState(cfg);
        const { listen, gateway, child, masterPid } = await startGateway(supervisor, (l) => deriveGatewaySpec(rendered, devices.facts, { ...placement, listen: l }), stateDir);

        let realIdentity: RunningRealIdentity | undefined;
        const passwords = new Map(users.map((u) => [u.email, randomBytes(18).toString("base64url")]));
        if (realIdp) {
            // Loaded only when used: oidc-provider and its dependencies take seconds to load on a busy machine.
            const { startRealIdentity } = await import("./real-identity");
            const idpUsers = users.map((u) => ({ email: u.email, groups: u.groups, password: passwords.get(u.email)!, idTokenTtlSeconds: u.idTokenTtlSeconds }));
            realIdentity = await startRealIdentity(supervisor, { cfg, stateDir, ca: pki.ca, users: idpUsers, listen: oauth2!.server, gatewayPort: listen.port, idpLog: logFile("idp.jsonl"), oauth2ProxyLog: oauth2!.log, sessionStoreLog: logFile("session-store.out"), freePort });
            stubs.push(realIdentity.provider);
        }
        const url = `https://${listen.host}:${listen.port}`;
        const idp = realIdentity && { issuer: realIdentity.provider.issuer, clientId: realIdentity.clientId, clientSecret: realIdentity.clientSecret, redirectUri: realIdentity.redirectUri, log: join(logs, "idp.jsonl") };
        const userEntries: SandboxInfo["users"] = realIdentity
            ? await signInSandboxUsers(cfg, { url, ca: pki.ca.cert, domain: cfg.domain, devices: devices.info, idp }, users.map((u) => ({ email: u.email, groups: u.groups, password: passwords.get(u.email)! })))
            : Object.fromEntries(users.map((u) => [u.email, { cookie: `${SESSION_COOKIE}=${u.sessionToken}`, bearer: u.bearerToken, groups: u.groups }]));

        const info: SandboxInfo = {
            url,
            ca: pki.ca.cert,
            caKey: pki.ca.key,
            devices: devices.info,
            users: userEntries,
            ollama: ollama.url,
            ...(ollamaLog ? { ollamaLog } : {}),
            ...(realOllama ? { ollamaServer: { kind: realOllama.kind, version: realOllama.version, pid: realOllama.pid, modelsDir: realOllama.modelsDir } } : {}),
            stateDir,
            domain: cfg.domain,
            pid: process.pid,
            gateway: { kind: cfg.gateway.kind, pid: child.pid, masterPid, config: gateway.configFile, generation: gateway.generation, accessLog, errorLog },
            oauth2Proxy: oauth2 && {
                kind: realIdentity ? "real" : "stub",
                url: `http://${oauth2.server.host}:${oauth2.server.port}`,
                log: oauth2.log,
                cookieName: SESSION_COOKIE,
                ...(realIdentity ? { pid: realIdentity.oauth2Proxy.pid, args: realIdentity.args } : {}),
            },
            ...(realIdentity?.sessionStore ? { sessionStore: { url: realIdentity.sessionStore.url, password: realIdentity.sessionStore.password, pid: realIdentity.sessionStore.pid, log: realIdentity.sessionStore.log } } : {}),
            idp,
            filter: filter && { url: `http://${filter.host}:${filter.port}`, rules: filter.rulesFile, auditLog: filter.auditLog },
            syslog,
            ...(pool
                ? {
                      nodes: Object.fromEntries(pool.nodes.map((n) => [n.name, { enclave: n.enclaveUrl, enclavePid: n.enclavePid, ollama: n.ollama, ollamaLog: n.ollamaLog, models: n.models }])),
                      gatewayClient: pool.gatewayClient,
                  }
                : {}),
        };
        writeJsonAtomically(infoPath, info);
        started = true;
        if (!child.running()) reportFailure(`the gateway exited right after it started${child.lastOutput() ? `; its last output:\n  ${child.lastOutput()}` : ""}`);

        let running = cfg;
        let current = info;
        const reload = (edited: StackConfig): string => {
            const fixed = keysNeedingRestart(running, edited);
            if (fixed.length) throw new SandboxError(`the edit changes ${fixed.join(", ")}, which the running sandbox cannot reload; restart it to run them`);
            const next = deviceState(edited);
            const generation = writeGatewayGeneration(deriveGatewaySpec(withSyslogStub(edited), next.facts, { ...placement, listen }), stateDir);
            running = edited;
            current = { ...current, devices: next.info, gateway: { ...current.gateway, generation } };
            writeJsonAtomically(infoPath, current);
            return generation;
        };
        return { info, infoPath, failed, stop, reload, nodes: pool?.nodes };
    } catch (e) {
        await stop();
        throw e;
    }
}
