/**
 * oauth2-proxy settings as plain data: the exact command-line flags for `entra` and `oidc`, and
 * the authenticated-emails file. Pure, so the unit tests pin every flag and the component only
 * wires the result into a container. Secrets never appear here: the client secret and the cookie
 * secret reach the container as environment variables (see `OAUTH2_PROXY_SECRET_ENV`).
 */
import { usesSessionStore, type IdentityConfig } from "../config";
import { CONTAINER_SESSION_STORE_URL } from "./session-store-settings";

/** Port oauth2-proxy listens on inside the internal network. */
export const OAUTH2_PROXY_PORT = 4180;
/**
 * Docker healthcheck: GET /ping (oauth2-proxy's --ping-path, answered 200 without sign-in) with
 * busybox `wget`. The binary has no health subcommand and the distroless image no HTTP client, so
 * the image is the official `-alpine` variant (config.ts refuses other identity.image tags).
 */
export function oauth2ProxyHealthcheck(port: number = OAUTH2_PROXY_PORT): string[] {
    return ["CMD", "wget", "-q", "-O", "/dev/null", "-T", "3", `http://127.0.0.1:${port}/ping`];
}
/**
 * Session cookie name. The `__Host-` prefix makes browsers refuse the cookie unless it is Secure,
 * has Path=/ and no Domain attribute, so no sibling host can set or read it.
 */
export const OAUTH2_PROXY_COOKIE_NAME = "__Host-oauth2_proxy";
/** Directory (a dedicated volume) holding the authenticated-emails file. */
export const OAUTH2_PROXY_CONFIG_DIR = "/etc/oauth2-proxy";
export const AUTHENTICATED_EMAILS_FILE = `${OAUTH2_PROXY_CONFIG_DIR}/authenticated-emails.txt`;
/** Path prefixes where oauth2-proxy answers 401 instead of redirecting (CLIs and SDKs cannot follow a sign-in). */
export const API_ROUTE_PATTERNS = ["^/api/", "^/v1/"] as const;
/** Environment variables that carry the secrets; flags would show them in `docker inspect` args and process lists. */
export const OAUTH2_PROXY_SECRET_ENV = { clientSecret: "OAUTH2_PROXY_CLIENT_SECRET", cookieSecret: "OAUTH2_PROXY_COOKIE_SECRET", sessionStorePassword: "OAUTH2_PROXY_REDIS_PASSWORD" } as const;
/**
 * The header oauth2-proxy takes the client address from (it trusts it: nginx is its only caller).
 * nginx sets it to $remote_addr on both oauth2-proxy locations, so sign-in audit lines name the
 * client, not the gateway.
 */
export const REAL_CLIENT_IP_HEADER = "X-Real-IP";
/** Bytes of the cookie secret: oauth2-proxy uses it as an AES-256 key. */
export const COOKIE_SECRET_BYTES = 32;

/** The origin users type: `https://<domain>` with `:<port>` unless it is 443. */
export function publicOrigin(domain: string, port: number): string {
    return port === 443 ? `https://${domain}` : `https://${domain}:${port}`;
}

/** The one redirect URI the IdP may send authorization codes to. */
export function callbackUrl(domain: string, port: number): string {
    return `${publicOrigin(domain, port)}/oauth2/callback`;
}

/** Entra's v2.0 issuer for a tenant; access tokens the app accepts must carry exactly this `iss`. */
export function entraIssuerUrl(tenantId: string): string {
    return `https://login.microsoftonline.com/${tenantId}/v2.0`;
}

/**
 * oauth2-proxy decodes the cookie secret as unpadded URL-safe base64 and silently falls back to
 * the raw string when that fails; standard base64 (`+`, `/`) would therefore become a 44-byte
 * "secret" that is rejected at start-up. Convert, and insist on exactly 32 bytes.
 */
export function cookieSecretFromBase64(standardBase64: string): string {
    const bytes = Buffer.from(standardBase64, "base64");
    if (bytes.length !== COOKIE_SECRET_BYTES) throw new Error(`cookie secret must be ${COOKIE_SECRET_BYTES} bytes, got ${bytes.length}`);
    return bytes.toString("base64url");
}

