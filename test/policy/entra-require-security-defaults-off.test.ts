/** entra-require-security-defaults-off on hand-built resources: fires for a Conditional Access policy only, at advisory level. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { POLICIES } from "../../policies/all";
import { CONDITIONAL_ACCESS_POLICY_TYPE, entraRequireSecurityDefaultsOff } from "../../policies/rules/entra-require-security-defaults-off";
import { messages, res, violations } from "./harness";

const p = [entraRequireSecurityDefaultsOff];
const ca = (builtInControls: string[]) => res(CONDITIONAL_ACCESS_POLICY_TYPE, "entra-require-mfa", { displayName: "x: require MFA", state: "enabled", grantControls: { operator: "OR", builtInControls } });

describe("entra-require-security-defaults-off", () => {
    test("a stack without a Conditional Access policy is not applicable (nothing reported)", async () => {
        assert.deepEqual(await messages(p, [res("azuread:index/servicePrincipal:ServicePrincipal", "sp", { appRoleAssignmentRequired: true })]), []);
    });

    test("a Conditional Access policy gets the advisory naming the Graph check", async () => {
        const v = await violations(p, [ca(["mfa"])]);
        assert.equal(v.length, 1);
        assert.equal(v[0].enforcementLevel, "advisory");
        assert.match(v[0].message, /requiring MFA .*Security Defaults are on.*identitySecurityDefaultsEnforcementPolicy/);
        assert.doesNotMatch((await messages(p, [ca(["block"])]))[0], /requiring MFA/);
    });

    test("it is part of the pack, advisory", () => {
        const inPack = POLICIES.find((x) => x.name === "entra-require-security-defaults-off");
        assert.equal(inPack?.enforcementLevel, "advisory");
    });
});
