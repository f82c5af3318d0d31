/**
 * Helpers of the sign-in suites: a token the provider never signed, and the partner-IdP stack they
 * share. The sign-in client itself is the sandbox's (scripts/sandbox/sign-in.ts): the sandbox signs
 * its users in with it at start, and the tests drive the same sequences with it.
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { startSandbox, type Sandbox } from "./harness";

/** A well-formed RS256 JWT with the provider's issuer and audience, signed by a key the provider never had. */
export function foreignJwt(claims: Record<string, unknown>): string {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const input = `${part({ alg: "RS256", typ: "JWT", kid: randomBytes(8).toString("hex") })}.${part(claims)}`;
    return `${input}.${sign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
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