export interface OAuth2ProxySettingsInput {
    /** Validated identity config; provider must be entra or oidc. */
    readonly identity: IdentityConfig;
    /** Public DNS name of the gateway. */
    readonly domain: string;
    /** Public port of the gateway. */
    readonly port: number;
    /** OAuth client id: the Entra application's, or identity.clientId for oidc. */
    readonly clientId: string;
    /** The secrets, when the caller holds them: they come back as `env`, never as flags. */
    readonly secrets?: OAuth2ProxySecrets;
    /** Where this oauth2-proxy runs; default: the container's (see CONTAINER_PLACEMENT). */
    readonly placement?: OAuth2ProxyPlacement;
}

export interface OAuth2ProxySecrets {
    /** OAuth client secret. */
    readonly clientSecret: string;
    /** 32 random bytes in standard base64 (as random.RandomBytes gives them). */
    readonly cookieSecretBase64: string;
    /** The session store's password; required when identity.sessionStore is redis. */
    readonly sessionStorePassword?: string;
}

/**
 * What differs between the container and the local sandbox: addresses and file paths, never a
 * policy. Every other flag is the same for both, so the sandbox runs what ships.
 */
export interface OAuth2ProxyPlacement {
    /** host:port oauth2-proxy listens on. */
    readonly httpAddress: string;
    /** Path of the authenticated-emails file as oauth2-proxy sees it. */
    readonly authenticatedEmailsFile: string;
    /** Issuer to use instead of the one the identity config names (the sandbox's local OpenID provider). */
    readonly issuerUrl?: string;
    /** redis://host:port of the session store, without credentials; required when identity.sessionStore is redis. */
    readonly sessionStoreUrl?: string;
}

/** The container: all interfaces (it publishes no port, so only its networks reach it), the config volume, the store by its alias. */
export const CONTAINER_PLACEMENT: OAuth2ProxyPlacement = { httpAddress: `0.0.0.0:${OAUTH2_PROXY_PORT}`, authenticatedEmailsFile: AUTHENTICATED_EMAILS_FILE, sessionStoreUrl: CONTAINER_SESSION_STORE_URL };

export interface OAuth2ProxySettings {
    /** Command-line arguments, in a stable order. */
    readonly args: readonly string[];
    /** Environment (`NAME=value`) carrying the secrets, when `secrets` was given. */
    readonly env?: readonly string[];
    /** Content of the authenticated-emails file (one address per line), when identity.allowedEmails is set. */
    readonly authenticatedEmails?: string;
}

/** The issuer oauth2-proxy verifies ID tokens and bearer tokens against. */
export function issuerUrlOf(identity: IdentityConfig): string {
    if (identity.provider === "entra") {
        if (!identity.tenantId) throw new Error("identity.tenantId is required when identity.provider is \"entra\"");
        return entraIssuerUrl(identity.tenantId);
    }
    if (identity.provider === "oidc") {
        if (!identity.issuerUrl?.startsWith("https://")) throw new Error("identity.issuerUrl must be an https URL when identity.provider is \"oidc\"");
        return identity.issuerUrl;
    }
    throw new Error("oauth2-proxy is only deployed when identity.provider is entra or oidc");
}

/**
 * Who may pass. oauth2-proxy requires the email check AND (when groups are listed) the group
 * check. The email check passes for a listed domain OR a listed address; with neither listed it
 * must be opened explicitly with `*`, which is only done when groups restrict instead (config
 * validation refuses an identity allowlist that is empty altogether).
 */
function allowlistArgs(identity: IdentityConfig, emailsFile: string): string[] {
    const args = identity.allowedGroups.map((g) => `--allowed-group=${g}`);
    args.push(...identity.allowedEmailDomains.map((d) => `--email-domain=${d}`));
    if (identity.allowedEmails.length) args.push(`--authenticated-emails-file=${emailsFile}`);
    if (!identity.allowedEmailDomains.length && !identity.allowedEmails.length) {
        if (!identity.allowedGroups.length) throw new Error("identity allowlist is empty: list allowedGroups, allowedEmailDomains or allowedEmails");
        args.push("--email-domain=*");
    }
    return args;
}

/**
 * Most groups Entra puts into a token's groups claim; past it the token carries an overage marker
 * instead and oauth2-proxy's entra-id provider reads the groups from Graph (/me/transitiveMemberOf)
 * with the session's access token.
 */
export const ENTRA_GROUP_CLAIM_LIMIT = 200;

/**
 * The app emits only groups assigned to it (groupMembershipClaims ApplicationGroup), and the
 * assignments are exactly allowedGroups, so the claim can only overflow with more than
 * ENTRA_GROUP_CLAIM_LIMIT of them. Only then is Graph's User.Read requested, which makes the session's
 * access token one Graph accepts for that lookup.
 */
