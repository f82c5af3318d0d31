import type { ResourceValidationPolicy } from "@pulumi/policy";
import { isOllamaContainer, portsOf } from "../lib/containers";
import { TYPES, forType, str } from "../lib/policy-kit";

/** Ollama has no authentication of its own: any host socket would bypass the gateway. */
export const ollamaDisallowHostPorts: ResourceValidationPolicy = {
    name: "ollama-disallow-host-ports",
    description:
        "A container running Ollama (by role label or image) has no `ports`, no `publishAllPorts` and no host network mode. Ollama has no authentication of its own, so any host socket bypasses the gateway's mTLS, sign-in, allowlists and audit log.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Remove the port mapping; reach Ollama only through the gateway on the internal network.",
    validateResource: forType(TYPES.container, (props, args, report) => {
        if (!isOllamaContainer(props)) return args.notApplicable("not an Ollama container");
        for (const p of portsOf(props)) {
            report(`Ollama publishes container port ${p.internal} on the host (${p.ip || "every address"}:${p.external ?? "random port"}); Ollama must have no host port, only the gateway may publish.`);
        }
        if (props.publishAllPorts === true) report("Ollama sets publishAllPorts: every exposed port (11434) would be published on all host addresses.");
        if (str(props.networkMode) === "host") report("Ollama uses networkMode \"host\": its port 11434 would listen directly on the host, bypassing the gateway.");
    }),
};
