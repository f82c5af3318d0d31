/**
 * Stub oauth2-proxy for the sandbox: the endpoints nginx's auth_request flow uses, backed by a
 * fixed table of users with random per-run tokens instead of a real IdP. Authorisation mirrors
 * oauth2-proxy: the email must match an allowed domain OR be an allowed email (both lists empty:
 * anyone), AND, when groups are listed, the user must be in one of them. As the real v7.15.6
 * binary does (test/e2e/signin-real.test.ts), a user failing that allowlist gets 401 with the
 * session cookie cleared; 403 only comes from a per-request `?allowed_groups=` narrowing.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { IdentityConfig, StackConfig } from "../../components/config";
import { FORWARDED_IDENTITY_HEADERS } from "../../components/gateway/spec";
import { JsonLinesLog } from "./json-log";
import { listenStub, type StubServer } from "./listen";

/** Session cookie name; the identity component renders oauth2-proxy with this `__Host-` name. */
export const SESSION_COOKIE = "__Host-oauth2_proxy";

export interface SandboxUser {
    readonly email: string;
    readonly groups: readonly string[];
    /** Value of the session cookie that authenticates this user. */
    readonly sessionToken: string;
    /** Token accepted as `Authorization: Bearer <token>`. */
    readonly bearerToken: string;
    /** Real IdP only: lifetime of the user's ID tokens. */
    readonly idTokenTtlSeconds?: number;
}

/** A user added on the command line (`--user email:group,group[:id-token-ttl-seconds]`). */
export interface ExtraUser {
    readonly email: string;
    readonly groups: readonly string[];
    /** Real IdP only: lifetime of the user's ID tokens (short, to watch a token expire). */
    readonly idTokenTtlSeconds?: number;
}

const newToken = () => randomBytes(24).toString("base64url");

/**
 * The sandbox IdP's users: every device owner (with the union of their devices' groups), every
 * `identity.allowedEmails` entry, and the extra users, which replace same-email entries.
 */
export function sandboxUsers(cfg: StackConfig, extra: readonly ExtraUser[] = []): SandboxUser[] {
    const groups = new Map<string, Set<string>>();
    const ttl = new Map(extra.filter((u) => u.idTokenTtlSeconds !== undefined).map((u) => [u.email, u.idTokenTtlSeconds]));
    const add = (email: string, gs: readonly string[]) => {
        const set = groups.get(email) ?? new Set<string>();
        gs.forEach((g) => set.add(g));
        groups.set(email, set);
    };
    cfg.devices.forEach((d) => add(d.owner, d.groups));
    cfg.identity.allowedEmails.forEach((e) => add(e, []));
    extra.forEach((u) => groups.set(u.email, new Set(u.groups)));
    return [...groups].map(([email, gs]) => ({ email, groups: [...gs], sessionToken: newToken(), bearerToken: newToken(), ...(ttl.has(email) ? { idTokenTtlSeconds: ttl.get(email) } : {}) }));
}

/** oauth2-proxy's allowlist decision for an authenticated user (failing it: 401, session cleared). */
export function identityAllows(user: Pick<SandboxUser, "email" | "groups">, identity: Pick<IdentityConfig, "allowedEmailDomains" | "allowedEmails" | "allowedGroups">): boolean {
    const email = user.email.toLowerCase();
    const domain = email.slice(email.lastIndexOf("@") + 1);
    const noEmailRule = identity.allowedEmailDomains.length === 0 && identity.allowedEmails.length === 0;
    const emailOk = noEmailRule || identity.allowedEmailDomains.some((d) => d.toLowerCase() === domain) || identity.allowedEmails.some((e) => e.toLowerCase() === email);
    const groupOk = identity.allowedGroups.length === 0 || identity.allowedGroups.some((g) => user.groups.includes(g));
    return emailOk && groupOk;
}

/** The value of one cookie in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
    for (const part of (header ?? "").split(";")) {
        const eq = part.indexOf("=");
        if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
    return undefined;
}

export interface StubOauth2ProxyOptions {
    readonly users: readonly SandboxUser[];
    readonly identity: Pick<IdentityConfig, "allowedEmailDomains" | "allowedEmails" | "allowedGroups" | "cookieExpireHours">;
    /** JSON-lines file every request is appended to (method, path, headers, status). */
    readonly logFile: string;
    readonly host?: string;
    readonly port?: number;
}

/** One request as the stub oauth2-proxy received it, with the status it answered. */
export interface Oauth2LogEntry {
    readonly time: string;
    readonly method: string;
    readonly path: string;
    readonly headers: IncomingHttpHeaders;
    readonly status: number;
    /** The user the request authenticated as, if any. */
    readonly user?: string;
}

