/**
 * Rules that span several keys, and the checks of other namespaces' config (unknown namespaces,
 * plain-text provider credentials). They run only on input that passed the schema.
 */
import type { z } from "zod";
import { closestKnown, keyPath, type ConfigProblem } from "./problems";
import { DEFAULT_IMAGES, DIGEST_PATTERN, GUID_PATTERN, PROJECT, type configSchema } from "./schema";
import { modelStoreSettings, nodePoolSettings, usesSessionStore } from "./settings";

const TAILSCALE_V4 = { base: (100 << 24) | (64 << 16), maskBits: 10 };
/** True for addresses in Tailscale's ranges: 100.64.0.0/10 and fd7a:115c:a1e0::/48. */
export function isTailscaleAddress(addr: string): boolean {
    const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
    if (v4) {
        const octets = v4.slice(1).map(Number);
        if (octets.some((o) => o > 255)) return false;
        const n = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
        const mask = (~0 << (32 - TAILSCALE_V4.maskBits)) >>> 0;
        return (n & mask) >>> 0 === TAILSCALE_V4.base >>> 0;
    }
    return /^fd7a:115c:a1e0:/i.test(addr);
}

/** Rules that span several keys; they run only on input that passed the schema. */
export function crossFieldProblems(c: z.output<typeof configSchema>): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    const add = (path: PropertyKey[], message: string) => out.push({ path: keyPath(path), message });

    const seen = new Map<string, number>();
    const seenNodeIds = new Map<string, number>();
    c.devices.forEach((d, i) => {
        const first = seen.get(d.name);
        if (first !== undefined) add(["devices", i, "name"], `duplicate device name "${d.name}" (also devices[${first}]); names must be unique`);
        else seen.set(d.name, i);
        if (d.tailscaleDeviceId !== undefined) {
            // Two entries tagging the same node would fight over its tags; one would survive a revocation.
            const firstNode = seenNodeIds.get(d.tailscaleDeviceId);
            if (firstNode !== undefined) add(["devices", i, "tailscaleDeviceId"], `duplicate Tailscale node id "${d.tailscaleDeviceId}" (also devices[${firstNode}]); each device is one node`);
            else seenNodeIds.set(d.tailscaleDeviceId, i);
        }
        if (c.tailscale.enabled && !d.tailscaleDeviceId) add(["devices", i, "tailscaleDeviceId"], "is required when tailscale.enabled is true (the node id from the Tailscale admin console)");
    });

    const id = c.identity;
    if (id.provider === "entra" && !id.tenantId) add(["identity", "tenantId"], "is required when identity.provider is \"entra\"");
    if (id.provider === "oidc") {
        if (!id.issuerUrl) add(["identity", "issuerUrl"], "is required when identity.provider is \"oidc\" (e.g. https://login.example.com/realms/main)");
        if (!id.clientId) add(["identity", "clientId"], "is required when identity.provider is \"oidc\"");
        if (c.oidcClientSecret === undefined) add(["oidcClientSecret"], "is required when identity.provider is \"oidc\"; set it with `pulumi config set --secret oidcClientSecret <value>`");
    }
    if (id.provider === "entra") {
        // The program creates the app registration: its issuer, client id and secret are outputs, not inputs.
        if (id.issuerUrl) add(["identity", "issuerUrl"], "only applies to identity.provider \"oidc\"; with \"entra\" the issuer is derived from identity.tenantId");
        if (id.clientId) add(["identity", "clientId"], "only applies to identity.provider \"oidc\"; with \"entra\" the program creates the app registration and uses its client id");
        if (c.oidcClientSecret !== undefined) add(["oidcClientSecret"], "only applies to identity.provider \"oidc\"; with \"entra\" the program creates and rotates the client secret");
        id.allowedGroups.forEach((g, i) => {
            if (!GUID_PATTERN.test(g)) add(["identity", "allowedGroups", i], `must be an Entra group object id (a GUID such as 6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b), not a display name (got "${g}")`);
        });
    }
    if (id.provider !== "none") {
        if (!id.allowedGroups.length && !id.allowedEmailDomains.length && !id.allowedEmails.length) {
            add(["identity", "allowedGroups"], `identity.provider is "${id.provider}": list at least one of identity.allowedGroups, identity.allowedEmailDomains or identity.allowedEmails (an empty allowlist would admit every account the IdP can sign in)`);
        }
        if (id.cookieRefreshMinutes >= id.cookieExpireHours * 60) {
            add(["identity", "cookieRefreshMinutes"], `must be less than identity.cookieExpireHours (${id.cookieExpireHours} h = ${id.cookieExpireHours * 60} min), or sessions expire before they are refreshed`);
        }
    }
    if (id.provider !== "none" && id.image !== undefined && !/:[^/@]*-alpine(@sha256:[a-f0-9]{64})?$/.test(id.image)) {
        add(["identity", "image"], `must be an -alpine variant of oauth2-proxy, e.g. quay.io/oauth2-proxy/oauth2-proxy:v7.15.6-alpine: its healthcheck runs wget in the container, and the distroless image has no HTTP client (got "${id.image}")`);
    }
    if (id.provider === "entra" && id.sessionStore === "cookie") {
        add(["identity", "sessionStore"], "\"cookie\" cannot hold an Entra session: the ID, access and refresh tokens with group claims exceed one 4 KB cookie, and the gateway passes only the first Set-Cookie of a session refresh; use \"redis\"");
    }
    if (id.sessionStoreImage !== undefined && (id.provider === "none" || id.sessionStore !== "redis")) {
        add(["identity", "sessionStoreImage"], "only applies with identity.provider entra or oidc and identity.sessionStore \"redis\"");
    }
    if (c.gateway.kind === "haproxy" && id.provider !== "none") {
        add(["identity", "provider"], `"${id.provider}" needs the nginx gateway (HAProxy has no auth_request); use gateway.kind: nginx, or identity.provider: none with device certificates and Tailscale`);
    }

    const ts = c.tailscale;
    if (c.gateway.listen === "tailscale" && !ts.enabled) add(["gateway", "listen"], "\"tailscale\" needs tailscale.enabled: true; use \"loopback\" otherwise");
    if (c.gateway.listen === "tailscale" && ts.enabled && !ts.serverAddress && !ts.serverHostname) {
        add(["tailscale", "serverAddress"], "gateway.listen is \"tailscale\": give serverAddress (the server's 100.x address) or serverHostname to look it up");
    }
    if (ts.serverAddress !== undefined && !isTailscaleAddress(ts.serverAddress)) {
        add(["tailscale", "serverAddress"], `must be a Tailscale address in 100.64.0.0/10 or fd7a:115c:a1e0::/48 (got "${ts.serverAddress}")`);
    }
    if (ts.serverTag === ts.clientTag) add(["tailscale", "clientTag"], "must differ from tailscale.serverTag");
    if (ts.deployerTag !== undefined) {
        const pool = nodePoolSettings(c);
        const applied = [ts.serverTag, ts.clientTag, ...(pool ? [pool.nodeTag] : [])];
        if (applied.includes(ts.deployerTag)) add(["tailscale", "deployerTag"], `must differ from the tags the stack applies (${applied.join(", ")}): the deployer tag owns them and is granted nothing`);
        if (!ts.enabled) add(["tailscale", "deployerTag"], "only applies with tailscale.enabled: true");
    }
    if (ts.overwriteExistingAcl && !ts.manageAcl) add(["tailscale", "overwriteExistingAcl"], "only applies with tailscale.manageAcl: true");
    if (ts.revokedDevices.length && !ts.enabled) add(["tailscale", "revokedDevices"], "only applies with tailscale.enabled: true");
    const revokedNames = new Map<string, number>();
    const revokedIds = new Map<string, number>();
    ts.revokedDevices.forEach((r, i) => {
        const enrolled = c.devices.findIndex((d) => d.name === r.name);
        if (enrolled >= 0) add(["tailscale", "revokedDevices", i, "name"], `"${r.name}" is still enrolled (devices[${enrolled}]); remove it from devices to revoke it`);
        const enrolledNode = c.devices.findIndex((d) => d.tailscaleDeviceId === r.tailscaleDeviceId);
        if (enrolledNode >= 0) add(["tailscale", "revokedDevices", i, "tailscaleDeviceId"], `node "${r.tailscaleDeviceId}" is enrolled as devices[${enrolledNode}]; a node cannot be both authorised and de-authorised`);
        for (const [seenBefore, key, value] of [[revokedNames, "name", r.name], [revokedIds, "tailscaleDeviceId", r.tailscaleDeviceId]] as const) {
            const first = seenBefore.get(value);
            if (first !== undefined) add(["tailscale", "revokedDevices", i, key], `duplicate ${key} "${value}" (also tailscale.revokedDevices[${first}])`);
            else seenBefore.set(value, i);
        }
    });
    if (ts.logstream !== "off" && !ts.logstreamUrl) add(["tailscale", "logstreamUrl"], `is required when tailscale.logstream is "${ts.logstream}"`);
    if (ts.logstream !== "off" && c.tailscaleLogstreamToken === undefined) {
        add(["tailscaleLogstreamToken"], `is required when tailscale.logstream is "${ts.logstream}"; set it with \`pulumi config set --secret tailscaleLogstreamToken <value>\``);
    }

    if (c.requirePinnedImages) {
        const images: [PropertyKey[], string][] = [
            [["ollama", "image"], c.ollama.image],
            [["gateway", "image"], c.gateway.image ?? DEFAULT_IMAGES[c.gateway.kind]],
        ];
        if (id.provider !== "none") images.push([["identity", "image"], id.image ?? DEFAULT_IMAGES.oauth2Proxy]);
        if (usesSessionStore(c)) images.push([["identity", "sessionStoreImage"], id.sessionStoreImage ?? DEFAULT_IMAGES.sessionStore]);
        // The probe checks the stack's volumes too, which a pinned stack may not waive.
        images.push([["ollama", "modelStore", "probeImage"], modelStoreSettings(c).probeImage]);
        for (const [path, ref] of images) {
            if (!DIGEST_PATTERN.test(ref)) add(path, `must be pinned by digest (repo:tag@sha256:<64 hex>) because requirePinnedImages is true (got "${ref}")`);
        }
    }
    if (c.requirePinnedImages && c.docker.allowUnencryptedVolumes) {
        add(["docker", "allowUnencryptedVolumes"], "cannot be true when requirePinnedImages is true (a production stack keeps its TLS keys and config only on encrypted volumes); put Docker's data root on LUKS instead (docs/model-store.md)");
    }
    if (c.ollama.allowUnencryptedModels && c.ollama.modelStore?.provision) {
        add(["ollama", "allowUnencryptedModels"], "contradicts ollama.modelStore.provision (an encrypted store is being provisioned); remove one of them");
    }
    out.push(...nodeProblems(c));
    if (c.filter.enabled && !Object.keys(c.filter.modelsByGroup).length) add(["filter", "modelsByGroup"], "must list at least one group (use \"*\" for everyone)");
    return out;
}

