/**
 * Signing in as a person does, for the sandbox (each user's cookie and bearer in sandbox.json) and
 * for the sign-in tests: an HTTPS client that keeps cookies (RFC 6265 host-only cookies with paths,
 * Secure honoured), follows redirects one hop at a time and records every hop, presents the device
 * certificate to the gateway only, and resolves the stack's domain to the sandbox gateway on
 * 127.0.0.1 (as the device's DNS would resolve it to the gateway).
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import { delay } from "./processes";

/** What signing in needs to know of a running sandbox (sandbox.json has all of it). */
export interface SignInTarget {
    /** `https://127.0.0.1:<port>`: the gateway. */
    readonly url: string;
    /** The sandbox CA (PEM path): it signed the gateway's and the provider's certificates. */
    readonly ca: string;
    /** The stack's domain: the name the redirect URI and the cookies are for. */
    readonly domain: string;
    readonly devices: Readonly<Record<string, { readonly cert: string; readonly key: string }>>;
    /** The real OpenID provider and the gateway's client there (absent with the stub). */
    readonly idp?: { readonly issuer: string; readonly clientId: string; readonly clientSecret: string; readonly redirectUri: string };
}

export interface StoredCookie {
    readonly name: string;
    readonly value: string;
    readonly path: string;
    readonly secure: boolean;
    readonly httpOnly: boolean;
    /** When the cookie expires (ms since the epoch), from Max-Age or Expires; undefined for a session cookie. */
    readonly expiresAt?: number;
    /** The raw Set-Cookie line it came from. */
    readonly setCookie: string;
}

/** Cookies by host:port (all host-only: the gateway and the IdP set no Domain attribute). */
export class CookieJar {
    private readonly byOrigin = new Map<string, Map<string, StoredCookie>>();

    store(url: URL, setCookies: readonly string[]): void {
        const jar = this.byOrigin.get(url.host) ?? new Map<string, StoredCookie>();
        this.byOrigin.set(url.host, jar);
        for (const line of setCookies) {
            const [pair, ...attrs] = line.split(";").map((p) => p.trim());
            const eq = pair.indexOf("=");
            const name = pair.slice(0, eq);
            const value = pair.slice(eq + 1);
            const attr = (n: string) => attrs.find((a) => a.toLowerCase().startsWith(n.toLowerCase()));
            const path = attr("path=")?.slice(5) || "/";
            const maxAge = attr("max-age=");
            const expires = attr("expires=");
            // Max-Age wins over Expires (RFC 6265 5.3).
            const expiresAt = maxAge !== undefined ? Date.now() + Number(maxAge.slice(8)) * 1000 : expires !== undefined ? Date.parse(expires.slice(8)) : undefined;
            const key = `${name};${path}`;
            if (expiresAt !== undefined && expiresAt <= Date.now()) jar.delete(key);
            else jar.set(key, { name, value, path, secure: attr("secure") !== undefined, httpOnly: attr("httponly") !== undefined, expiresAt, setCookie: line });
        }
    }

    /** The cookies a browser sends to `url`. */
    matching(url: URL): StoredCookie[] {
        const jar = this.byOrigin.get(url.host);
        return [...(jar?.values() ?? [])].filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`));
    }

    /** The Cookie header a browser sends to `url`, or undefined. */
    header(url: URL): string | undefined {
        const matching = this.matching(url);
        return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join("; ") : undefined;
    }

    get(host: string, name: string): StoredCookie | undefined {
        return [...(this.byOrigin.get(host)?.values() ?? [])].find((c) => c.name === name);
    }

    names(host: string): string[] {
        return [...(this.byOrigin.get(host)?.values() ?? [])].map((c) => c.name);
    }
}

export interface Hop {
    readonly method: string;
    readonly url: string;
    readonly status: number;
    readonly location?: string;
    readonly atMs: number;
}

export interface Response {
    readonly status: number;
    readonly headers: IncomingHttpHeaders;
    readonly body: string;
    readonly url: URL;
}

/** A gateway 429 (its sign-in rate limit) is waited out and the request sent again: `attempts` in all, `waitMs` apart. */
export interface RateLimitRetry {
    readonly waitMs: number;
    readonly attempts: number;
}

const REQUEST_TIMEOUT_MS = 15_000;
const MAX_HOPS = 12;

export class SignInClient {
    readonly jar = new CookieJar();
    readonly hops: Hop[] = [];
    private readonly started = performance.now();
    private readonly ca: Buffer;
    private readonly device?: { cert: Buffer; key: Buffer };
    /** https://<domain>:<gateway port>: the origin the redirect URI names. */
    readonly gatewayOrigin: string;

    constructor(
        private readonly target: SignInTarget,
        /** The device whose certificate goes to the gateway; undefined for a client that only talks to the provider. */
        deviceName: string | undefined,
        /** Loopback source address to connect from (127.0.0.2, ...): tells the client apart from the gateway in upstream logs. */
        private readonly localAddress?: string,
        private readonly rateLimitRetry?: RateLimitRetry,
    ) {
        this.ca = readFileSync(target.ca);
        if (deviceName !== undefined) {
            const d = target.devices[deviceName];
            if (!d) throw new Error(`no device ${deviceName} (devices: ${Object.keys(target.devices).join(", ") || "none"})`);
            this.device = { cert: readFileSync(d.cert), key: readFileSync(d.key) };
        }
        this.gatewayOrigin = `https://${target.domain}:${new URL(target.url).port}`;
    }