const SIGN_IN_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title></head>
<body><h1>zero-trust-ollama sandbox</h1><p>This sandbox has no identity provider. Authenticate with a
session cookie or bearer token listed under <code>users</code> in sandbox.json.</p>
<p><a href="/oauth2/start">Sign in</a></p></body></html>`;

/** A same-site path to return to after sign-in; anything else (absolute or `//host`) becomes `/`. */
function safeReturnPath(rd: string | null): string {
    return rd && rd.startsWith("/") && !rd.startsWith("//") && !rd.startsWith("/\\") ? rd : "/";
}

export async function startStubOauth2Proxy(opts: StubOauth2ProxyOptions): Promise<StubServer> {
    const log = new JsonLinesLog(opts.logFile);
    const bySession = new Map(opts.users.map((u) => [u.sessionToken, u]));
    const byBearer = new Map(opts.users.map((u) => [u.bearerToken, u]));
    const maxAge = opts.identity.cookieExpireHours * 3600;

    const authenticate = (req: IncomingMessage): SandboxUser | undefined => {
        const auth = req.headers.authorization;
        if (auth?.startsWith("Bearer ")) return byBearer.get(auth.slice("Bearer ".length).trim());
        const session = cookieValue(req.headers.cookie, SESSION_COOKIE);
        return session === undefined ? undefined : bySession.get(session);
    };

    const handle = (req: IncomingMessage, res: ServerResponse) => {
        const url = new URL(req.url ?? "/", "http://stub.invalid");
        const user = authenticate(req);
        const finish = (status: number, headers: Record<string, string | number> = {}, body = "") => {
            log.append({ time: new Date().toISOString(), method: req.method ?? "", path: req.url ?? "", headers: req.headers, status, user: user?.email } satisfies Oauth2LogEntry);
            res.writeHead(status, { "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(body), ...headers });
            res.end(body);
        };
        switch (url.pathname) {
            case "/oauth2/auth": {
                if (!user) return finish(401, { "Content-Type": "text/plain; charset=utf-8" }, "Unauthorized");
                // nginx may narrow the groups per location with ?allowed_groups=a,b (oauth2-proxy feature).
                if (!identityAllows(user, opts.identity)) {
                    return finish(401, { "Content-Type": "text/plain; charset=utf-8", "Set-Cookie": `${SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax` }, "Unauthorized");
                }
                const perRequestGroups = url.searchParams.get("allowed_groups")?.split(",").filter(Boolean) ?? [];
                if (perRequestGroups.length && !perRequestGroups.some((g) => user.groups.includes(g))) return finish(403, { "Content-Type": "text/plain; charset=utf-8" }, "Forbidden");
                return finish(202, {
                    [FORWARDED_IDENTITY_HEADERS.user]: user.email,
                    [FORWARDED_IDENTITY_HEADERS.email]: user.email,
                    [FORWARDED_IDENTITY_HEADERS.groups]: user.groups.join(","),
                    "X-Auth-Request-Preferred-Username": user.email.slice(0, user.email.indexOf("@")),
                });
            }
            case "/oauth2/userinfo":
                if (!user) return finish(401, { "Content-Type": "text/plain; charset=utf-8" }, "Unauthorized");
                return finish(200, { "Content-Type": "application/json" }, JSON.stringify({ user: user.email, email: user.email, groups: user.groups }));
            case "/oauth2/start": {
                // The real proxy sends the browser to the IdP; .invalid can never resolve.
                const state = encodeURIComponent(safeReturnPath(url.searchParams.get("rd")));
                return finish(302, { Location: `https://idp.sandbox.invalid/authorize?response_type=code&client_id=zero-trust-ollama-sandbox&redirect_uri=%2Foauth2%2Fcallback&state=${state}` });
            }
            case "/oauth2/sign_in":
                return finish(200, { "Content-Type": "text/html; charset=utf-8" }, SIGN_IN_PAGE);
            case "/oauth2/callback": {
                // Stands in for the code exchange: a user's session token is accepted as the code.
                const signedIn = bySession.get(url.searchParams.get("code") ?? "");
                if (!signedIn) return finish(403, { "Content-Type": "text/plain; charset=utf-8" }, "Invalid authorization code");
                return finish(302, {
                    "Set-Cookie": `${SESSION_COOKIE}=${signedIn.sessionToken}; Path=/; Max-Age=${maxAge}; Secure; HttpOnly; SameSite=Lax`,
                    Location: safeReturnPath(url.searchParams.get("state")),
                });
            }
            case "/ping":
                // The real proxy's --ping-path (default /ping): 200 without sign-in; the healthcheck asks it.
                return finish(200, { "Content-Type": "text/plain; charset=utf-8" }, "OK");
            case "/oauth2/sign_out":
                return finish(302, { "Set-Cookie": `${SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax`, Location: safeReturnPath(url.searchParams.get("rd")) });
            default:
                return finish(404, { "Content-Type": "text/plain; charset=utf-8" }, "Not Found");
        }
    };

    const server = createServer((req, res) => {
        req.resume();
        req.on("end", () => handle(req, res));
    });
    return listenStub(server, opts.host, opts.port);
}
