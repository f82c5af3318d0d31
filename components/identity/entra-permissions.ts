/**
 * What the principal running `pulumi up` needs in Entra for each resource type the program creates
 * (identity.provider entra), as the azuread provider documents it (the SDK docs shipped in
 * node_modules/@pulumi/azuread, v6). One row per resource type; a test checks the rows against the
 * resources the program registers and docs/identity.md against the rows.
 */

export interface EntraDeployPermission {
    /** Pulumi resource type. */
    readonly type: string;
    /** Microsoft Graph application permissions a CI service principal needs (all of them). */
    readonly applicationRoles: readonly string[];
    /** A directory role that suffices for a user principal (`az login` as a person). */
    readonly directoryRole: string;
    /** When the program creates it. */
    readonly when: string;
}

/** With Application.ReadWrite.OwnedBy the deploying principal must own the application (the provider's docs). */
const APP_OWNED = ["Application.ReadWrite.OwnedBy"] as const;

export const ENTRA_DEPLOY_PERMISSIONS: readonly EntraDeployPermission[] = [
    { type: "azuread:index/application:Application", applicationRoles: APP_OWNED, directoryRole: "Application Administrator", when: "always" },
    { type: "azuread:index/applicationIdentifierUri:ApplicationIdentifierUri", applicationRoles: APP_OWNED, directoryRole: "Application Administrator", when: "always" },
    { type: "azuread:index/applicationPreAuthorized:ApplicationPreAuthorized", applicationRoles: APP_OWNED, directoryRole: "Application Administrator", when: "always" },
    { type: "azuread:index/servicePrincipal:ServicePrincipal", applicationRoles: APP_OWNED, directoryRole: "Application Administrator", when: "always" },
    { type: "azuread:index/applicationPassword:ApplicationPassword", applicationRoles: APP_OWNED, directoryRole: "Application Administrator", when: "always" },
    { type: "azuread:index/appRoleAssignment:AppRoleAssignment", applicationRoles: ["AppRoleAssignment.ReadWrite.All", "Application.Read.All"], directoryRole: "Application Administrator", when: "one per identity.allowedGroups entry" },
    { type: "azuread:index/conditionalAccessPolicy:ConditionalAccessPolicy", applicationRoles: ["Policy.ReadWrite.ConditionalAccess", "Policy.Read.All"], directoryRole: "Conditional Access Administrator", when: "identity.requireMfa: true" },
];

/** The docs/identity.md table row for one resource type (the test compares the docs with exactly these lines). */
export function permissionRow(p: EntraDeployPermission): string {
    const code = (s: string) => `\`${s}\``;
    return `| ${code(p.type.slice(p.type.lastIndexOf(":") + 1))} | ${p.when} | ${p.applicationRoles.map(code).join(" and ")} | ${p.directoryRole} |`;
}