    /** One request, no redirect following; cookies stored and sent. */
    async send(target: string | URL, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
        const url = new URL(target, this.gatewayOrigin);
        const toGateway = url.hostname === this.target.domain;
        for (let attempt = 1; ; attempt++) {
            const res = await this.sendOnce(url, toGateway, opts);
            if (!(toGateway && res.status === 429 && this.rateLimitRetry && attempt < this.rateLimitRetry.attempts)) return res;
            await delay(this.rateLimitRetry.waitMs);
        }
    }

    private async sendOnce(url: URL, toGateway: boolean, opts: { method?: string; headers?: Record<string, string>; body?: string }): Promise<Response> {
        const headers: Record<string, string> = { Accept: "text/html,application/json", ...opts.headers };
        const cookie = this.jar.header(url);
        if (cookie) headers.Cookie = cookie;
        if (opts.body !== undefined) headers["Content-Length"] = String(Buffer.byteLength(opts.body));
        // The stack's domain resolves to the sandbox gateway, like the device's DNS resolves it to the real one.
        const lookup: LookupFunction = (host, options, done) => {
            if (host !== this.target.domain) throw new Error(`this client only talks to ${this.target.domain} and 127.0.0.1, not ${host}`);
            if (options.all) (done as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: "127.0.0.1", family: 4 }]);
            else done(null, "127.0.0.1", 4);
        };
        const res = await new Promise<Response>((done, fail) => {
            const req = httpsRequest(
                {
                    host: url.hostname,
                    port: url.port,
                    path: `${url.pathname}${url.search}`,
                    method: opts.method ?? "GET",
                    headers,
                    ca: this.ca,
                    servername: toGateway ? this.target.domain : undefined,
                    // The device certificate goes to the gateway only, never to the IdP.
                    ...(toGateway ? this.device : {}),
                    ...(toGateway ? { lookup } : {}),
                    agent: false,
                    timeout: REQUEST_TIMEOUT_MS,
                    ...(this.localAddress ? { localAddress: this.localAddress } : {}),
                },
                (r) => {
                    let body = "";
                    r.setEncoding("utf8");
                    r.on("data", (c: string) => (body += c));
                    r.on("end", () => done({ status: r.statusCode ?? 0, headers: r.headers, body, url }));
                    r.on("error", fail);
                },
            );
            req.on("timeout", () => req.destroy(new Error(`${url} timed out`)));
            req.on("error", fail);
            req.end(opts.body);
        });
        this.jar.store(url, res.headers["set-cookie"] ?? []);
        this.hops.push({ method: opts.method ?? "GET", url: url.href, status: res.status, location: res.headers.location, atMs: Math.round(performance.now() - this.started) });
        return res;
    }

    /** Follow redirects from `first` until a non-redirect, or until `stopAt` matches a Location (returned unfollowed). */
    async follow(first: Response, stopAt?: (location: URL) => boolean): Promise<Response> {
        let res = first;
        for (let i = 0; i < MAX_HOPS && [301, 302, 303, 307].includes(res.status); i++) {
            const next = new URL(res.headers.location!, res.url);
            if (stopAt?.(next)) return res;
            res = await this.send(next);
        }
        return res;
    }

    /** Fill in and submit the provider's login form (the page `res` shows), then follow where it leads. */
    async logIn(res: Response, email: string, password: string, stopAt?: (location: URL) => boolean): Promise<Response> {
        const action = /<form method="post" action="([^"]+)"/.exec(res.body)?.[1];
        if (res.status !== 200 || !action) throw new Error(`expected the provider's login form at ${res.url}, got ${res.status}: ${res.body.slice(0, 300)}`);
        const posted = await this.send(new URL(action.replace(/&#(\d+);/g, (_m, c: string) => String.fromCharCode(Number(c))), res.url), {
            method: "POST",
            headers: { "Content-Type": "application/x-www-form-urlencoded" },
            body: new URLSearchParams({ email, password }).toString(),
        });
        return this.follow(posted, stopAt);
    }

    /** The last answer of the gateway's /oauth2/callback (after any 429 retried), if the sign-in got that far. */
    callbackHop(): Hop | undefined {
        return this.hops.filter((x) => x.url.startsWith(`${this.gatewayOrigin}/oauth2/callback?`)).at(-1);
    }
}

