/**
 * The prompt filter's rules file: plain JSON rendered from stack config by a pure function. The
 * Pulumi component hands it to the filter container and the sandbox writes it to its state dir,
 * so both run the filter with exactly the same rules. The filter service validates the file with
 * the same schema when it starts (a hand-edited or stale file fails loudly, naming the field).
 */
import { z } from "zod";
import { MODEL_PATTERN, type StackConfig } from "../config";

/** PII detector ids; also the placeholder type in `[REDACTED:<id>]` and the rule id `pii.<id>`. */
export const PII_DETECTORS = [
    "private-key",
    "aws-access-key",
    "aws-secret-key",
    "github-token",
    "slack-token",
    "iban",
    "payment-card",
    "us-ssn",
    "email",
    "phone",
] as const;
export type PiiDetector = (typeof PII_DETECTORS)[number];

const syslogAddress = z.string().regex(/^(udp|tcp):\/\/[A-Za-z0-9.-]+:\d{1,5}$/, "must be udp://host:port or tcp://host:port");

export const filterRulesSchema = z.strictObject({
    /** Format version; bumped when the file's meaning changes. */
    version: z.literal(1),
    pii: z.strictObject({
        action: z.enum(["block", "redact", "off"]),
        detectors: z.array(z.enum(PII_DETECTORS)).min(1),
    }),
    jailbreak: z.strictObject({ action: z.enum(["block", "off"]) }),
    /** Forward /api/generate `context` token arrays unread (opt-in; refused otherwise). */
    allowContextTokens: z.boolean(),
    limits: z.strictObject({
        /** Characters of prompt text summed over every message, prompt, system and input string. */
        maxPromptChars: z.number().int().min(1),
        maxMessages: z.number().int().min(1),
        maxNumCtx: z.number().int().min(1),
        /** Upper bound for num_predict, max_tokens, max_completion_tokens and max_output_tokens. */
        maxOutputTokens: z.number().int().min(1),
        /** Request body bytes the filter reads at most (the gateway's maxBodyKiB). */
        maxBodyBytes: z.number().int().min(1),
    }),
    /** Group -> models its members may use; "*" applies to everyone. */
    modelsByGroup: z.record(z.string().min(1), z.array(z.string().regex(MODEL_PATTERN))),
    /** Token budgets (filter/src/budget): groups empty = no accounting. */
    budgets: z.strictObject({
        /** Group ("*" for everyone) -> limits; an absent window does not limit. */
        groups: z.record(
            z.string().min(1),
            z.strictObject({
                tokensPerHour: z.number().int().min(1).optional(),
                tokensPerDay: z.number().int().min(1).optional(),
                tokensPerMonth: z.number().int().min(1).optional(),
                concurrentRequests: z.number().int().min(1).optional(),
            }),
        ),
        mode: z.enum(["generous", "strictest"]),
        /** IANA zone of the calendar day and month windows. */
        timeZone: z.string().min(1),
        /** Who is charged: the signed-in user, or (identity.provider none) the enrolled device. */
        chargeBy: z.enum(["user", "device"]),
    }),
    upstream: z.strictObject({
        /** Seconds to wait for Ollama's response headers and between body chunks. */
        timeoutSeconds: z.number().int().min(1),
    }),
    audit: z.strictObject({
        /** RFC 5424 syslog target for audit events, in addition to stdout. */
        syslogAddress: syslogAddress.optional(),
        /** APP-NAME in syslog records. */
        appName: z.string().regex(/^[!-~]{1,48}$/),
    }),
});

export type FilterRules = z.output<typeof filterRulesSchema>;

/** Rules for one stack. Pure: same config, same JSON. */
export function renderFilterRules(cfg: StackConfig): FilterRules {
    const f = cfg.filter;
    return {
        version: 1,
        pii: { action: f.pii, detectors: [...PII_DETECTORS] },
        jailbreak: { action: f.jailbreak },
        allowContextTokens: f.allowContextTokens,
        limits: {
            maxPromptChars: f.maxPromptChars,
            maxMessages: f.maxMessages,
            maxNumCtx: f.maxNumCtx,
            maxOutputTokens: f.maxOutputTokens,
            maxBodyBytes: cfg.gateway.maxBodyKiB * 1024,
        },
        modelsByGroup: Object.fromEntries(Object.entries(f.modelsByGroup).map(([group, models]) => [group, [...models]])),
        budgets: { groups: Object.fromEntries(Object.entries(f.budgets).map(([group, b]) => [group, { ...b }])), mode: f.budgetMode, timeZone: f.budgetTimeZone, chargeBy: cfg.identity.provider === "none" ? "device" : "user" },
        upstream: { timeoutSeconds: cfg.gateway.upstreamTimeoutSeconds },
        audit: { ...(cfg.siem.syslogAddress ? { syslogAddress: cfg.siem.syslogAddress } : {}), appName: "zto-filter" },
    };
}

/** Parse and validate a rules document; the error names every offending field. */
export function parseFilterRules(text: string): FilterRules {
    let raw: unknown;
    try {
        raw = JSON.parse(text);
    } catch (e) {
        throw new Error(`filter rules are not valid JSON: ${(e as Error).message}`);
    }
    const r = filterRulesSchema.safeParse(raw);
    if (!r.success) {
        const lines = r.error.issues.map((i) => `  - ${i.path.map(String).join(".") || "(root)"}: ${i.message}`);
        throw new Error(`invalid filter rules:\n${lines.join("\n")}`);
    }
    return r.data;
}
