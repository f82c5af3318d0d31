/**
 * The jailbreak / prompt-injection check: chat-template control tokens refuse outright; otherwise
 * the phrase rules (jailbreak-rules.ts) and a trained linear model (jailbreak-score.ts, weights in
 * jailbreak-model.json, trained by `npm run train:filter` from test/fixtures/jailbreak) decide
 * together. A rule that fires is one feature of the model, so a prompt that quotes an attack to
 * ask about it can pass while a paraphrase no rule was written for is still caught. The refusal
 * names the rule that fired, or `jailbreak.classifier` when only the model saw an attack.
 */
import MODEL_FILE from "./jailbreak-model.json";
import { hasTemplateToken, matchRules, normalise, TEMPLATE_TOKEN_RULE } from "./jailbreak-rules";
import { loadModel, score, type JailbreakModel } from "./jailbreak-score";

export { loadModel, type JailbreakModel } from "./jailbreak-score";
export { JAILBREAK_RULES, normalise, TEMPLATE_TOKEN_RULE, TEMPLATE_TOKENS, type JailbreakRule } from "./jailbreak-rules";

/** Rule id of a refusal only the model made (no phrase rule fired). */
export const CLASSIFIER_RULE = "jailbreak.classifier";

export const JAILBREAK_MODEL = loadModel(MODEL_FILE);

/** The model's log-odds for a text, with the phrase rules as one of its inputs. */
export function jailbreakScore(text: string, model: JailbreakModel = JAILBREAK_MODEL): number {
    const t = normalise(text);
    return score(model, t, matchRules(t));
}

/**
 * A phrase rule refuses a text this short on its own: there is no room in it for the question
 * around a quoted attack, and the model scales short texts down (MIN_FEATURES).
 */
export const SHORT_TEXT_CHARS = 48;

/** Rule id that refuses the text, or undefined when it may pass. */
export function findJailbreak(text: string, model: JailbreakModel = JAILBREAK_MODEL): string | undefined {
    const t = normalise(text);
    if (hasTemplateToken(t)) return TEMPLATE_TOKEN_RULE;
    const rule = matchRules(t);
    if (rule !== undefined && t.length <= SHORT_TEXT_CHARS) return rule;
    return score(model, t, rule) >= model.threshold ? (rule ?? CLASSIFIER_RULE) : undefined;
}