export interface SignInResult {
    readonly client: SignInClient;
    /** The response the sign-in ended with (the gateway's answer to the return path). */
    readonly final: Response;
    /** Milliseconds from the first request to the callback's answer. */
    readonly signInMs: number;
}

/**
 * The seed-000 browser sequence up to the session cookie: a page at the gateway without a session
 * (302 to /oauth2/start), oauth2-proxy's redirect to the provider, the login form, the callback.
 */
export async function signInThroughGateway(target: SignInTarget, device: string, email: string, password: string, returnPath = "/", localAddress?: string, rateLimitRetry?: RateLimitRetry): Promise<SignInResult> {
    const client = new SignInClient(target, device, localAddress, rateLimitRetry);
    const t0 = performance.now();
    const first = await client.send(returnPath);
    const loginPage = await client.follow(first);
    const final = await client.logIn(loginPage, email, password);
    return { client, final, signInMs: Math.round(performance.now() - t0) };
}

interface Discovery {
    readonly issuer: string;
    readonly authorization_endpoint: string;
    readonly token_endpoint: string;
}

/**
 * A CLI's way to a bearer token: authorization code + PKCE at the provider as the gateway's
 * client (its tokens carry that client id as audience), login form, code exchange. Returns the
 * ID token (a JWT the provider signed). Only the provider is contacted, so no device is needed.
 */
export async function idTokenFromProvider(target: SignInTarget, email: string, password: string): Promise<string> {
    const idp = target.idp;
    if (!idp) throw new Error("no OpenID provider: the sandbox runs the stub identity plane");
    const client = new SignInClient(target, undefined);
    const discovery = JSON.parse((await client.send(`${idp.issuer}/.well-known/openid-configuration`)).body) as Discovery;
    const verifier = randomBytes(32).toString("base64url");
    const authorize = new URL(discovery.authorization_endpoint);
    authorize.search = new URLSearchParams({
        response_type: "code",
        client_id: idp.clientId,
        redirect_uri: idp.redirectUri,
        scope: "openid email profile",
        state: randomBytes(12).toString("base64url"),
        nonce: randomBytes(12).toString("base64url"),
        code_challenge: createHash("sha256").update(verifier).digest("base64url"),
        code_challenge_method: "S256",
    }).toString();
    const isCallback = (l: URL) => l.href.startsWith(idp.redirectUri);
    const loginPage = await client.follow(await client.send(authorize), isCallback);
    const last = await client.logIn(loginPage, email, password, isCallback);
    const code = new URL(last.headers.location ?? "", last.url).searchParams.get("code");
    if (!code) throw new Error(`no authorization code; last answer ${last.status} ${last.body.slice(0, 300)}`);
    const token = await client.send(discovery.token_endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Authorization: `Basic ${Buffer.from(`${idp.clientId}:${idp.clientSecret}`).toString("base64")}` },
        body: new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: idp.redirectUri, code_verifier: verifier }).toString(),
    });
    const idToken = (JSON.parse(token.body) as { id_token?: string }).id_token;
    if (token.status !== 200 || !idToken) throw new Error(`token endpoint answered ${token.status}: ${token.body}`);
    return idToken;
}

