import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, blockOf, forType, listOf, str } from "../lib/policy-kit";

const REDIRECT_BLOCKS = ["web", "singlePageApplication", "publicClient"] as const;

export const entraRequireHttpsRedirects: ResourceValidationPolicy = {
    name: "entra-require-https-redirects",
    description:
        "Every redirect URI of the Entra ID app registration (web, single-page and public-client) is an exact https:// URL without wildcards. An http or wildcard redirect lets an attacker on the path, or on a matching host, collect authorization codes.",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Use https://<domain>/oauth2/callback only.",
    validateResource: forType(TYPES.entraApplication, (props, _args, report) => {
        for (const key of REDIRECT_BLOCKS) {
            for (const uri of listOf(blockOf(props[key]).redirectUris).map(str)) {
                if (uri.includes("*")) report(`${key}.redirectUris contains wildcard "${uri}"; list exact URLs.`);
                else if (!/^https:\/\/[^/]/i.test(uri)) report(`${key}.redirectUris contains "${uri}": redirect URIs must be https.`);
            }
        }
    }),
};
