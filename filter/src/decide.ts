/**
 * The per-request decision: a pure function of the rules, the caller's identity and the raw
 * request. Nothing here does I/O, so unit, property and benchmark code call it directly and the
 * HTTP server only moves bytes according to its answer.
 */
import { canonicalModel } from "../../components/config";
import type { FilterRules, PiiDetector } from "../../components/filter/rules";
import { ENDPOINTS, FILTER_ENDPOINTS, matchEndpoint, type Endpoint } from "../../components/gateway/endpoints";
import { namesCloudModel } from "./cloud";
import { foldCompatibility, foldedForms } from "./fold";
import { findJailbreakInReading } from "./jailbreak";
import { parseRequestJson } from "./json";
import { findPii, placeholder, redact, type PiiMatch } from "./pii";
import { canonicalBody, hasBodySpec, inspectBody, Refusal, setSlotText, slotText } from "./shape";

/** Who is asking, as the gateway asserted it (see server.ts for why the filter may trust it). */
export interface Identity {
    readonly user?: string;
    readonly email?: string;
    readonly groups: readonly string[];
    readonly device?: string;
}

export interface FilterRequest {
    readonly method: string;
    /** Path without query string, exactly as received. */
    readonly path: string;
    readonly identity: Identity;
    readonly body?: Buffer;
}

/** Listings whose response the server filters down to the caller's models. */
export type ListingKind = "tags" | "ps" | "v1-models";

interface Common {
    readonly endpoint?: Endpoint;
    readonly model?: string;
    readonly promptChars: number;
    readonly items: number;
}

export interface Forward extends Common {
    readonly action: "forward";
    readonly endpoint: Endpoint;
    /** Body to send upstream: always the filter's own serialisation of the validated (and redacted) value. */
    readonly body?: Buffer;
    /** The value `body` serialises, to be read and never changed (the budget step reads its output cap from it). */
    readonly value?: unknown;
    /** Every text the checks inspected, as inspected (before redaction). */
    readonly inspected: readonly string[];
    /** Count of redacted values per detector (values themselves are never kept). */
    readonly redactions: Partial<Record<PiiDetector, number>>;
    readonly stream: boolean;
    readonly listing?: ListingKind;
}

export interface Refuse extends Common {
    readonly action: "refuse";
    readonly status: number;
    readonly code: string;
    readonly rule: string;
}

export type Decision = Forward | Refuse;

