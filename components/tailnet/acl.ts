/**
 * The tailnet policy (Tailscale ACL) for the gateway, rendered as plain data from config.
 *
 * Shape (a subset of the Tailscale policy file format, https://tailscale.com/kb/1337/policy-syntax):
 * ```json
 * {
 *   "tagOwners": { "<serverTag>": ["autogroup:admin"], "<clientTag>": ["autogroup:admin"] },
 *   "grants": [
 *     { "src": ["<clientTag>", "<allowed user email>", ...], "dst": ["<serverTag>"], "ip": ["tcp:<gateway port>"] }
 *   ],
 *   "tests": [
 *     { "src": "<clientTag>", "accept": ["<serverTag>:<gateway port>"], "deny": ["<serverTag>:22", "<serverTag>:11434", ...] },
 *     { "src": "<allowed user email>", "accept": [...], "deny": [...] }
 *   ]
 * }
 * ```
 * - `tagOwners`: who may apply the server and client tags (never `*`); with a deployer tag, that
 *   tag owns them too and the configured owners own it.
 * - `grants`: exactly one, from the client tag and the listed users to the server tag, TCP on the
 *   gateway port only. No other grant names the server tag; no `*` source, no `*` destination and
 *   no port range, so anything not granted here (Ollama's port, SSH, ...) is denied by Tailscale's
 *   default deny.
 * - `tests`: Tailscale runs these whenever the policy is saved and rejects the policy if one
 *   fails, so an enrolled client provably reaches the gateway port and provably cannot reach
 *   Ollama's port or SSH on the server.
 *
 * The same document is applied whole (`tailscale.manageAcl: true`) or handed to an administrator
 * to merge into the tailnet's existing policy (`manageAcl: false`). The policy pack checks this
 * shape.
 */
import { OLLAMA_PORT } from "../ollama";

/** One grant: `src` may open `ip` (proto:port) connections to `dst`. */
export interface TailnetGrant {
    readonly src: readonly string[];
    readonly dst: readonly string[];
    readonly ip: readonly string[];
}

/** One policy test: from `src`, every `accept` destination is reachable and every `deny` one is not. */
export interface TailnetPolicyTest {
    readonly src: string;
    readonly accept: readonly string[];
    readonly deny: readonly string[];
}

/** The rendered tailnet policy document (JSON-serialisable). */
export interface TailnetPolicy {
    readonly tagOwners: Readonly<Record<string, readonly string[]>>;
    readonly grants: readonly TailnetGrant[];
    readonly tests: readonly TailnetPolicyTest[];
}

export interface TailnetPolicyInput {
    /** Tag the gateway host carries, e.g. tag:ai-server. */
    readonly serverTag: string;
    /** Tag every enrolled client device carries, e.g. tag:ai-client. */
    readonly clientTag: string;
    /** The gateway's published TCP port: the only port granted on the server. */
    readonly gatewayPort: number;
    /** Users (emails) whose own untagged devices may also reach the gateway port. */
    readonly allowedUsers: readonly string[];
    /** Who may apply both tags, e.g. ["autogroup:admin"]. */
    readonly tagOwners: readonly string[];
    /**
     * The tag of the OAuth client that deploys the stack (tailscale.deployerTag). Keys an OAuth
     * client creates must carry its own tags or tags those tags own, so this tag owns the server,
     * client and node tags, and the tagOwners own it. It is granted nothing.
     */
    readonly deployerTag?: string;
    /** ollama.nodes: the GPU nodes' tag and enclave port; absent for a single-node stack. */
    readonly nodes?: TailnetNodePool;
}

/** The GPU node pool as the tailnet policy sees it. */
export interface TailnetNodePool {
    /** Tag every GPU node carries, e.g. tag:ai-node. */
    readonly tag: string;
    /** The enclave proxy's port: the only port granted on the nodes, and only to the gateway. */
    readonly enclavePort: number;
}

/** SSH: the port an attacker on the tailnet would try first. */
const SSH_PORT = 22;

/**
 * Ports the policy tests prove closed on the server: SSH, Ollama's own port, and the port next to
 * the gateway's (so a grant that grew into a range would fail the tests). The gateway port itself
 * is never listed (a gateway published on 11434 is the gateway, not Ollama).
 */
export function deniedTestPorts(gatewayPort: number): number[] {
    const neighbour = gatewayPort === 65535 ? gatewayPort - 1 : gatewayPort + 1;
    return [...new Set([SSH_PORT, OLLAMA_PORT, neighbour])].filter((p) => p !== gatewayPort).sort((a, b) => a - b);
}

/** Render the tailnet policy. Pure; input is assumed validated by the config module. */
export function renderTailnetPolicy(input: TailnetPolicyInput): TailnetPolicy {
    const sources = [input.clientTag, ...new Set(input.allowedUsers)];
    const accept = [`${input.serverTag}:${input.gatewayPort}`];
    const deny = deniedTestPorts(input.gatewayPort).map((p) => `${input.serverTag}:${p}`);
    const owners = stackTagOwners(input);
    const policy: TailnetPolicy = {
        tagOwners: { [input.serverTag]: owners, [input.clientTag]: owners, ...(input.deployerTag ? { [input.deployerTag]: [...new Set(input.tagOwners)] } : {}) },
        grants: [{ src: sources, dst: [input.serverTag], ip: [`tcp:${input.gatewayPort}`] }],
        tests: sources.map((src) => ({ src, accept, deny })),
    };
    const withPool = input.nodes ? withNodePool(policy, input, input.nodes) : policy;
    return input.deployerTag ? withDeployerLimits(withPool, input.deployerTag) : withPool;
}

/** Owners of the tags the stack applies: the configured owners, plus the deployer tag when there is one. */
function stackTagOwners(input: TailnetPolicyInput): string[] {
    return [...new Set([...input.tagOwners, ...(input.deployerTag ? [input.deployerTag] : [])])];
}

/**
 * The deployer tag only owns tags; a machine carrying it (the OAuth client's own keys could make
 * one) reaches nothing: a test proves it is denied every destination the other tests accept.
 */
function withDeployerLimits(policy: TailnetPolicy, deployerTag: string): TailnetPolicy {
    const reachable = [...new Set(policy.tests.flatMap((t) => t.accept))];
    return { ...policy, tests: [...policy.tests, { src: deployerTag, accept: [], deny: reachable }] };
}

/**
 * GPU nodes: only the gateway host (server tag) may open the enclave port on node-tagged machines.
 * Tests prove the gateway reaches each enclave, cannot reach a node's SSH or Ollama port, and
 * that no client source reaches an enclave directly.
 */
function withNodePool(policy: TailnetPolicy, input: TailnetPolicyInput, nodes: TailnetNodePool): TailnetPolicy {
    const enclave = `${nodes.tag}:${nodes.enclavePort}`;
    const closed = deniedTestPorts(nodes.enclavePort).map((p) => `${nodes.tag}:${p}`);
    return {
        tagOwners: { ...policy.tagOwners, [nodes.tag]: stackTagOwners(input) },
        grants: [...policy.grants, { src: [input.serverTag], dst: [nodes.tag], ip: [`tcp:${nodes.enclavePort}`] }],
        tests: [...policy.tests.map((t) => ({ ...t, deny: [...t.deny, enclave] })), { src: input.serverTag, accept: [enclave], deny: closed }],
    };
}

/** The policy as the JSON text the Tailscale API (and an administrator) takes. */
export function tailnetPolicyJson(policy: TailnetPolicy): string {
    return JSON.stringify(policy, null, 2) + "\n";
}
