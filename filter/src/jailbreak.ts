/**
 * The jailbreak / prompt-injection check: chat-template control tokens and the phrase rules
 * (jailbreak-rules.ts) refuse outright; a trained linear model (jailbreak-score.ts, weights in
 * jailbreak-model.json, trained by `npm run train:filter` from test/fixtures/jailbreak) adds
 * recall on top, catching paraphrases and other languages no rule was written for. The refusal
 * names the rule that fired, or `jailbreak.classifier` when only the model saw an attack.
 */
import MODEL_FILE from "./jailbreak-model.json";
import { normalise, ruleVerdict } from "./jailbreak-rules";
import { checkJailbreak, loadModel, score, type JailbreakModel } from "./jailbreak-score";

export { CLASSIFIER_RULE, loadModel, type JailbreakModel } from "./jailbreak-score";
export { JAILBREAK_RULES, normalise, RULE_IDS, TEMPLATE_TOKEN_RULE, TEMPLATE_TOKENS, type JailbreakRule } from "./jailbreak-rules";

export const JAILBREAK_MODEL = loadModel(MODEL_FILE);

/** The model's log-odds that a text is an attack. */
export function jailbreakScore(text: string, model: JailbreakModel = JAILBREAK_MODEL): number {
    const t = normalise(text);
    return score(model, t, ruleVerdict(t).ruleFeature);
}

/**
 * Rule id that refuses the text, or undefined when it may pass. A phrase rule that matched only
 * where it overlaps the quotes of a mention does not refuse by itself: the model reads it as a feature.
 */
export function findJailbreak(text: string, model: JailbreakModel = JAILBREAK_MODEL): string | undefined {
    return checkJailbreak(model, text);
}

/** findJailbreak for one of the readings `foldedForms` gave (fold.ts): it is not folded again. */
export function findJailbreakInReading(reading: string): string | undefined {
    return checkJailbreak(JAILBREAK_MODEL, reading, true);
}