/** The payload of a JWT (no verification: for reading claims of a token the caller itself obtained). */
export function jwtClaims(jwt: string): Record<string, unknown> {
    return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8")) as Record<string, unknown>;
}

/** A sandbox user as the real identity plane knows them. */
export interface UserToSignIn {
    readonly email: string;
    readonly password: string;
    readonly groups: readonly string[];
}

/** sandbox.json's entry for a user the sandbox signed in (DESIGN.md §4: cookie, bearer, groups; the rest is extra). */
export interface SignedInUser {
    /** The Cookie header value the user's browser sends to the gateway after signing in (no session cookie in it when the sign-in was refused or impossible). */
    readonly cookie: string;
    /** The provider's ID token for the gateway's client: `Authorization: Bearer <it>`. */
    readonly bearer: string;
    readonly groups: readonly string[];
    /** The password at the provider's login page, to sign in again (a browser test, after an expiry). */
    readonly password: string;
    readonly signIn: {
        /** The device whose certificate the sign-in went through; absent when no device is enrolled (the gateway admits nobody). */
        readonly device?: string;
        /** What the gateway's /oauth2/callback answered: 302 signed in; 403 oauth2-proxy refused the user (allowlists). */
        readonly callbackStatus?: number;
        /** When the session cookie expires (identity.cookieExpireHours); absent without a session. */
        readonly cookieExpiresAt?: string;
        /** When the bearer's `exp` passes (the provider's ID token lifetime). */
        readonly bearerExpiresAt: string;
    };
}

/** The browser half of signInUsers: the session cookie, through the gateway with one device's certificate. */
async function sessionThroughGateway(target: SignInTarget, device: string, u: UserToSignIn, sessionCookie: string, rateLimitRetry: RateLimitRetry): Promise<{ cookie: string; callbackStatus: number; cookieExpiresAt?: string }> {
    const { client } = await signInThroughGateway(target, device, u.email, u.password, "/", undefined, rateLimitRetry);
    const callback = client.callbackHop();
    if (!callback || (callback.status !== 302 && callback.status !== 403)) throw new Error(`signing ${u.email} in through the gateway reached no callback that signs in or refuses; hops: ${JSON.stringify(client.hops)}`);
    const gatewayRoot = new URL("/", client.gatewayOrigin);
    const session = client.jar.matching(gatewayRoot).filter((c) => c.name === sessionCookie || c.name.startsWith(`${sessionCookie}_`));
    if (callback.status === 302 && session.length === 0) throw new Error(`the gateway's callback signed ${u.email} in but set no ${sessionCookie} cookie; it set: ${client.jar.names(gatewayRoot.host).join(", ") || "none"}`);
    const expiries = session.map((c) => c.expiresAt).filter((t): t is number => t !== undefined);
    return { cookie: client.jar.header(gatewayRoot) ?? "", callbackStatus: callback.status, ...(expiries.length ? { cookieExpiresAt: new Date(Math.min(...expiries)).toISOString() } : {}) };
}

/**
 * Sign each user in for real, one after another: the browser sequence through the gateway with the
 * device `deviceFor` names (the session cookie), and code + PKCE at the provider (the bearer). A
 * user the gateway refuses is recorded with its callback status and the cookies a browser holds
 * then, so the refusal shows when the entry is used. Any other failure throws: a sandbox whose
 * sign-in does not work must not start.
 */
export async function signInUsers(
    target: SignInTarget,
    users: readonly UserToSignIn[],
    opts: { readonly deviceFor: (email: string) => string | undefined; readonly sessionCookie: string; readonly rateLimitRetry: RateLimitRetry },
): Promise<Record<string, SignedInUser>> {
    const out: Record<string, SignedInUser> = {};
    for (const u of users) {
        const device = opts.deviceFor(u.email);
        const session = device === undefined ? { cookie: "" } : await sessionThroughGateway(target, device, u, opts.sessionCookie, opts.rateLimitRetry);
        const bearer = await idTokenFromProvider(target, u.email, u.password);
        const { cookie, ...signIn } = session;
        out[u.email] = { cookie, bearer, groups: u.groups, password: u.password, signIn: { ...(device === undefined ? {} : { device }), ...signIn, bearerExpiresAt: new Date(Number(jwtClaims(bearer).exp) * 1000).toISOString() } };
    }
    return out;
}
