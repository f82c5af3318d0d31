import type { ResourceValidationPolicy } from "@pulumi/policy";
import { TYPES, configOf, forType } from "../lib/policy-kit";

export const COOKIE_SECRET_DEFAULTS = {
    /** Regular expression matched against the RandomBytes resource name to find cookie secrets. */
    namePattern: "cookie",
};

const REQUIRED_BYTES = 32;

export const randomRequireCookieSecretLength: ResourceValidationPolicy = {
    name: "random-require-cookie-secret-length",
    description:
        "The oauth2-proxy cookie secret (a RandomBytes resource whose name matches namePattern, default \"cookie\") is exactly 32 random bytes, so session cookies are sealed with AES-256. oauth2-proxy also accepts 16 or 24 bytes (AES-128/192) and rejects other lengths at start-up.",
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Create the cookie secret with random.RandomBytes({ length: 32 }) and pass its base64 output.",
    configSchema: {
        properties: {
            namePattern: { type: "string", minLength: 1, default: COOKIE_SECRET_DEFAULTS.namePattern, description: "Regular expression (case-insensitive) that identifies cookie-secret RandomBytes by resource name." },
        },
    },
    validateResource: forType(TYPES.randomBytes, (props, args, report) => {
        const { namePattern } = configOf(args, COOKIE_SECRET_DEFAULTS);
        if (!new RegExp(namePattern, "i").test(args.name)) return args.notApplicable("not a cookie secret");
        const length = Number(props.length);
        if (length !== REQUIRED_BYTES) report(`cookie secret is ${Number.isFinite(length) ? length : "an unknown number of"} bytes; oauth2-proxy cookie secrets must be ${REQUIRED_BYTES} bytes (AES-256).`);
    }),
};
