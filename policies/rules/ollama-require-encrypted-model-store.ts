import type { ResourceValidationPolicy } from "@pulumi/policy";
import { ENCRYPTED_STORE_LABEL, MODEL_STORE_CHECK, MODEL_STORE_CHECK_LABEL, OLLAMA_DEFAULT_MODELS_DIR, hostMountsOf, isOllamaContainer, labelsOf } from "../lib/containers";
import { TYPES, configOf, forType, listOf, str } from "../lib/policy-kit";

export const ENCRYPTED_STORE_DEFAULTS = {
    /** When non-empty, the store's host path must lie under one of these (e.g. your LUKS mount). */
    hostPathPrefixes: [] as string[],
};

/** True when `inner` is `outer` or lies below it (path-segment aware). */
function within(inner: string, outer: string): boolean {
    const o = outer.replace(/\/+$/, "") || "/";
    return inner === o || inner.startsWith(o === "/" ? "/" : o + "/");
}

/** Where Ollama keeps models: OLLAMA_MODELS if set, else the image's default. */
function modelsDirOf(envs: unknown): string {
    const setting = listOf(envs).map(str).filter((e) => e.startsWith("OLLAMA_MODELS=")).pop();
    return setting ? setting.slice("OLLAMA_MODELS=".length) : OLLAMA_DEFAULT_MODELS_DIR;
}

export const ollamaRequireEncryptedModelStore: ResourceValidationPolicy = {
    name: "ollama-require-encrypted-model-store",
    description: `Ollama's model directory is the bind mount the container labels as its encrypted store (${ENCRYPTED_STORE_LABEL}), from an absolute host path (optionally under configured prefixes), no other mount or tmpfs shadows it, and the host path passed the on-host encryption check before Ollama was created (${MODEL_STORE_CHECK_LABEL}: ${MODEL_STORE_CHECK.verified}); a stack that pins its images (requirePinnedImages) may not waive that check. Models and prompt caches then rest on an encrypted (LUKS, fscrypt, gocryptfs) volume, never on a plain disk, in the container's writable layer or in an anonymous volume.`,
    enforcementLevel: "mandatory",
    severity: "high",
    remediationSteps: "Bind-mount ollama.modelsPath (a host path on the encrypted volume) at the path named by the encrypted-store label, as OllamaRuntime does, and remove ollama.allowUnencryptedModels from stacks that set requirePinnedImages (docs/model-store.md).",
    configSchema: {
        properties: {
            hostPathPrefixes: { type: "array", items: { type: "string", pattern: "^/" }, default: [], description: "Absolute host path prefixes of the encrypted volume(s); empty accepts any absolute path." },
        },
    },
    validateResource: forType(TYPES.container, (props, args, report) => {
        if (!isOllamaContainer(props)) return args.notApplicable("not an Ollama container");
        const { hostPathPrefixes } = configOf(args, ENCRYPTED_STORE_DEFAULTS);
        const check = labelsOf(props).get(MODEL_STORE_CHECK_LABEL);
        if (check === undefined) report(`Ollama has no ${MODEL_STORE_CHECK_LABEL} label: its model store was never checked for encryption on the host.`);
        else if (check === MODEL_STORE_CHECK.skippedPinned) report("ollama.allowUnencryptedModels waives the model-store encryption check in a stack that sets requirePinnedImages (a production stack); remove the opt-out.");
        else if (check !== MODEL_STORE_CHECK.verified && check !== MODEL_STORE_CHECK.skipped) report(`unknown ${MODEL_STORE_CHECK_LABEL} value "${check}".`);
        const store = labelsOf(props).get(ENCRYPTED_STORE_LABEL);
        if (!store) return report(`Ollama has no ${ENCRYPTED_STORE_LABEL} label naming its encrypted model store.`);
        const modelsDir = modelsDirOf(props.envs);
        if (!within(modelsDir, store)) report(`Ollama keeps models in ${modelsDir}, outside the labelled encrypted store ${store}.`);
        const mounts = hostMountsOf(props);
        const storeMount = mounts.find((m) => m.target === store);
        if (!storeMount) report(`nothing is bind-mounted at the labelled encrypted store ${store}: models would land in the container's writable layer.`);
        else if (!storeMount.source.startsWith("/")) report(`the encrypted store's host path "${storeMount.source}" is not absolute.`);
        else if (hostPathPrefixes.length && !hostPathPrefixes.some((p) => within(storeMount.source, p))) {
            report(`the model store's host path ${storeMount.source} is not under an encrypted volume (${hostPathPrefixes.join(", ")}).`);
        }
        // Anything mounted between the store and the models directory would hide the encrypted store.
        const shadows = [
            ...listOf(props.mounts).filter((m) => str(m?.type) !== "bind").map((m) => str(m?.target)),
            ...mounts.filter((m) => m !== storeMount).map((m) => m.target),
            ...listOf(props.volumes).filter((v) => !str(v?.hostPath)).map((v) => str(v?.containerPath)),
            ...Object.keys(props.tmpfs && typeof props.tmpfs === "object" ? props.tmpfs : {}),
        ].filter((t) => t && within(modelsDir, t) && t.length > store.length);
        for (const t of shadows) report(`a mount at ${t} hides the encrypted model store (${store}) from Ollama.`);
    }),
};
