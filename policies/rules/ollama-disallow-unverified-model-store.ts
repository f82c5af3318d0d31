import type { ResourceValidationPolicy } from "@pulumi/policy";
import { MODEL_STORE_CHECK, MODEL_STORE_CHECK_LABEL, isOllamaContainer, labelsOf } from "../lib/containers";
import { TYPES, forType } from "../lib/policy-kit";

export const ollamaDisallowUnverifiedModelStore: ResourceValidationPolicy = {
    name: "ollama-disallow-unverified-model-store",
    description: `Reports every Ollama whose model store was not checked for encryption at rest on its host (ollama.allowUnencryptedModels, ${MODEL_STORE_CHECK_LABEL}: ${MODEL_STORE_CHECK.skipped}). Advisory, so development stacks can run on a laptop's plain disk, but never silently: the waiver is in every policy report. In a stack that pins its images, ollama-require-encrypted-model-store refuses the waiver outright.`,
    enforcementLevel: "advisory",
    severity: "high",
    remediationSteps: "Remove ollama.allowUnencryptedModels and put ollama.modelsPath on LUKS, or set ollama.modelStore.provision: fscrypt (docs/model-store.md).",
    validateResource: forType(TYPES.container, (props, args, report) => {
        if (!isOllamaContainer(props)) return args.notApplicable("not an Ollama container");
        const check = labelsOf(props).get(MODEL_STORE_CHECK_LABEL);
        if (check === MODEL_STORE_CHECK.skipped || check === MODEL_STORE_CHECK.skippedPinned) {
            report("ollama.allowUnencryptedModels is set: Ollama's model store was not checked for encryption at rest; models and prompt caches may be on a plain disk.");
        }
    }),
};
