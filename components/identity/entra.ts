/**
 * Entra ID app registration for oauth2-proxy: single tenant, authorization code flow only, group
 * claims limited to the groups assigned to the app, sign-in limited to those groups at the IdP,
 * a client secret that rotates on a config-driven schedule, and an optional MFA policy.
 */
import * as azuread from "@pulumi/azuread";
import * as pulumi from "@pulumi/pulumi";
import { entraIssuerUrl } from "./oauth2-proxy-settings";

/** Microsoft Graph's well-known application (client) id. */
export const MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";
/**
 * Delegated Graph permission ids (Microsoft Graph permissions reference). openid/profile/email are
 * sign-in; offline_access gives the refresh token cookie refresh needs; User.Read lets oauth2-proxy's
 * entra-id provider read the signed-in user's groups when a token carries a group-overage marker.
 */
export const GRAPH_DELEGATED_SCOPES = {
    openid: "37f7f235-527c-4136-accd-4a02d197296e",
    profile: "14dad69e-099b-42c9-810b-d002981feec1",
    email: "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
    offline_access: "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    "User.Read": "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
} as const;
/** The Azure CLI's public client id; pre-authorized so `az account get-access-token` needs no consent prompt. */
export const AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
/** Ids only need to be unique within this application, so fixed values keep previews stable. */
export const APP_ROLE_ID = "a6003128-e141-40e5-b908-afb5923c9fd0";
export const USER_SCOPE_ID = "65b23226-ebd6-40a0-86dd-fe85fd28d503";
export const APP_ROLE_VALUE = "Ollama.User";
export const USER_SCOPE_VALUE = "user_impersonation";

const DAY_MS = 86_400_000;

/** The client secret's rotation period that contains `now`, and when the secret of that period expires. */
export interface RotationWindow {
    /** Number of whole rotation periods since 1970-01-01; a new value means a new secret. */
    readonly epoch: number;
    /** RFC 3339 expiry: the end of the NEXT period, so a late `pulumi up` still finds a valid secret. */
    readonly endDate: string;
}

/**
 * Rotation keyed on the calendar, not on the time of the run: every run inside one period computes
 * the same epoch and end date, so `pulumi preview` stays a no-op until the period ends. The first
 * `pulumi up` after a boundary replaces the secret (create-before-delete), and the old secret stays
 * valid for up to one more period if nobody runs `up` right away.
 */
export function rotationWindow(now: Date, periodDays: number): RotationWindow {
    if (!Number.isInteger(periodDays) || periodDays < 1) throw new Error(`identity.secretRotationDays must be a whole number of days >= 1 (got ${periodDays})`);
    const periodMs = periodDays * DAY_MS;
    const epoch = Math.floor(now.getTime() / periodMs);
    return { epoch, endDate: new Date((epoch + 2) * periodMs).toISOString().replace(/\.\d{3}Z$/, "Z") };
}

export interface EntraIdentityArgs {
    /** Entra tenant (directory) id the app is registered in. */
    readonly tenantId: string;
    /** Display name of the app registration. */
    readonly displayName: string;
    /** The only redirect URI: https://<domain>[:<port>]/oauth2/callback. */
    readonly redirectUri: string;
    /** Object ids of the groups allowed to sign in; each gets its own app role assignment. */
    readonly allowedGroups: readonly string[];
    /** Create a conditional-access policy requiring MFA for this app. */
    readonly requireMfa: boolean;
    /**
     * The client secret's current rotation window (`rotationWindow(now, identity.secretRotationDays)`).
     * Passed in already computed so the component's inputs only change when the window does.
     */
    readonly secretRotation: RotationWindow;
}

export class EntraIdentity extends pulumi.ComponentResource {
    /** Application (client) id oauth2-proxy signs in with; also the audience of accepted bearer tokens. */
    public readonly clientId: pulumi.Output<string>;
    /** Client secret (secret). */
    public readonly clientSecret: pulumi.Output<string>;
    /** When the current client secret expires (RFC 3339). */
    public readonly clientSecretEndDate: pulumi.Output<string>;
    /** Issuer oauth2-proxy verifies tokens against. */
    public readonly issuerUrl: pulumi.Output<string>;
    /** Application ID URI CLIs request tokens for: api://<client id>. */
    public readonly identifierUri: pulumi.Output<string>;
    /** Object id of the service principal (enterprise application). */
    public readonly servicePrincipalObjectId: pulumi.Output<string>;

