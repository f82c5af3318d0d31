import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseStackFile, readStackFile, type StackFile } from "../../components/stack-file";
import { APP_ROLE_ID, AZURE_CLI_CLIENT_ID, GRAPH_DELEGATED_SCOPES, MICROSOFT_GRAPH_APP_ID, USER_SCOPE_ID } from "../../components/identity/entra";
import { apiKeyDigest } from "../../components/identity/api-keys";
import { AUTHENTICATED_EMAILS_FILE, OAUTH2_PROXY_CONFIG_DIR } from "../../components/identity/oauth2-proxy-settings";
import { ROLE_LABEL } from "../../components/hardening";
import { outputOf, runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";

const TENANT = "00000000-1111-2222-3333-444444444444";
const G1 = "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
const G2 = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const G3 = "99999999-8888-4777-8666-555555555555";
/** A recognisable client secret: it must appear in no resource input except as a secret. */
const OIDC_SECRET = "oidc-client-secret-DO-NOT-LEAK-7f3a";

function stackFile(lines: string[]): StackFile {
    return parseStackFile(["config:", ...lines.map((l) => "  " + l)].join("\n") + "\n", "test.yaml");
}

function entraStack(opts: { groups?: string[]; requireMfa?: boolean; port?: number; apiKeyDevices?: string[] } = {}): StackFile {
    const devices = ["alice-laptop", "ci-runner-01", "bob-laptop"].map((n) => `  - {name: ${n}, owner: ${n.split("-")[0]}@corp.example.com${opts.apiKeyDevices?.includes(n) ? ", apiKey: true" : ""}}`);
    return stackFile([
        "zero-trust-ollama:domain: ollama.corp.example.com",
        "zero-trust-ollama:devices:",
        ...devices,
        "zero-trust-ollama:gateway:",
        `  port: ${opts.port ?? 443}`,
        "zero-trust-ollama:identity:",
        "  provider: entra",
        `  tenantId: ${TENANT}`,
        `  allowedGroups: ${JSON.stringify(opts.groups ?? [G1, G2])}`,
        `  requireMfa: ${opts.requireMfa ?? false}`,
    ]);
}

function oidcStack(extraIdentity: string[] = [], secretLine = `zero-trust-ollama:oidcClientSecret: ${OIDC_SECRET}`): StackFile {
    return stackFile([
        "zero-trust-ollama:domain: ollama.example.com",
        "zero-trust-ollama:devices: [{name: alice-laptop, owner: alice@example.com, apiKey: true}]",
        "zero-trust-ollama:identity:",
        "  provider: oidc",
        "  issuerUrl: https://keycloak.example.com/realms/main",
        "  clientId: ollama-gateway",
        "  allowedEmailDomains: [example.com]",
        ...extraIdentity.map((l) => "  " + l),
        secretLine,
    ]);
}

async function run(file: StackFile) {
    const r = await runProgramUnderMocks(file);
    assert.ok(r.ok, `program failed: ${JSON.stringify(!r.ok && r.problems)}`);
    return r;
}

function only(resources: RecordedResource[], type: string, name?: string): RecordedResource {
    const hits = resources.filter((r) => r.type === type && (name === undefined || r.name === name));
    assert.equal(hits.length, 1, `expected exactly one ${type} ${name ?? ""}, got ${hits.map((h) => h.name).join(", ")}`);
    return hits[0];
}

const ofType = (resources: RecordedResource[], type: string) => resources.filter((r) => r.type === type);

describe("Entra app registration (mocks)", () => {
    test("application: single tenant, one https redirect URI, no implicit grant, app-assigned group claims, Graph sign-in scopes", async () => {
        const r = await run(entraStack());
        const app = only(r.resources, "azuread:index/application:Application", "entra-app");
        const i = app.inputs;
        assert.equal(i.signInAudience, "AzureADMyOrg");
        assert.deepEqual(i.web.redirectUris, ["https://ollama.corp.example.com/oauth2/callback"]);
        assert.deepEqual(i.web.implicitGrant, { accessTokenIssuanceEnabled: false, idTokenIssuanceEnabled: false });
        assert.deepEqual(i.groupMembershipClaims, ["ApplicationGroup"]);
        const claimNames = (list: { name: string }[]) => list.map((c) => c.name).sort();
        assert.deepEqual(claimNames(i.optionalClaims.idTokens), ["email", "groups"]);
        assert.deepEqual(claimNames(i.optionalClaims.accessTokens), ["email", "groups"]);
        assert.equal(i.requiredResourceAccesses.length, 1);
        assert.equal(i.requiredResourceAccesses[0].resourceAppId, MICROSOFT_GRAPH_APP_ID);
        const access = i.requiredResourceAccesses[0].resourceAccesses as { id: string; type: string }[];
        assert.ok(access.every((a) => a.type === "Scope"), "delegated permissions only, no application roles on Graph");
        for (const scope of ["openid", "profile", "email", "User.Read"] as const) assert.ok(access.some((a) => a.id === GRAPH_DELEGATED_SCOPES[scope]), `missing Graph ${scope}`);
        assert.equal(i.api.requestedAccessTokenVersion, 2);
        assert.deepEqual(i.appRoles.map((r: { id: string; allowedMemberTypes: string[] }) => [r.id, r.allowedMemberTypes]), [[APP_ROLE_ID, ["User"]]]);
        assert.equal(only(r.resources, "pulumi:providers:azuread").inputs.tenantId, TENANT);
    });

    test("redirect URI keeps a non-443 port", async () => {
        const r = await run(entraStack({ port: 8443 }));
        assert.deepEqual(only(r.resources, "azuread:index/application:Application").inputs.web.redirectUris, ["https://ollama.corp.example.com:8443/oauth2/callback"]);
    });

    test("service principal requires assignment; one role assignment per allowed group, named by group id", async () => {
        const r = await run(entraStack());
        const sp = only(r.resources, "azuread:index/servicePrincipal:ServicePrincipal");
        assert.equal(sp.inputs.appRoleAssignmentRequired, true);
        assert.match(sp.inputs.clientId, /^[0-9a-f-]{36}$/);
        const assignments = ofType(r.resources, "azuread:index/appRoleAssignment:AppRoleAssignment");
        assert.deepEqual(assignments.map((a) => a.name).sort(), [`entra-group-${G1}`, `entra-group-${G2}`].sort());
        for (const a of assignments) {
            assert.equal(a.inputs.appRoleId, APP_ROLE_ID);
            assert.equal(a.name, `entra-group-${a.inputs.principalObjectId}`);
            assert.match(a.inputs.resourceObjectId, /^[0-9a-f-]{36}$/);
        }
        // The CLI path: api://<client id> and the Azure CLI pre-authorized for the one user scope.
        const uri = only(r.resources, "azuread:index/applicationIdentifierUri:ApplicationIdentifierUri");
        assert.equal(uri.inputs.identifierUri, `api://${sp.inputs.clientId}`);
        const pre = only(r.resources, "azuread:index/applicationPreAuthorized:ApplicationPreAuthorized");
        assert.deepEqual([pre.inputs.authorizedClientId, pre.inputs.permissionIds], [AZURE_CLI_CLIENT_ID, [USER_SCOPE_ID]]);
        assert.equal(pre.inputs.applicationId, uri.inputs.applicationId);
    });

    test("removing a group from allowedGroups removes exactly its assignment", async () => {
        const before = await run(entraStack({ groups: [G1, G2, G3] }));
        const after = await run(entraStack({ groups: [G1, G3] }));
        const urns = (r: typeof before) => new Set(ofType(r.resources, "azuread:index/appRoleAssignment:AppRoleAssignment").map((a) => a.urn));
        const removed = [...urns(before)].filter((u) => !urns(after).has(u));
        const added = [...urns(after)].filter((u) => !urns(before).has(u));
        assert.equal(removed.length, 1);
        assert.match(removed[0], new RegExp(`entra-group-${G2}$`));
        assert.deepEqual(added, []);
        // Every other Entra resource keeps its identity and inputs.
        const entraInputs = (r: typeof before) => new Map(r.resources.filter((x) => x.type.startsWith("azuread:")).map((x) => [x.urn, JSON.stringify(x.inputs)]));
        const kept = entraInputs(after);
        for (const [urn, inputs] of entraInputs(before)) if (!urn.endsWith(G2)) assert.equal(kept.get(urn), inputs, `${urn} changed`);
        // oauth2-proxy drops exactly that group from its allowlist.
        const groupsOf = (r: typeof before) => (only(r.resources, "docker:index/container:Container", "oauth2-proxy-container").inputs.command as string[]).filter((a) => a.startsWith("--allowed-group="));
        assert.deepEqual(groupsOf(after), groupsOf(before).filter((a) => a !== `--allowed-group=${G2}`));
    });

    test("client secret: end date, rotation key from config, value only as a secret output", async () => {
        const r = await run(entraStack());
        const pw = only(r.resources, "azuread:index/applicationPassword:ApplicationPassword", "entra-client-secret");
        assert.match(pw.inputs.endDate, /^\d{4}-\d{2}-\d{2}T00:00:00Z$/);
        assert.ok(Date.parse(pw.inputs.endDate) > Date.now(), "the current secret is still valid");
        assert.ok(Date.parse(pw.inputs.endDate) <= Date.now() + 2 * 180 * 86_400_000, "expires within two rotation periods");
        assert.match(pw.inputs.rotateWhenChanged.rotationEpoch, /^\d+$/);
        // The same config run again (a preview) computes the same window: no replacement.
        const again = only((await run(entraStack())).resources, "azuread:index/applicationPassword:ApplicationPassword");
        assert.deepEqual(again.inputs, pw.inputs);
        // Nothing exports the Entra client secret; the stack outputs carry only public identity facts.
        const info = await outputOf(r.outputs.identity!);
        assert.equal(info.secret, false);
        assert.deepEqual(Object.keys(info.value).sort(), ["clientId", "issuerUrl", "provider", "tokenResource"]);
        assert.equal(info.value.issuerUrl, `https://login.microsoftonline.com/${TENANT}/v2.0`);
        assert.equal(info.value.tokenResource, `api://${info.value.clientId}`);
        const comp = only(r.resources, "zero-trust-ollama:identity:OAuth2Proxy");
        assert.ok(comp.secretInputs.includes("clientSecret"), "the secret enters oauth2-proxy as a secret");
        assert.equal(comp.maskedInputs.clientSecret, "[secret]");
    });

    test("MFA policy only when requireMfa, scoped to this app", async () => {
        assert.equal(ofType((await run(entraStack({ requireMfa: false }))).resources, "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy").length, 0);
        const r = await run(entraStack({ requireMfa: true }));
        const ca = only(r.resources, "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy");
        const clientId = only(r.resources, "azuread:index/servicePrincipal:ServicePrincipal").inputs.clientId;
        assert.equal(ca.inputs.state, "enabled");
        assert.deepEqual(ca.inputs.conditions.applications.includedApplications, [clientId]);
        assert.deepEqual(ca.inputs.grantControls, { operator: "OR", builtInControls: ["mfa"] });
    });
});

describe("oauth2-proxy container (mocks)", () => {
    test("pinned image, hardened, its networks to the gateway, the session store and egress only, no host port, secrets only in a secret env", async () => {
        const r = await run(entraStack());
        const c = only(r.resources, "docker:index/container:Container", "oauth2-proxy-container");
        const img = only(r.resources, "docker:index/remoteImage:RemoteImage", "oauth2-proxy-image");
        assert.equal(img.inputs.name, "quay.io/oauth2-proxy/oauth2-proxy:v7.15.6-alpine");
        assert.equal(c.inputs.ports, undefined);
        assert.notEqual(c.inputs.publishAllPorts, true);
        assert.equal(c.inputs.networkMode, undefined);
        assert.deepEqual(c.inputs.networksAdvanced.map((n: { name: string }) => n.name), ["zto-mock-to-oauth2-proxy", "zto-mock-egress", "zto-mock-to-session-store"]);
        assert.deepEqual(c.inputs.capabilities, { drops: ["ALL"] });
        assert.deepEqual(c.inputs.securityOpts, ["no-new-privileges:true"]);
        assert.equal(c.inputs.readOnly, true);
        assert.equal(c.inputs.privileged, false);
        assert.equal(c.inputs.user, "65532:65532");
        assert.ok(c.inputs.labels.some((l: { label: string; value: string }) => l.label === ROLE_LABEL && l.value === "oauth2-proxy"));
        // Secrets: the whole env is a secret; its values are the client secret, a 32-byte URL-safe cookie secret and the session store's password.
        assert.deepEqual(c.secretInputs, ["envs"]);
        assert.equal(c.maskedInputs.envs, "[secret]");
        const env = Object.fromEntries((c.inputs.envs as string[]).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
        assert.deepEqual(Object.keys(env).sort(), ["OAUTH2_PROXY_CLIENT_SECRET", "OAUTH2_PROXY_COOKIE_SECRET", "OAUTH2_PROXY_REDIS_PASSWORD"]);
        assert.equal(Buffer.from(env.OAUTH2_PROXY_COOKIE_SECRET, "base64url").length, 32);
        assert.doesNotMatch(env.OAUTH2_PROXY_COOKIE_SECRET, /[+/=]/);
        assert.ok(env.OAUTH2_PROXY_CLIENT_SECRET.length > 0);
        const clientId = only(r.resources, "azuread:index/servicePrincipal:ServicePrincipal").inputs.clientId;
        assert.ok(c.inputs.command.includes(`--client-id=${clientId}`));
        assert.ok(c.inputs.command.includes("--provider=entra-id"));
        // No secret value anywhere in the command line or in any non-secret input of any resource.
        for (const x of r.resources) {
            const shown = JSON.stringify(x.maskedInputs);
            assert.ok(!shown.includes(env.OAUTH2_PROXY_CLIENT_SECRET), `client secret visible in ${x.urn}`);
            assert.ok(!shown.includes(env.OAUTH2_PROXY_COOKIE_SECRET), `cookie secret visible in ${x.urn}`);
            assert.ok(!shown.includes(env.OAUTH2_PROXY_REDIS_PASSWORD), `session store password visible in ${x.urn}`);
        }
        const cookie = only(r.resources, "random:index/randomBytes:RandomBytes", "oauth2-proxy-cookie-secret");
        assert.equal(cookie.inputs.length, 32);
    });

    test("oidc: no Entra resources; the configured client secret flows only as a secret", async () => {
        const r = await run(oidcStack());
        assert.equal(r.resources.filter((x) => x.type.startsWith("azuread:") || x.type === "pulumi:providers:azuread").length, 0);
        const c = only(r.resources, "docker:index/container:Container", "oauth2-proxy-container");
        assert.ok(c.inputs.command.includes("--provider=oidc"));
        assert.ok(c.inputs.command.includes("--oidc-issuer-url=https://keycloak.example.com/realms/main"));
        assert.ok(c.inputs.command.includes("--client-id=ollama-gateway"));
        assert.ok(c.inputs.command.includes("--redirect-url=https://ollama.example.com:8443/oauth2/callback"));
        assert.ok((c.inputs.envs as string[]).includes(`OAUTH2_PROXY_CLIENT_SECRET=${OIDC_SECRET}`));
        assert.ok(c.secretInputs.includes("envs"));
        for (const x of r.resources) assert.ok(!JSON.stringify(x.maskedInputs).includes(OIDC_SECRET), `oidc client secret visible in ${x.urn}`);
        const info = await outputOf(r.outputs.identity!);
        assert.deepEqual(info.value, { provider: "oidc", issuerUrl: "https://keycloak.example.com/realms/main", clientId: "ollama-gateway" });
    });

    test("a secure: client secret in the stack file stays a secret too", async () => {
        const r = await run(oidcStack([], "zero-trust-ollama:oidcClientSecret: {secure: AAABAOpaque}"));
        const c = only(r.resources, "docker:index/container:Container", "oauth2-proxy-container");
        assert.equal(c.maskedInputs.envs, "[secret]");
    });

    test("allowedEmails: the file goes into a dedicated volume, the root filesystem stays read-only", async () => {
        const r = await run(oidcStack(["allowedEmails: [carol@partner.example]"]));
        const c = only(r.resources, "docker:index/container:Container", "oauth2-proxy-container");
        const vol = only(r.resources, "docker:index/volume:Volume", "oauth2-proxy-config");
        assert.equal(c.inputs.readOnly, true);
        assert.deepEqual(c.inputs.mounts, [{ type: "volume", source: vol.inputs.name, target: OAUTH2_PROXY_CONFIG_DIR }]);
        assert.deepEqual(c.inputs.uploads, [{ file: AUTHENTICATED_EMAILS_FILE, content: "carol@partner.example\n" }]);
        assert.ok(c.inputs.command.includes(`--authenticated-emails-file=${AUTHENTICATED_EMAILS_FILE}`));
        // Without allowedEmails there is neither volume nor upload.
        const plain = await run(oidcStack());
        assert.equal(ofType(plain.resources, "docker:index/volume:Volume").filter((v) => v.name.startsWith("oauth2-proxy")).length, 0);
        assert.equal(only(plain.resources, "docker:index/container:Container", "oauth2-proxy-container").inputs.uploads, undefined);
    });

    test("identity.provider none deploys no oauth2-proxy, no egress network, no Entra", async () => {
        const r = await run(readStackFile("Pulumi.dev.yaml"));
        assert.equal(r.resources.filter((x) => /oauth2-proxy|azuread/.test(x.type + x.name)).length, 0);
        assert.equal(r.resources.filter((x) => x.name === "network-egress").length, 0);
        assert.equal(r.outputs.identity, undefined);
    });

    test("the prod example stack shows the Entra resources and oauth2-proxy with every secret masked", async () => {
        const r = await run(readStackFile("Pulumi.prod.yaml"));
        const types = new Set(r.resources.map((x) => x.type));
        for (const t of ["azuread:index/application:Application", "azuread:index/servicePrincipal:ServicePrincipal", "azuread:index/appRoleAssignment:AppRoleAssignment", "azuread:index/applicationPassword:ApplicationPassword", "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy", "zero-trust-ollama:identity:OAuth2Proxy"]) {
            assert.ok(types.has(t), `prod plan lacks ${t}`);
        }
        const c = only(r.resources, "docker:index/container:Container", "oauth2-proxy-container");
        const envs = c.inputs.envs as string[];
        const secretValues = envs.map((e) => e.slice(e.indexOf("=") + 1));
        for (const x of r.resources) for (const v of secretValues) assert.ok(!JSON.stringify(x.maskedInputs).includes(v), `secret visible in ${x.urn}`);
    });
});

describe("per-device API keys (mocks)", () => {
    test("one random key per apiKey device, named by device; the output is secret", async () => {
        const r = await run(entraStack({ apiKeyDevices: ["ci-runner-01", "bob-laptop"] }));
        const keys = ofType(r.resources, "random:index/randomPassword:RandomPassword").filter((x) => x.name.startsWith("api-keys-"));
        assert.deepEqual(keys.map((k) => k.name).sort(), ["api-keys-bob-laptop", "api-keys-ci-runner-01"]);
        for (const k of keys) assert.deepEqual([k.inputs.length, k.inputs.special], [48, false]);
        const out = await outputOf(r.outputs.apiKeys!);
        assert.equal(out.secret, true);
        assert.deepEqual(Object.keys(out.value).sort(), ["bob-laptop", "ci-runner-01"]);
        for (const v of Object.values(out.value)) assert.match(v, /^[A-Za-z0-9]{48}$/);
    });

    test("revoking one device's key removes exactly that key; no keys means no component at all", async () => {
        const both = await run(entraStack({ apiKeyDevices: ["ci-runner-01", "bob-laptop"] }));
        const one = await run(entraStack({ apiKeyDevices: ["ci-runner-01"] }));
        const urns = (r: typeof both) => ofType(r.resources, "random:index/randomPassword:RandomPassword").map((x) => x.urn);
        assert.deepEqual(urns(both).filter((u) => !urns(one).includes(u)).map((u) => u.split("::").pop()), ["api-keys-bob-laptop"]);
        assert.deepEqual(urns(one).filter((u) => !urns(both).includes(u)), []);
        const none = await run(entraStack());
        assert.equal(none.outputs.apiKeys, undefined);
        assert.equal(ofType(none.resources, "zero-trust-ollama:identity:DeviceApiKeys").length, 0);
    });
});

describe("API keys reach the gateway as digests only (mocks)", () => {
    test("the gateway's rendered config carries each keyed device's digest and never a key", async () => {
        const r = await run(entraStack({ apiKeyDevices: ["ci-runner-01"] }));
        const keys = (await outputOf(r.outputs.apiKeys!)).value;
        const shown = r.resources.map((x) => JSON.stringify(x.maskedInputs)).join("\n");
        assert.ok(!shown.includes(keys["ci-runner-01"]), "an API key is visible in some resource input");
        const all = r.resources.map((x) => JSON.stringify(x.inputs)).join("\n");
        assert.ok(all.includes(apiKeyDigest(keys["ci-runner-01"])), "the gateway config lacks the device's key digest");
    });
});
