/**
 * The jailbreak / prompt-injection check: chat-template control tokens and the phrase rules
 * (jailbreak-rules.ts) refuse outright; a trained linear model (jailbreak-score.ts, weights in
 * jailbreak-model.json, trained by `npm run train:filter` from test/fixtures/jailbreak) adds
 * recall on top, catching paraphrases and other languages no rule was written for. The refusal
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

/** The model's log-odds that a text is an attack. */
export function jailbreakScore(text: string, model: JailbreakModel = JAILBREAK_MODEL): number {
    return score(model, normalise(text));
}

/** Rule id that refuses the text, or undefined when it may pass. */
export function findJailbreak(text: string, model: JailbreakModel = JAILBREAK_MODEL): string | undefined {
    const t = normalise(text);
    if (hasTemplateToken(t)) return TEMPLATE_TOKEN_RULE;
    const rule = matchRules(t);
    if (rule !== undefined) return rule;
    return score(model, t) >= model.threshold ? CLASSIFIER_RULE : undefined;
}
