/**
 * A real OpenID provider for the sandbox and the tests: the certified `oidc-provider` package on
 * 127.0.0.1 over TLS (certificate from the sandbox CA). It knows one confidential client (the
 * gateway's oauth2-proxy: authorization code with PKCE S256 required), a table of test users
 * (email, groups; Entra's `tid` claim when the stack is entra), signs tokens with its own RSA key
 * (published as JWKS) and serves a plain login form a test or a person can fill in. Consent is
 * implied for this first-party client, as an enterprise IdP does for an app it owns.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import Provider, { type Configuration, type KoaContextWithOIDC } from "oidc-provider";
import { JsonLinesLog } from "./json-log";
import type { StubServer } from "./listen";

/** A user who can sign in at the provider. */
export interface IdpUser {
    readonly email: string;
    readonly password: string;
    readonly groups: readonly string[];
    /** Lifetime of this user's ID tokens; default one hour. Short ones let a test watch a token expire. */
    readonly idTokenTtlSeconds?: number;
}

export interface OpenIdProviderOptions {
    readonly users: readonly IdpUser[];
    /** The one client: oauth2-proxy's client id, secret and its callback URL. */
    readonly client: { readonly id: string; readonly secret: string; readonly redirectUri: string };
    /** PEM files of the provider's TLS certificate and key. */
    readonly tls: { readonly cert: string; readonly key: string };
    /** Entra tenant id, sent as the `tid` claim (oauth2-proxy's entra-id provider reads it). */
    readonly tenantId?: string;
    /** JSON-lines file with one entry per request (method, path without query values, status). */
    readonly logFile: string;
}

export interface RunningOpenIdProvider extends StubServer {
    /** `https://127.0.0.1:<port>`: the issuer, also its discovery base. */
    readonly issuer: string;
}

/** One request the provider answered. Query values are dropped: codes and states never reach a log. */
export interface IdpLogEntry {
    readonly time: string;
    readonly method: string;
    readonly path: string;
    /** Names of the query parameters (values left out). */
    readonly params: readonly string[];
    readonly status: number;
}

const DEFAULT_ID_TOKEN_TTL_SECONDS = 3600;
const SCOPES = "openid email profile offline_access";

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid: string, message?: string): string {
    return `<!doctype html><html><head><meta charset="utf-8"><title>Sign in: zero-trust-ollama sandbox IdP</title></head>
<body><h1>Sign in</h1>${message ? `<p role="alert" id="error">${escapeHtml(message)}</p>` : ""}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>Email <input id="email" name="email" type="email" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<button id="sign-in" type="submit">Sign in</button>
</form></body></html>`;
}

function readForm(req: IncomingMessage): Promise<URLSearchParams> {
    return new Promise((done, fail) => {
        let body = "";
        req.setEncoding("utf8");
        req.on("data", (c: string) => {
            body += c;
            if (body.length > 8192) req.destroy(new Error("form too large"));
        });
        req.on("end", () => done(new URLSearchParams(body)));
        req.on("error", fail);
    });
}

/**
 * Entra issues a refresh token for `offline_access` without a consent prompt; oidc-provider follows
 * OIDC Core and drops `offline_access` unless the request asks for `prompt=consent`. So an
 * authorization request with `offline_access` and no prompt gets `prompt=consent` added (consent is
 * then implied, see the interaction), and oauth2-proxy's refresh works as it does against Entra.
 */
export function withConsentForOfflineAccess(target: string, base: string): string {
    const url = new URL(target, base);
    if (url.pathname !== "/auth" || url.searchParams.has("prompt") || !(url.searchParams.get("scope") ?? "").split(" ").includes("offline_access")) return target;
    url.searchParams.set("prompt", "consent");
    return `${url.pathname}${url.search}`;
}

