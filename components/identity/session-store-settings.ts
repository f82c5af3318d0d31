/**
 * oauth2-proxy's Redis session store as plain data: the redis.conf both the container and the
 * sandbox run, and the address oauth2-proxy reaches it at. Pure, so the unit tests pin every line.
 *
 * Why a store at all: an Entra session (ID, access and refresh token, the groups claim twice) is
 * larger than one 4 KB cookie, so oauth2-proxy splits it over `__Host-oauth2_proxy_0`, `_1`, ...;
 * nginx's auth_request passes only the first Set-Cookie of a refresh, so a split session no longer
 * decodes after it. With the store the cookie carries only a ticket (id + AES key of the session),
 * and the session itself, encrypted with that key, lives in Redis.
 */

/** Port Redis listens on inside its network. */
export const SESSION_STORE_PORT = 6379;
/** The store's name on its network (an alias), so oauth2-proxy's flags need no container name. */
export const SESSION_STORE_ALIAS = "session-store";
/** Directory (a dedicated volume: the root filesystem is read-only) holding redis.conf. */
export const SESSION_STORE_CONFIG_DIR = "/usr/local/etc/redis";
export const SESSION_STORE_CONFIG_FILE = `${SESSION_STORE_CONFIG_DIR}/redis.conf`;
/** The official image's unprivileged redis user. */
export const SESSION_STORE_USER = "999:999";
/** Memory Redis may use for sessions; the container's limit leaves room above it. */
export const SESSION_STORE_MAXMEMORY_MIB = 64;
/** Characters of the generated password (letters and digits only: it is written into redis.conf unquoted). */
export const SESSION_STORE_PASSWORD_LENGTH = 40;

/** oauth2-proxy's connection URL for the container placement (no credentials: the password goes in env). */
export const CONTAINER_SESSION_STORE_URL = `redis://${SESSION_STORE_ALIAS}:${SESSION_STORE_PORT}`;

export interface SessionStoreConfInput {
    /** The one password every client must present (AUTH); letters and digits, at least 32. */
    readonly password: string;
    /** Address Redis binds: all interfaces in the container (its only network is oauth2-proxy's), 127.0.0.1 in the sandbox. */
    readonly bind: string;
    readonly port: number;
}

/**
 * redis.conf: password required, nothing written to disk (sessions are re-created by signing in,
 * and a dump would hold every session's tokens), a memory cap that evicts the sessions closest to
 * expiry, and the commands that change or dump the server refused.
 */
export function renderSessionStoreConf(input: SessionStoreConfInput): string {
    if (!/^[A-Za-z0-9]{32,}$/.test(input.password)) throw new Error("session store password must be at least 32 letters and digits");
    if (!/^[0-9a-f.:*-]+$/i.test(input.bind)) throw new Error(`session store bind address must be an IP address or "*" (got "${input.bind}")`);
    if (!Number.isInteger(input.port) || input.port < 1 || input.port > 65535) throw new Error(`session store port must be 1-65535 (got ${input.port})`);
    return [
        "# Rendered by zero-trust-ollama: oauth2-proxy's session store. Do not edit: edit the stack and redeploy.",
        `bind ${input.bind}`,
        `port ${input.port}`,
        "protected-mode yes",
        `requirepass ${input.password}`,
        "# Sessions live in memory only: no snapshot, no append-only file.",
        'save ""',
        "appendonly no",
        `maxmemory ${SESSION_STORE_MAXMEMORY_MIB}mb`,
        "maxmemory-policy volatile-ttl",
        "# oauth2-proxy needs GET/SET/DEL/EXPIRE and locks; nothing may reconfigure, replicate or dump the store.",
        ...["CONFIG", "DEBUG", "MODULE", "REPLICAOF", "SLAVEOF", "SYNC", "PSYNC", "MIGRATE", "KEYS", "FLUSHALL", "FLUSHDB", "SHUTDOWN", "BGSAVE", "BGREWRITEAOF", "SAVE"].map((c) => `rename-command ${c} ""`),
        "",
    ].join("\n");
}

/**
 * Docker healthcheck: the store answers and demands the password. `redis-cli PING` without it gets
 * "NOAUTH"; that answer proves both, and the password never enters a command line.
 */
export function sessionStoreHealthcheck(port: number = SESSION_STORE_PORT): string[] {
    return ["CMD-SHELL", `redis-cli -h 127.0.0.1 -p ${port} PING 2>&1 | grep -q NOAUTH`];
}
