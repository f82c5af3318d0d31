/**
 * A minimal browser for the sign-in tests: an HTTPS client that keeps cookies (RFC 6265 host-only
 * cookies with paths, Secure honoured), follows redirects one hop at a time and records every hop,
 * presents the device certificate to the gateway only, and resolves the stack's domain to the
 * sandbox gateway on 127.0.0.1 (as the device's DNS would resolve it to the gateway).
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import type { LookupFunction } from "node:net";
import { startSandbox, type Sandbox, type SandboxInfo } from "./harness";

export interface StoredCookie {
    readonly name: string;
    readonly value: string;
    readonly path: string;
    readonly secure: boolean;
    readonly httpOnly: boolean;
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
            const expired = (maxAge !== undefined && Number(maxAge.slice(8)) <= 0) || (expires !== undefined && Date.parse(expires.slice(8)) <= Date.now());
            const key = `${name};${path}`;
            if (expired) jar.delete(key);
            else jar.set(key, { name, value, path, secure: attr("secure") !== undefined, httpOnly: attr("httponly") !== undefined, setCookie: line });
        }
    }

    /** The Cookie header a browser sends to `url`, or undefined. */
    header(url: URL): string | undefined {
        const jar = this.byOrigin.get(url.host);
        const matching = [...(jar?.values() ?? [])].filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`));
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

const REQUEST_TIMEOUT_MS = 15_000;
const MAX_HOPS = 12;

export class SignInClient {
    readonly jar = new CookieJar();
    readonly hops: Hop[] = [];
    private readonly started = performance.now();
    private readonly ca: Buffer;
    private readonly device: { cert: Buffer; key: Buffer };
    /** https://<domain>:<gateway port>: the origin the redirect URI names. */
    readonly gatewayOrigin: string;

    constructor(
        private readonly info: SandboxInfo,
        deviceName: string,
        /** Loopback source address to connect from (127.0.0.2, ...): tells the client apart from the gateway in upstream logs. */
        private readonly localAddress?: string,
    ) {
        const d = info.devices[deviceName];
        this.ca = readFileSync(info.ca);
        this.device = { cert: readFileSync(d.cert), key: readFileSync(d.key) };
        this.gatewayOrigin = `https://${info.domain}:${new URL(info.url).port}`;
    }

    /** One request, no redirect following; cookies stored and sent. */
    async send(target: string | URL, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
        const url = new URL(target, this.gatewayOrigin);
        const toGateway = url.hostname === this.info.domain;
        const headers: Record<string, string> = { Accept: "text/html,application/json", ...opts.headers };
        const cookie = this.jar.header(url);
        if (cookie) headers.Cookie = cookie;
        if (opts.body !== undefined) headers["Content-Length"] = String(Buffer.byteLength(opts.body));
        // The stack's domain resolves to the sandbox gateway, like the device's DNS resolves it to the real one.
        const lookup: LookupFunction = (host, options, done) => {
            if (host !== this.info.domain) throw new Error(`this client only talks to ${this.info.domain} and 127.0.0.1, not ${host}`);
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
                    servername: toGateway ? this.info.domain : undefined,
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
export async function signInThroughGateway(info: SandboxInfo, device: string, email: string, password: string, returnPath = "/", localAddress?: string): Promise<SignInResult> {
    const client = new SignInClient(info, device, localAddress);
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
 * ID token (a JWT the provider signed).
 */
export async function idTokenFromProvider(info: SandboxInfo, device: string, email: string, password: string): Promise<string> {
    const idp = info.idp!;
    const client = new SignInClient(info, device);
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

/** A well-formed RS256 JWT with the provider's issuer and audience, signed by a key the provider never had. */
export function foreignJwt(claims: Record<string, unknown>): string {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const input = `${part({ alg: "RS256", typ: "JWT", kid: randomBytes(8).toString("hex") })}.${part(claims)}`;
    return `${input}.${sign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
}

/** The payload of a JWT (no verification: for reading claims the test itself obtained). */
export function jwtClaims(jwt: string): Record<string, unknown> {
    return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8")) as Record<string, unknown>;
}

/** The partner user of the oidc sign-in stacks: allowed by email, on the carol-laptop device. */
export const CAROL = "carol@partner.example";

/**
 * An oidc stack at a partner IdP (carol allowed by email) run with `--idp real`: the shared setup of
 * the oidc sign-in suites, which differ only in identity settings and extra `--user`s.
 */
export function startPartnerOidcSandbox(identity: Record<string, unknown>, users: readonly string[]): Promise<Sandbox> {
    return startSandbox({
        config: {
            domain: "ollama.example.com",
            devices: [{ name: "carol-laptop", owner: CAROL, groups: [] }],
            identity: { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "ollama-gateway", allowedEmails: [CAROL], ...identity },
            oidcClientSecret: "unused-by-the-sandbox",
            gateway: { authRateLimitPerMinute: 600 },
            filter: { enabled: false },
        },
        extraArgs: ["--idp", "real", ...users.flatMap((u) => ["--user", u])],
        readyTimeoutMs: 60_000,
    });
}