function nodeProblems(c: z.output<typeof configSchema>): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    const add = (path: PropertyKey[], message: string) => out.push({ path: keyPath(path), message });
    const o = c.ollama;
    const pool = nodePoolSettings(c);
    if (!o.nodes || !pool) {
        for (const k of ["enclavePort", "defaultModel", "nodeFailTimeoutSeconds"] as const) if (o[k] !== undefined) add(["ollama", k], "only applies with ollama.nodes (a pool of GPU nodes)");
        if (c.tailscale.nodeTag !== undefined) add(["tailscale", "nodeTag"], "only applies with ollama.nodes (a pool of GPU nodes)");
        return out;
    }
    // Nodes are reached over the tailnet only, through the nginx gateway's upstream pool.
    if (!c.tailscale.enabled) add(["ollama", "nodes"], "needs tailscale.enabled: true (each node's enclave proxy listens only on its Tailscale address)");
    if (c.gateway.kind !== "nginx") add(["ollama", "nodes"], `needs gateway.kind: nginx (the node pool is an nginx upstream pool; got "${c.gateway.kind}")`);
    const names = new Map<string, number>();
    const addresses = new Map<string, number>();
    o.nodes.forEach((n, i) => {
        const first = names.get(n.name);
        if (first !== undefined) add(["ollama", "nodes", i, "name"], `duplicate node name "${n.name}" (also ollama.nodes[${first}]); names must be unique`);
        else names.set(n.name, i);
        if (!isTailscaleAddress(n.tailscaleAddress)) add(["ollama", "nodes", i, "tailscaleAddress"], `must be a Tailscale address in 100.64.0.0/10 or fd7a:115c:a1e0::/48 (got "${n.tailscaleAddress}")`);
        const firstAddress = addresses.get(n.tailscaleAddress);
        if (firstAddress !== undefined) add(["ollama", "nodes", i, "tailscaleAddress"], `duplicate address "${n.tailscaleAddress}" (also ollama.nodes[${firstAddress}]); each node is one tailnet machine`);
        else addresses.set(n.tailscaleAddress, i);
    });
    const served = new Set(o.nodes.flatMap((n) => n.models));
    if (o.defaultModel !== undefined && !served.has(o.defaultModel)) add(["ollama", "defaultModel"], `no node serves "${o.defaultModel}" (served: ${[...served].join(", ")})`);
    if (pool.nodeTag === c.tailscale.serverTag || pool.nodeTag === c.tailscale.clientTag) add(["tailscale", "nodeTag"], `must differ from tailscale.serverTag and tailscale.clientTag (got "${pool.nodeTag}")`);
    if (pool.enclavePort === 11434 || pool.enclavePort === 22) add(["ollama", "enclavePort"], `must not be ${pool.enclavePort} (Ollama's own port and SSH stay closed on nodes)`);
    return out;
}

