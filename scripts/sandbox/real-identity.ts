/**
 * `--idp real`: the sandbox's identity plane made of real programs. The OpenID provider
 * (`oidc-provider`, TLS from the sandbox CA) and the pinned oauth2-proxy binary, started with the
 * flags and environment `renderOAuth2ProxySettings` produces for the container; only the
 * placement differs (a 127.0.0.1 port, the emails file in the state dir, the local issuer).
 */
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { usesSessionStore, type StackConfig } from "../../components/config";
import { callbackUrl, COOKIE_SECRET_BYTES, renderOAuth2ProxySettings } from "../../components/identity/oauth2-proxy-settings";
import { requireTool } from "../lib/tools";
import { issueCert, type CertPair } from "./pki";
import { startOpenIdProvider, type IdpUser, type RunningOpenIdProvider } from "./openid-provider";
import { delay, SandboxError, type ChildHandle, type Supervisor } from "./processes";
import { startSessionStore, type RunningSessionStore } from "./session-store";

/** Client id of the sandbox's app at its IdP when the stack names none (entra: the program creates it). */
export const SANDBOX_CLIENT_ID = "zero-trust-ollama-sandbox";

export interface RealIdentityOptions {
    readonly cfg: StackConfig;
    readonly stateDir: string;
    readonly ca: CertPair;
    readonly users: readonly IdpUser[];
    /** Where the gateway already expects oauth2-proxy (its upstream block names this address). */
    readonly listen: { readonly host: string; readonly port: number };
    /** The gateway's port: part of the redirect URI, as in the stack. */
    readonly gatewayPort: number;
    /** Files for the provider's request log and oauth2-proxy's output. */
    readonly idpLog: string;
    readonly oauth2ProxyLog: string;
    /** identity.sessionStore redis: the file for redis-server's output. */
    readonly sessionStoreLog: string;
    readonly freePort: () => Promise<number>;
}

export interface RunningRealIdentity {
    readonly provider: RunningOpenIdProvider;
    readonly oauth2Proxy: ChildHandle;
    readonly clientId: string;
    readonly clientSecret: string;
    readonly redirectUri: string;
    /** The exact command line oauth2-proxy runs with (no secrets in it). */
    readonly args: readonly string[];
    /** identity.sessionStore redis: the redis-server oauth2-proxy keeps sessions in. */
    readonly sessionStore?: RunningSessionStore;
}

/** The provider's TLS certificate: for 127.0.0.1, signed by the sandbox CA (kept across runs). */
function ensureProviderCert(stateDir: string, ca: CertPair): CertPair {
    const pair = { cert: join(stateDir, "idp.crt"), key: join(stateDir, "idp.key") };
    if (!existsSync(pair.cert) || !existsSync(pair.key)) {
        issueCert(ca, pair, { commonName: "sandbox OpenID provider", usage: "server", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], notAfter: new Date(Date.now() + 365 * 86_400_000) });
    }
    return pair;
}

const READY_TIMEOUT_MS = 20_000;

/** oauth2-proxy logs nothing when it starts listening; it is ready when its /ping answers 200. */
async function waitForPing(listen: { host: string; port: number }, child: ChildHandle): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
        if (!child.running()) throw new SandboxError(`oauth2-proxy exited while starting; its last output:\n  ${child.lastOutput().split("\n").join("\n  ")}`);
        const status = await fetch(`http://${listen.host}:${listen.port}/ping`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status, () => 0);
        if (status === 200) return;
        await delay(50);
    }
    throw new SandboxError(`oauth2-proxy did not answer /ping on ${listen.host}:${listen.port} within ${READY_TIMEOUT_MS} ms; its last output:\n  ${child.lastOutput()}`);
}

/** Start the OpenID provider, then oauth2-proxy pointed at it; stop() of the supervisor and provider ends both. */
export async function startRealIdentity(supervisor: Supervisor, opts: RealIdentityOptions): Promise<RunningRealIdentity> {
    const binary = requireTool("oauth2Proxy");
    const { cfg } = opts;
    const clientId = cfg.identity.clientId ?? SANDBOX_CLIENT_ID;
    const clientSecret = randomBytes(24).toString("base64url");
    const redirectUri = callbackUrl(cfg.domain, opts.gatewayPort);
    const provider = await startOpenIdProvider({
        users: opts.users,
        client: { id: clientId, secret: clientSecret, redirectUri },
        tls: ensureProviderCert(opts.stateDir, opts.ca),
        tenantId: cfg.identity.provider === "entra" ? cfg.identity.tenantId : undefined,
        logFile: opts.idpLog,
    });
    try {
        const sessionStore = usesSessionStore(cfg) ? await startSessionStore(supervisor, { stateDir: opts.stateDir, logFile: opts.sessionStoreLog, freePort: opts.freePort }) : undefined;
        const emailsFile = join(opts.stateDir, "authenticated-emails.txt");
        const settings = renderOAuth2ProxySettings({
            identity: cfg.identity,
            domain: cfg.domain,
            port: opts.gatewayPort,
            clientId,
            secrets: { clientSecret, cookieSecretBase64: randomBytes(COOKIE_SECRET_BYTES).toString("base64"), sessionStorePassword: sessionStore?.password },
            placement: { httpAddress: `${opts.listen.host}:${opts.listen.port}`, authenticatedEmailsFile: emailsFile, issuerUrl: provider.issuer, sessionStoreUrl: sessionStore?.url },
        });
        if (settings.authenticatedEmails !== undefined) writeFileSync(emailsFile, settings.authenticatedEmails, { mode: 0o600 });
        const env = Object.fromEntries(settings.env!.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
        const oauth2Proxy = await supervisor.spawn("oauth2-proxy", binary, settings.args, {
            logFile: opts.oauth2ProxyLog,
            // Only the secrets, PATH and the sandbox CA (the provider's TLS issuer): nothing from the caller's environment leaks in.
            env: { PATH: process.env.PATH ?? "/usr/bin:/bin", SSL_CERT_FILE: opts.ca.cert, ...env },
            // A test stops it to prove the gateway fails closed; the sandbox reports that and keeps running.
            mayExit: true,
        });
        await waitForPing(opts.listen, oauth2Proxy);
        return { provider, oauth2Proxy, clientId, clientSecret, redirectUri, args: settings.args, sessionStore };
    } catch (e) {
        await provider.close();
        if (e instanceof SandboxError) throw new SandboxError(`the real oauth2-proxy did not start with the rendered settings: ${e.message}`);
        throw e;
    }
}