    constructor(name: string, args: EntraIdentityArgs, opts?: pulumi.ComponentResourceOptions) {
        super("zero-trust-ollama:identity:EntraIdentity", name, args, opts);
        // An explicit provider pins every resource to the configured tenant, whatever the ambient az login says.
        const provider = new azuread.Provider(`${name}-provider`, { tenantId: args.tenantId }, { parent: this });
        const child = { parent: this, provider };

        const scopeAccess = (ids: string[]) => ids.map((id) => ({ id, type: "Scope" }));
        const app = new azuread.Application(
            `${name}-app`,
            {
                displayName: args.displayName,
                signInAudience: "AzureADMyOrg",
                web: {
                    redirectUris: [args.redirectUri],
                    implicitGrant: { accessTokenIssuanceEnabled: false, idTokenIssuanceEnabled: false },
                },
                // Only groups assigned to the app (= identity.allowedGroups): small tokens, no group
                // overage, and the gateway never learns the user's unrelated memberships.
                groupMembershipClaims: ["ApplicationGroup"],
                optionalClaims: {
                    idTokens: [{ name: "email" }, { name: "groups" }],
                    accessTokens: [{ name: "email" }, { name: "groups" }],
                },
                requiredResourceAccesses: [{ resourceAppId: MICROSOFT_GRAPH_APP_ID, resourceAccesses: scopeAccess(Object.values(GRAPH_DELEGATED_SCOPES)) }],
                api: {
                    // v2 access tokens carry iss=<tenant>/v2.0 and aud=<client id>: exactly what oauth2-proxy verifies.
                    requestedAccessTokenVersion: 2,
                    oauth2PermissionScopes: [
                        {
                            id: USER_SCOPE_ID,
                            value: USER_SCOPE_VALUE,
                            type: "User",
                            enabled: true,
                            adminConsentDisplayName: "Use the Ollama gateway",
                            adminConsentDescription: "Call the Ollama gateway as the signed-in user.",
                            userConsentDisplayName: "Use the Ollama gateway",
                            userConsentDescription: "Call the Ollama gateway as you.",
                        },
                    ],
                },
                appRoles: [
                    {
                        id: APP_ROLE_ID,
                        value: APP_ROLE_VALUE,
                        allowedMemberTypes: ["User"],
                        displayName: "Ollama user",
                        description: "May sign in to the Ollama gateway.",
                        enabled: true,
                    },
                ],
            },
            // The identifier URI embeds the client id, so a separate resource manages it.
            { ...child, ignoreChanges: ["identifierUris"] },
        );
        const identifierUri = new azuread.ApplicationIdentifierUri(`${name}-identifier-uri`, { applicationId: app.id, identifierUri: pulumi.interpolate`api://${app.clientId}` }, child);
        new azuread.ApplicationPreAuthorized(`${name}-azure-cli`, { applicationId: app.id, authorizedClientId: AZURE_CLI_CLIENT_ID, permissionIds: [USER_SCOPE_ID] }, child);

        const principal = new azuread.ServicePrincipal(
            `${name}-principal`,
            { clientId: app.clientId, appRoleAssignmentRequired: true, notes: "Managed by Pulumi (zero-trust-ollama). Sign-in is limited to the assigned groups." },
            child,
        );
        // Named by group id, so removing one group from config removes exactly its assignment.
        for (const groupId of args.allowedGroups) {
            new azuread.AppRoleAssignment(`${name}-group-${groupId}`, { appRoleId: APP_ROLE_ID, principalObjectId: groupId, resourceObjectId: principal.objectId }, child);
        }

        const window = args.secretRotation;
        const password = new azuread.ApplicationPassword(
            `${name}-client-secret`,
            {
                applicationId: app.id,
                displayName: `oauth2-proxy (rotation ${window.epoch})`,
                endDate: window.endDate,
                rotateWhenChanged: { rotationEpoch: String(window.epoch) },
            },
            // Create the new secret before deleting the old one, so oauth2-proxy is replaced onto a valid secret.
            { ...child, deleteBeforeReplace: false },
        );

        if (args.requireMfa) {
            new azuread.ConditionalAccessPolicy(
                `${name}-require-mfa`,
                {
                    displayName: pulumi.interpolate`${args.displayName}: require MFA`,
                    state: "enabled",
                    conditions: {
                        applications: { includedApplications: [app.clientId] },
                        users: { includedUsers: ["All"] },
                        clientAppTypes: ["all"],
                    },
                    grantControls: { operator: "OR", builtInControls: ["mfa"] },
                },
                // Graph refuses a policy for an application that has no service principal yet.
                { ...child, dependsOn: [principal] },
            );
        }

        this.clientId = app.clientId;
        this.clientSecret = pulumi.secret(password.value);
        this.clientSecretEndDate = password.endDate;
        this.issuerUrl = pulumi.output(entraIssuerUrl(args.tenantId));
        this.identifierUri = identifierUri.identifierUri;
        this.servicePrincipalObjectId = principal.objectId;
        this.registerOutputs({
            clientId: this.clientId,
            clientSecret: this.clientSecret,
            clientSecretEndDate: this.clientSecretEndDate,
            issuerUrl: this.issuerUrl,
            identifierUri: this.identifierUri,
            servicePrincipalObjectId: this.servicePrincipalObjectId,
        });
    }
}
