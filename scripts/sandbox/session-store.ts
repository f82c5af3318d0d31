/**
 * The sandbox's session store (identity.sessionStore redis with `--idp real`): Debian's
 * `redis-server` on a free 127.0.0.1 port, running the redis.conf the container runs
 * (`renderSessionStoreConf`), with a fresh password each run. Only the bind address and port differ.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { renderSessionStoreConf, SESSION_STORE_PASSWORD_LENGTH } from "../../components/identity/session-store-settings";
import { SandboxError, type Supervisor } from "./processes";

/** Debian's package installs it here; the prerequisite check names it when it is missing. */
export const REDIS_SERVER = "redis-server";

export interface RunningSessionStore {
    readonly host: string;
    readonly port: number;
    /** redis://127.0.0.1:<port>, no credentials (oauth2-proxy gets the password in its environment). */
    readonly url: string;
    readonly password: string;
    readonly pid: number;
    /** redis-server's own output. */
    readonly log: string;
}

const BIND_ATTEMPTS = 3;

/** A password of letters and digits, as the stack's RandomPassword makes them. */
function newPassword(): string {
    let out = "";
    while (out.length < SESSION_STORE_PASSWORD_LENGTH) out += randomBytes(48).toString("base64").replace(/[^A-Za-z0-9]/g, "");
    return out.slice(0, SESSION_STORE_PASSWORD_LENGTH);
}

export async function startSessionStore(supervisor: Supervisor, opts: { stateDir: string; logFile: string; freePort: () => Promise<number> }): Promise<RunningSessionStore> {
    const password = newPassword();
    const confFile = join(opts.stateDir, "session-store.conf");
    for (let attempt = 1; ; attempt++) {
        const port = await opts.freePort();
        writeFileSync(confFile, renderSessionStoreConf({ password, bind: "127.0.0.1", port }), { mode: 0o600 });
        try {
            // The working directory is the state dir: with nothing persisted, redis writes nothing there.
            const child = await supervisor.spawn("session-store", REDIS_SERVER, [confFile], { logFile: opts.logFile, cwd: opts.stateDir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, readyLine: /Ready to accept connections/, readyTimeoutMs: 30_000 });
            return { host: "127.0.0.1", port, url: `redis://127.0.0.1:${port}`, password, pid: child.pid, log: opts.logFile };
        } catch (e) {
            const portTaken = e instanceof SandboxError && /Address already in use/.test(e.message);
            if (portTaken && attempt < BIND_ATTEMPTS) continue;
            throw e instanceof SandboxError ? new SandboxError(`the session store (redis-server) did not start with the rendered redis.conf: ${e.message}`) : e;
        }
    }
}