export function scopesOf(identity: IdentityConfig): string[] {
    const scopes = ["openid", "email", "profile", "offline_access"];
    if (identity.provider === "entra" && identity.allowedGroups.length > ENTRA_GROUP_CLAIM_LIMIT) scopes.push("User.Read");
    return scopes;
}

/** identity.sessionStore redis: the store's address (the password is only in env). */
function sessionStoreArgs(identity: IdentityConfig, placement: OAuth2ProxyPlacement): string[] {
    if (!usesSessionStore({ identity })) return ["--session-store-type=cookie"];
    if (!placement.sessionStoreUrl || !/^redis:\/\/[A-Za-z0-9.-]+:\d{1,5}$/.test(placement.sessionStoreUrl)) throw new Error(`session store URL must be redis://host:port without credentials (got "${placement.sessionStoreUrl}")`);
    return ["--session-store-type=redis", `--redis-connection-url=${placement.sessionStoreUrl}`];
}

function sessionStoreEnv(identity: IdentityConfig, secrets: OAuth2ProxySecrets): string[] {
    if (!usesSessionStore({ identity })) return [];
    if (!secrets.sessionStorePassword) throw new Error("identity.sessionStore is redis but no session store password was passed");
    return [`${OAUTH2_PROXY_SECRET_ENV.sessionStorePassword}=${secrets.sessionStorePassword}`];
}

export function renderOAuth2ProxySettings(input: OAuth2ProxySettingsInput): OAuth2ProxySettings {
    const { identity } = input;
    const placement = input.placement ?? CONTAINER_PLACEMENT;
    const issuer = placement.issuerUrl ?? issuerUrlOf(identity);
    if (!input.clientId) throw new Error("oauth2-proxy needs a client id");
    const args = [
        // entra-id is oauth2-proxy's OIDC provider plus Entra's group-overage lookup through Graph.
        `--provider=${identity.provider === "entra" ? "entra-id" : "oidc"}`,
        `--oidc-issuer-url=${issuer}`,
        `--client-id=${input.clientId}`,
        `--redirect-url=${callbackUrl(input.domain, input.port)}`,
        `--http-address=${placement.httpAddress}`,
        // Trust X-Real-IP / X-Forwarded-* from nginx, the only client that can reach it.
        "--reverse-proxy=true",
        `--real-client-ip-header=${REAL_CLIENT_IP_HEADER}`,
        // auth_request mode: answer 202 with X-Auth-Request-User/-Email/-Groups, proxy nothing.
        "--set-xauthrequest=true",
        "--upstream=static://202",
        "--skip-provider-button=true",
        "--code-challenge-method=S256",
        "--insecure-oidc-skip-nonce=false",
        // offline_access yields the refresh token that --cookie-refresh needs.
        `--scope=${scopesOf(identity).join(" ")}`,
        `--cookie-name=${OAUTH2_PROXY_COOKIE_NAME}`,
        "--cookie-secure=true",
        "--cookie-httponly=true",
        "--cookie-samesite=lax",
        "--cookie-path=/",
        `--cookie-expire=${identity.cookieExpireHours}h`,
        `--cookie-refresh=${identity.cookieRefreshMinutes}m`,
        ...sessionStoreArgs(identity, placement),
        ...API_ROUTE_PATTERNS.map((p) => `--api-route=${p}`),
        // CLIs and SDKs present an IdP access token. It is verified against the same issuer and must
        // carry the client id as audience (Entra v2 tokens for this app do), so no extra issuer is trusted.
        "--skip-jwt-bearer-tokens=true",
        ...identity.extraAudiences.map((a) => `--oidc-extra-audience=${a}`),
        ...allowlistArgs(identity, placement.authenticatedEmailsFile),
        // Sign-in, refresh and failures are audit events; per-request lines would duplicate nginx's access log.
        "--auth-logging=true",
        "--standard-logging=true",
        "--request-logging=false",
        "--silence-ping-logging=true",
    ];
    const authenticatedEmails = identity.allowedEmails.length ? identity.allowedEmails.map((e) => e.toLowerCase()).join("\n") + "\n" : undefined;
    const env = input.secrets && [
        `${OAUTH2_PROXY_SECRET_ENV.clientSecret}=${input.secrets.clientSecret}`,
        `${OAUTH2_PROXY_SECRET_ENV.cookieSecret}=${cookieSecretFromBase64(input.secrets.cookieSecretBase64)}`,
        ...sessionStoreEnv(identity, input.secrets),
    ];
    return { args, env, authenticatedEmails };
}