export async function startOpenIdProvider(opts: OpenIdProviderOptions): Promise<RunningOpenIdProvider> {
    const log = new JsonLinesLog(opts.logFile);
    const byEmail = new Map(opts.users.map((u) => [u.email.toLowerCase(), u]));
    const server = createServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) });
    // The issuer names its own port, so bind first and build the provider for the bound address.
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    const issuer = `https://127.0.0.1:${port}`;

    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const signingKey = { ...privateKey.export({ format: "jwk" }), kid: randomBytes(8).toString("hex"), alg: "RS256", use: "sig" };

    const configuration: Configuration = {
        clients: [
            {
                client_id: opts.client.id,
                client_secret: opts.client.secret,
                redirect_uris: [opts.client.redirectUri],
                grant_types: ["authorization_code", "refresh_token"],
                response_types: ["code"],
                token_endpoint_auth_method: "client_secret_basic",
            },
        ],
        // JWKS of the provider: oauth2-proxy verifies ID tokens and bearer JWTs with it.
        jwks: { keys: [signingKey as never] },
        cookies: { keys: [randomBytes(32).toString("base64url")] },
        pkce: { methods: ["S256"], required: () => true },
        scopes: SCOPES.split(" "),
        claims: { openid: ["sub", "groups", ...(opts.tenantId ? ["tid"] : [])], email: ["email", "email_verified"], profile: ["name", "preferred_username"] },
        // oauth2-proxy reads email and groups from the ID token, as Entra puts them there.
        conformIdTokenClaims: false,
        findAccount: (_ctx, id) => {
            const user = byEmail.get(id);
            if (!user) return undefined;
            return {
                accountId: id,
                claims: () => ({
                    sub: id,
                    email: user.email,
                    email_verified: true,
                    groups: [...user.groups],
                    name: user.email,
                    preferred_username: user.email.slice(0, user.email.indexOf("@")),
                    ...(opts.tenantId ? { tid: opts.tenantId } : {}),
                }),
            };
        },
        ttl: {
            IdToken: (_ctx, token) => byEmail.get(String((token as unknown as { available: { sub?: string } }).available.sub))?.idTokenTtlSeconds ?? DEFAULT_ID_TOKEN_TTL_SECONDS,
            AccessToken: 3600,
            AuthorizationCode: 60,
            Interaction: 600,
            Session: 8 * 3600,
            Grant: 8 * 3600,
            RefreshToken: 8 * 3600,
        },
        // Entra issues a refresh token for offline_access without a consent prompt; so does this one.
        issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed("refresh_token") && code.scopes.has("offline_access"),
        // First-party client: the grant is implied, no consent screen.
        loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
            const { client, session } = ctx.oidc;
            if (!client || !session?.accountId) return undefined;
            const existing = session.grantIdFor(client.clientId);
            if (existing) return ctx.oidc.provider.Grant.find(existing);
            const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
            grant.addOIDCScope(SCOPES);
            await grant.save();
            session.grantIdFor(client.clientId, grant.jti);
            return grant;
        },
        features: { devInteractions: { enabled: false } },
        interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
        renderError: (ctx, out) => {
            ctx.type = "json";
            ctx.body = out;
        },
    };
    const provider = new Provider(issuer, configuration);
    const oidc = provider.callback();

    const interaction = async (req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined): Promise<void> => {
        const details = await provider.interactionDetails(req, res);
        if (details.uid !== uid) throw new Error("interaction does not match its cookie");
        if (details.prompt.name === "consent") {
            // Asked only with prompt=consent (see withConsentForOfflineAccess): implied for this first-party client.
            const accountId = details.session?.accountId;
            if (!accountId) throw new Error("consent asked before sign-in");
            const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId: opts.client.id });
            grant.addOIDCScope(SCOPES);
            return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
        }
        if (details.prompt.name !== "login") {
            // Consent is implied (loadExistingGrant); nothing else is ever asked.
            return provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
        }
        if (req.method === "GET" && action === undefined) {
            res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
            res.end(loginPage(uid));
            return;
        }
        if (req.method !== "POST" || action !== "login") {
            res.writeHead(405, { "Content-Type": "text/plain" });
            res.end("method not allowed");
            return;
        }
        const form = await readForm(req);
        const user = byEmail.get((form.get("email") ?? "").toLowerCase());
        if (!user || form.get("password") !== user.password) {
            res.writeHead(401, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
            res.end(loginPage(uid, "Unknown email or wrong password."));
            return;
        }
        await provider.interactionFinished(req, res, { login: { accountId: user.email.toLowerCase() } }, { mergeWithLastSubmission: false });
    };

    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
        req.url = withConsentForOfflineAccess(req.url ?? "/", issuer);
        const url = new URL(req.url, issuer);
        res.on("finish", () => log.append({ time: new Date().toISOString(), method: req.method ?? "", path: url.pathname, params: [...url.searchParams.keys()], status: res.statusCode } satisfies IdpLogEntry));
        const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/.exec(url.pathname);
        if (!m) {
            void oidc(req, res);
            return;
        }
        interaction(req, res, m[1], m[2]).catch((e: Error) => {
            if (res.headersSent) {
                res.destroy();
                return;
            }
            res.writeHead(400, { "Content-Type": "text/plain; charset=utf-8" });
            res.end(`sign-in failed: ${e.message}`);
        });
    });

    return {
        host: "127.0.0.1",
        port,
        url: issuer,
        issuer,
        close: () =>
            new Promise<void>((resolve) => {
                server.close(() => resolve());
                server.closeAllConnections();
            }),
    };
}
