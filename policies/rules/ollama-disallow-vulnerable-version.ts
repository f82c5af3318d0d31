import type { ResourceValidationPolicy } from "@pulumi/policy";
import { isImageId, isOllamaImageRef, ollamaTagVersion } from "../lib/containers";
import { OLLAMA_ADVISORIES, type OllamaAdvisory } from "../lib/ollama-advisories";
import { TYPES, configOf, forType, str } from "../lib/policy-kit";

type Version = [number, number, number];
const parse = (v: string): Version => v.split(".").map(Number) as Version;
const cmp = (a: Version, b: Version) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

interface Config {
    /** Also report advisories whose entry says why the stack's design closes them. */
    includeAccepted: boolean;
}
const DEFAULTS: Config = { includeAccepted: false };

/** The advisories whose affected range holds `version`. */
export function advisoriesAffecting(version: Version): OllamaAdvisory[] {
    return OLLAMA_ADVISORIES.filter((a) => a.noFixedRelease || (a.fixed !== undefined ? cmp(version, parse(a.fixed)) < 0 : cmp(version, parse(a.lastAffected!)) <= 0));
}

function check(ref: string, config: Config, report: (message: string) => void): void {
    const version = ollamaTagVersion(ref);
    if (!version) return;
    for (const a of advisoriesAffecting(version)) {
        if (a.acceptedBecause !== undefined && !config.includeAccepted) continue;
        const range = a.noFixedRelease ? "every release: no fixed release" : a.fixed !== undefined ? `before ${a.fixed}` : `through ${a.lastAffected}`;
        report(`Ollama image "${ref}" (${version.join(".")}) is affected by ${a.id} (${range}): ${a.summary}; reached through ${a.via.join(", ")}.${a.acceptedBecause ? ` Accepted: ${a.acceptedBecause}.` : ""}`);
    }
}

export const ollamaDisallowVulnerableVersion: ResourceValidationPolicy = {
    name: "ollama-disallow-vulnerable-version",
    description:
        "The Ollama image's release is outside every affected range of a published Ollama advisory (policies/lib/ollama-advisories.ts). The gateway refuses the model-management routes most of them need, but a vulnerable server is one gateway mistake away from being exploited. Advisory by default; set it to mandatory in policy config to block such a pin. An entry that records why this stack's design closes it (no testable fixed release, route refused) is reported only with includeAccepted: true. Tags that name no release (latest, digest only) are not judged.",
    enforcementLevel: "advisory",
    severity: "high",
    remediationSteps: "Pin ollama.image to a release after the advisory's affected range (see the advisory's source) and add its digest.",
    configSchema: {
        properties: {
            includeAccepted: { type: "boolean", default: false, description: "Also report advisories whose entry records why the stack's design closes them." },
        },
    },
    validateResource: [
        forType(TYPES.remoteImage, (props, args, report) => {
            if (!isOllamaImageRef(str(props.name))) return args.notApplicable("not an Ollama image");
            check(str(props.name), configOf(args, DEFAULTS), report);
        }),
        forType(TYPES.container, (props, args, report) => {
            const ref = str(props.image);
            // A container started from an image id is judged through its RemoteImage.
            if (isImageId(ref) || !isOllamaImageRef(ref)) return args.notApplicable("not started from an Ollama image reference");
            check(ref, configOf(args, DEFAULTS), report);
        }),
    ],
};
