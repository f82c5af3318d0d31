/**
 * A three-GPU-node stack for the sandbox (e2e tests, `npm run soak:nodes`, `npm run bench:gateway`):
 * gpu-a serves llama3.2:3b and qwen2.5-coder:7b, gpu-b llama3.2:3b, gpu-c llama3.1:70b. The
 * Tailscale addresses are never bound: the sandbox runs every enclave on 127.0.0.1.
 */
import { loadStackConfig, type StackConfig } from "../../components/config";

export const POOL_MODELS = { shared: "llama3.2:3b", gpuAOnly: "qwen2.5-coder:7b", gpuCOnly: "llama3.1:70b" } as const;

export function nodePoolStack(opts: { readonly nodes?: readonly string[]; readonly failTimeoutSeconds?: number; readonly filter?: boolean; readonly rateLimitPerMinute?: number; readonly burst?: number } = {}): StackConfig {
    const all = [
        { name: "gpu-a", dockerHost: "ssh://deploy@gpu-a.example.com", tailscaleAddress: "100.101.1.1", models: [POOL_MODELS.shared, POOL_MODELS.gpuAOnly] },
        { name: "gpu-b", dockerHost: "ssh://deploy@gpu-b.example.com", tailscaleAddress: "100.101.1.2", models: [POOL_MODELS.shared] },
        { name: "gpu-c", dockerHost: "ssh://deploy@gpu-c.example.com", tailscaleAddress: "100.101.1.3", models: [POOL_MODELS.gpuCOnly] },
    ];
    return loadStackConfig({
        domain: "ollama.test",
        devices: [{ name: "alice", owner: "alice@example.com", groups: ["ml-eng"], tailscaleDeviceId: "nAlice0001" }],
        gateway: { listen: "loopback", rateLimitPerMinute: opts.rateLimitPerMinute ?? 100000, burst: opts.burst ?? 10000, maxConnectionsPerClient: 10000 },
        tailscale: { enabled: true },
        ollama: { gpus: "none", nodes: all.filter((n) => !opts.nodes || opts.nodes.includes(n.name)), ...(opts.failTimeoutSeconds ? { nodeFailTimeoutSeconds: opts.failTimeoutSeconds } : {}) },
        filter: { enabled: opts.filter ?? true, modelsByGroup: { "*": Object.values(POOL_MODELS) } },
    });
}