/** Rules prepared once per process: the allowlist resolved to canonical model names. */
export interface Policy {
    readonly rules: FilterRules;
    /** Canonical models per group key ("*" included). */
    readonly modelsByGroup: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Shared with the gateway's node pool, which routes by the same canonical names. */
export { canonicalModel };

export function compilePolicy(rules: FilterRules): Policy {
    const modelsByGroup = new Map<string, ReadonlySet<string>>();
    for (const [group, models] of Object.entries(rules.modelsByGroup)) modelsByGroup.set(group, new Set(models.map(canonicalModel)));
    return { rules, modelsByGroup };
}

/** True when any of the caller's groups (or "*") lists the model and it is no cloud model. */
export function modelAllowed(policy: Policy, groups: readonly string[], model: string): boolean {
    if (namesCloudModel(model)) return false;
    const canonical = canonicalModel(model);
    if (policy.modelsByGroup.get("*")?.has(canonical)) return true;
    return groups.some((g) => policy.modelsByGroup.get(g)?.has(canonical) === true);
}

/** Each pass removes at least one value; real text settles after one or two. */
const MAX_REDACTION_PASSES = 8;

/**
 * Redact `matches`, then every other occurrence of the same values (a value glued to other text
 * fails a boundary check but is still that value), then scan again: removing a value can expose a
 * neighbour its boundary hid (a phone number glued to an e-mail address). Counts go to `counts`.
 */
function redactAll(value: string, matches: readonly PiiMatch[], detectors: readonly PiiDetector[], counts: Partial<Record<PiiDetector, number>>): string {
    let text = value;
    for (let found = matches, pass = 0; found.length && pass < MAX_REDACTION_PASSES; found = findPii(text, detectors), pass++) {
        const values = [...new Map(found.map((m) => [text.slice(m.start, m.end), m.type] as const))].sort((a, b) => b[0].length - a[0].length);
        text = redact(text, found);
        for (const [v, type] of values) text = text.split(v).join(placeholder(type));
        for (const m of found) counts[m.type] = (counts[m.type] ?? 0) + 1;
    }
    return text;
}

const LISTINGS: Partial<Record<string, ListingKind>> = { tags: "tags", ps: "ps", "v1-models": "v1-models" };

function refuse(status: number, code: string, rule: string, extra: Partial<Common> = {}): Refuse {
    return { action: "refuse", status, code, rule, promptChars: 0, items: 0, ...extra };
}

/** The rule a refused model broke: models.cloud for a cloud model (never allowed), else the allowlist. */
const modelRule = (model: string) => (namesCloudModel(model) ? "models.cloud" : "models.allowlist");

/** Ollama's endpoints and those the filter answers itself (GET /v1/budget). */
const FILTER_TABLE: readonly Endpoint[] = [...ENDPOINTS, ...FILTER_ENDPOINTS];

/** Decide one request. Never throws: malformed input of any kind becomes a Refuse. */
export function decide(policy: Policy, req: FilterRequest): Decision {
    const endpoint = matchEndpoint(req.method, req.path, FILTER_TABLE);
    if (!endpoint) {
        const pathKnown = FILTER_TABLE.some((e) => matchEndpoint(e.methods[0]!, req.path, FILTER_TABLE) === e);
        return pathKnown ? refuse(405, "method_not_allowed", "endpoints.method") : refuse(404, "endpoint_not_allowed", "endpoints.allowlist");
    }
    const { rules } = policy;
    if (endpoint.modelParam) {
        const model = req.path.slice(endpoint.path.length); // MODEL_PATH_SEGMENT admits no percent-encoding
        if (!modelAllowed(policy, req.identity.groups, model)) return refuse(403, "model_not_allowed", modelRule(model), { endpoint, model });
        return { action: "forward", endpoint, model, redactions: {}, stream: false, promptChars: 0, items: 0, inspected: [] };
    }
    if (!hasBodySpec(endpoint.id)) return { action: "forward", endpoint, redactions: {}, stream: false, listing: LISTINGS[endpoint.id], promptChars: 0, items: 0, inspected: [] };

    const raw = req.body ?? Buffer.alloc(0);
    if (raw.length > rules.limits.maxBodyBytes) return refuse(413, "body_too_large", "limits.body-size", { endpoint });
    const json = parseRequestJson(raw.toString("utf8"));
    if ("problem" in json) return json.problem === "invalid-json" ? refuse(400, "invalid_json", "shape.json", { endpoint }) : refuse(400, "invalid_request", "shape.duplicate-key", { endpoint });
    const parsed = json.value;
    let inspection;
    try {
        inspection = inspectBody(endpoint.id, parsed, rules);
    } catch (e) {
        if (e instanceof Refusal) return refuse(e.status, e.code, e.rule, { endpoint });
        // Only a stack overflow on pathologically nested JSON gets here.
        return refuse(400, "invalid_request", "shape.depth", { endpoint });
    }
    const facts = { endpoint, model: inspection.model, promptChars: inspection.promptChars, items: inspection.items };
    if (inspection.items > rules.limits.maxMessages) return refuse(413, "too_many_messages", "limits.max-messages", facts);
    if (inspection.promptChars > rules.limits.maxPromptChars) return refuse(413, "prompt_too_large", "limits.max-prompt-chars", facts);
    if (!modelAllowed(policy, req.identity.groups, inspection.model)) return refuse(403, "model_not_allowed", modelRule(inspection.model), facts);

    const inspected = inspection.texts.map(slotText);
    // Every reading of each text (see fold.ts), computed once for both checks.
    const readings = inspected.map(foldedForms);
    if (rules.jailbreak.action === "block") {
        for (const forms of readings) {
            for (const form of forms) {
                const rule = findJailbreakInReading(form);
                if (rule) return refuse(422, "jailbreak_detected", rule, facts);
            }
        }
    }
    const redactions: Partial<Record<PiiDetector, number>> = {};
    if (rules.pii.action !== "off") {
        const detectors = rules.pii.detectors;
        for (const [i, slot] of inspection.texts.entries()) {
            const raw = inspected[i]!;
            // The text as sent and each folded reading are scanned: folding reveals values hidden by
            // invisible or full-width characters, and can also merge a value with a neighbour.
            const forms = readings[i]!;
            const rawMatches = findPii(raw, detectors);
            const formMatches = forms.map((f) => (f === raw ? rawMatches : findPii(f, detectors)));
            const first = rawMatches[0] ?? formMatches.find((m) => m.length)?.[0];
            if (!first) continue;
            // Keys and numbers cannot be rewritten in place: refuse them in redact mode too.
            if (rules.pii.action === "block" || slot.fixed !== undefined) return refuse(422, "pii_detected", `pii.${first.type}`, facts);
            // Redaction rewrites a folded reading (what the model would read anyway): the one where a
            // value was found, preferring the first; then removes whatever the raw scan found as well.
            const pick = Math.max(0, formMatches.findIndex((m) => m.length));
            const fold = pick === 0 ? foldCompatibility : (t: string) => foldedForms(t)[pick] ?? foldCompatibility(t);
            let text = redactAll(forms[pick]!, formMatches[pick]!, detectors, redactions);
            let replaced = false;
            for (const m of forms[pick] === raw ? [] : rawMatches) {
                const value = fold(raw.slice(m.start, m.end));
                if (text.includes(value)) {
                    text = text.split(value).join(placeholder(m.type));
                    redactions[m.type] = (redactions[m.type] ?? 0) + 1;
                    replaced = true;
                }
            }
            if (replaced) text = redactAll(text, findPii(text, detectors), detectors, redactions);
            // A reading the chosen one did not show (a zero-width separator read as a space) must be clean too.
            for (const form of foldedForms(text)) {
                const left = findPii(form, detectors)[0];
                if (left) return refuse(422, "pii_detected", `pii.${left.type}`, facts);
            }
            setSlotText(slot, text);
        }
    }
    const body = canonicalBody(parsed, inspection);
    return { action: "forward", ...facts, body, value: parsed, redactions, stream: inspection.stream, inspected };
}

/**
 * A listing response reduced to the models the caller may use. Returns undefined when the body
 * is not the expected shape (the server then refuses rather than leak an unfiltered list).
 */
export function filterListing(policy: Policy, groups: readonly string[], kind: ListingKind, body: string): string | undefined {
    let doc: unknown;
    try {
        doc = JSON.parse(body);
    } catch {
        return undefined;
    }
    if (typeof doc !== "object" || doc === null) return undefined;
    const d = doc as Record<string, unknown>;
    const key = kind === "v1-models" ? "data" : "models";
    const list = d[key];
    if (!Array.isArray(list)) return undefined;
    const nameOf = (m: unknown): string | undefined => {
        if (typeof m !== "object" || m === null) return undefined;
        const r = m as Record<string, unknown>;
        const n = kind === "v1-models" ? r.id : (r.model ?? r.name);
        return typeof n === "string" ? n : undefined;
    };
    d[key] = list.filter((m) => {
        const n = nameOf(m);
        return n !== undefined && modelAllowed(policy, groups, n);
    });
    return JSON.stringify(d);
}