/**
 * Provider config keys that hold credentials. Pulumi passes `tailscale:*` keys to the Tailscale
 * provider directly; a stack file may carry these only encrypted (`secure:`), never in plain text.
 */
export const PROVIDER_CREDENTIAL_KEYS = ["tailscale:apiKey", "tailscale:oauthClientSecret"] as const;

/**
 * Config namespaces besides this project's that a stack may set: the providers the program uses
 * (and Pulumi's own). Any other namespace is refused, because a misspelled project namespace
 * (`zero-trust-olama:identity`) would otherwise be skipped and switch a control off.
 */
export const PROVIDER_NAMESPACES = ["docker", "tailscale", "azuread", "tls", "random", "pulumi"] as const;

/** One problem per key whose namespace is neither this project's nor a provider's, with the closest known one. */
export function namespaceProblems(fullKeys: readonly string[]): ConfigProblem[] {
    const known = [PROJECT, ...PROVIDER_NAMESPACES];
    const out: ConfigProblem[] = [];
    for (const fullKey of fullKeys) {
        const sep = fullKey.indexOf(":");
        if (sep < 0) continue; // no namespace: Pulumi reads it as the project's
        const ns = fullKey.slice(0, sep);
        if ((known as readonly string[]).includes(ns)) continue;
        const guess = closestKnown(ns, known);
        const hint = guess ? `did you mean "${guess}${fullKey.slice(sep)}"? ` : "";
        out.push({ path: fullKey, message: `unknown config namespace "${ns}" (${hint}keys must be ${PROJECT}:<key> or belong to a provider this program uses: ${PROVIDER_NAMESPACES.join(", ")})` });
    }
    return out;
}

/** Other-namespace config as the program sees it: which keys are set and which are secrets. */
export interface ProviderConfigView {
    /** Full keys (`namespace:key`) set outside this project's namespace. */
    readonly keys: readonly string[];
    /** True when Pulumi holds the key's value as a secret (`secure:` in the stack file). */
    readonly isSecret: (fullKey: string) => boolean;
}

/** One problem per provider credential that is set in plain text. */
export function plaintextCredentialProblems(view: ProviderConfigView): ConfigProblem[] {
    const env: Record<(typeof PROVIDER_CREDENTIAL_KEYS)[number], string> = { "tailscale:apiKey": "TAILSCALE_API_KEY", "tailscale:oauthClientSecret": "TAILSCALE_OAUTH_CLIENT_SECRET" };
    return PROVIDER_CREDENTIAL_KEYS.filter((k) => view.keys.includes(k) && !view.isSecret(k)).map((k) => ({
        path: k,
        message: `is a credential and must not be plain text in the stack file; set it with \`pulumi config set --secret ${k} <value>\` or the ${env[k]} environment variable (and rotate the exposed value)`,
    }));
}

