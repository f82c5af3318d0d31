import type { ResourceValidationPolicy } from "@pulumi/policy";
import { isOllamaContainer } from "../lib/containers";
import { TYPES, forType, listOf, str } from "../lib/policy-kit";

/** AMD ROCm GPUs are passed as these device nodes rather than through `gpus`. */
const GPU_DEVICE_NODES = /^\/dev\/(kfd|dri)(\/|$)/;

export const ollamaRequireGpuReservation: ResourceValidationPolicy = {
    name: "ollama-require-gpu-reservation",
    description:
        "The Ollama container reserves GPUs (`gpus`, a GPU device request, or the ROCm /dev/kfd and /dev/dri nodes). CPU inference is fine for a dev stack but too slow to serve users, so production previews should flag it. Advisory: it is a capacity concern, not an exposure.",
    enforcementLevel: "advisory",
    severity: "low",
    remediationSteps: "Set ollama.gpus to \"all\" or a GPU count in the stack config.",
    validateResource: forType(TYPES.container, (props, args, report) => {
        if (!isOllamaContainer(props)) return args.notApplicable("not an Ollama container");
        const gpus = str(props.gpus);
        const viaGpus = gpus !== "" && gpus !== "0";
        const viaRequest = listOf(props.deviceRequests).some((r) => listOf(r?.capabilities).flat().map(str).includes("gpu") || str(r?.driver) === "nvidia");
        const viaDevices = listOf(props.devices).some((d) => GPU_DEVICE_NODES.test(str(d?.hostPath)));
        if (!viaGpus && !viaRequest && !viaDevices) report("Ollama reserves no GPU, so inference runs on the CPU.");
    }),
};
