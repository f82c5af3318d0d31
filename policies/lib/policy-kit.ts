/**
 * Small helpers every rule uses: resource type tokens, typed validation with the fast type
 * filter the CrossGuard server understands, and policy config merged over the rule's defaults.
 */
import type { ResourceValidation, ResourceValidationArgs, StackValidationArgs } from "@pulumi/policy";

/** Provider type tokens the rules inspect (exact tokens from the provider schemas). */
export const TYPES = {
    container: "docker:index/container:Container",
    network: "docker:index/network:Network",
    remoteImage: "docker:index/remoteImage:RemoteImage",
    privateKey: "tls:index/privateKey:PrivateKey",
    selfSignedCert: "tls:index/selfSignedCert:SelfSignedCert",
    locallySignedCert: "tls:index/locallySignedCert:LocallySignedCert",
    entraApplication: "azuread:index/application:Application",
    entraServicePrincipal: "azuread:index/servicePrincipal:ServicePrincipal",
    tailscaleAcl: "tailscale:index/acl:Acl",
    randomBytes: "random:index/randomBytes:RandomBytes",
} as const;

export type Props = Record<string, any>;

/**
 * A validation that runs only for one resource type. The `__pulumiType` marker is what the
 * CrossGuard server (and the offline evaluator) read to skip other types without calling it.
 */
export function forType(token: string, validate: (props: Props, args: ResourceValidationArgs, report: (message: string) => void) => void): ResourceValidation {
    const fn: ResourceValidation = (args, report) => {
        if (args.type !== token) return args.notApplicable(`applies to ${token} only`);
        return validate(args.props, args, (message) => report(message));
    };
    (fn as unknown as { __pulumiType: string }).__pulumiType = token;
    return fn;
}

/**
 * The policy's config with its defaults filled in. The Pulumi CLI already applies `configSchema`
 * defaults; merging here keeps a rule correct when run without them (tests, older CLIs).
 */
export function configOf<T extends object>(args: ResourceValidationArgs | StackValidationArgs, defaults: T): T {
    const given = args.getConfig<Partial<T>>() ?? {};
    const out = { ...defaults };
    for (const [k, v] of Object.entries(given)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
    return out;
}

/** A list-valued property as an array; absent or malformed values become []. */
export function listOf<T = any>(v: unknown): T[] {
    return Array.isArray(v) ? (v as T[]) : [];
}

/** Trimmed string, or "" for anything else (comparisons must not throw on odd input). */
export function str(v: unknown): string {
    return typeof v === "string" ? v.trim() : "";
}

/** The tls provider's `allowedUses` as a lowercase set. */
export function usesOf(props: Props): Set<string> {
    return new Set(listOf(props.allowedUses).map((u) => str(u).toLowerCase()));
}

/** Certificate validity in days from the tls provider's `validityPeriodHours`; NaN if unset or odd. */
export function validityDaysOf(props: Props): number {
    const hours = Number(props.validityPeriodHours);
    return Number.isFinite(hours) ? hours / 24 : NaN;
}

/** A nested block as an object: stack-export outputs may hold it as a one-element list. */
export function blockOf(v: unknown): Props {
    const b = Array.isArray(v) ? v[0] : v;
    return b && typeof b === "object" ? (b as Props) : {};
}
