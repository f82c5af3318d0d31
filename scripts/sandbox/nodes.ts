/**
 * The GPU node pool in the sandbox (ollama.nodes): per node a stub Ollama on 127.0.0.1 with the
 * node's models and its own request log, and in front of it the node's real enclave proxy (nginx)
 * running the config renderEnclaveConf renders for the containers, on a free 127.0.0.1 port
 * instead of the node's Tailscale address. The PKI adds the gateway's client certificate and one
 * enclave certificate per node to the state dir (kept across runs, like device certificates).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { certIdentity } from "../../components/certs";
import { GATEWAY_CLIENT_CN } from "../../components/pki";
import type { NodePoolSettings, StackConfig } from "../../components/config";
import { renderEnclaveConf } from "../../components/gateway/enclave";
import { deriveNodePool, deriveNodeSpec, NODE_TLS_NAME, type NodePool } from "../../components/gateway/node-spec";
import type { Upstream } from "../../components/gateway/spec";
import { prepareNginx, waitForListener } from "./gateway";
import type { StubServer } from "./listen";
import { issueCert, type CertPair } from "./pki";
import { SandboxError, type Supervisor } from "./processes";
import { startStubOllama } from "./stub-ollama";

/** One running node: its enclave, its stub Ollama (which a test may stop and start again). */
export interface SandboxNode {
    readonly name: string;
    readonly models: readonly string[];
    /** `https://127.0.0.1:<port>`: the enclave proxy (mTLS, gateway certificate only). */
    readonly enclaveUrl: string;
    readonly enclavePid: number;
    /** `http://127.0.0.1:<port>`: the node's stub Ollama, direct. */
    readonly ollama: string;
    /** JSON lines, one per request the node's stub Ollama received. */
    readonly ollamaLog: string;
    /** Close the node's stub Ollama, cutting open connections (a GPU host going away). */
    stopOllama(): Promise<void>;
    /** Start the stub again on the same port. */
    startOllama(): Promise<void>;
}

export interface SandboxNodePool {
    readonly nodes: readonly SandboxNode[];
    /** The gateway's client certificate towards the enclaves. */
    readonly gatewayClient: CertPair;
    /** What the gateway spec needs: enclave addresses, client TLS files, the router listener. */
    readonly nodePool: NodePool;
    close(): Promise<void>;
}

const DAY_MS = 86_400_000;

/** Keep a pair from an earlier run; issue it when either file is missing. */
function ensurePair(pair: CertPair, issue: () => void): void {
    if (!existsSync(pair.cert) || !existsSync(pair.key)) issue();
}

export async function startSandboxNodes(
    supervisor: Supervisor,
    cfg: StackConfig,
    pool: NodePoolSettings,
    stateDir: string,
    ca: CertPair,
    opts: { readonly router: Upstream; readonly tokenIntervalMs?: number; readonly tokens?: number; readonly workerUser?: string; readonly freePort: () => Promise<number> },
): Promise<SandboxNodePool> {
    const dir = join(stateDir, "nodes");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const notAfter = (days: number) => new Date(Date.now() + days * DAY_MS);
    const algorithm = cfg.pki.keyAlgorithm;
    const gatewayClient = { cert: join(dir, "gateway-client.crt"), key: join(dir, "gateway-client.key") };
    ensurePair(gatewayClient, () => issueCert(ca, gatewayClient, { commonName: GATEWAY_CLIENT_CN, usage: "client", notAfter: notAfter(cfg.pki.clientCertValidityDays), algorithm }));
    const gatewayFingerprint = certIdentity(readFileSync(gatewayClient.cert, "utf8")).sha1;

    const nodes: SandboxNode[] = [];
    const stubs = new Map<string, StubServer>();
    const close = async () => {
        for (const s of stubs.values()) await s.close();
        stubs.clear();
    };
    try {
        for (const n of pool.nodes) {
            const nodeDir = join(dir, n.name);
            mkdirSync(join(nodeDir, "run"), { recursive: true, mode: 0o700 });
            const pair = { cert: join(nodeDir, "enclave.crt"), key: join(nodeDir, "enclave.key") };
            ensurePair(pair, () => issueCert(ca, pair, { commonName: n.name, usage: "server", dnsNames: [n.name, NODE_TLS_NAME], ipAddresses: ["127.0.0.1"], notAfter: notAfter(cfg.pki.serverCertValidityDays), algorithm }));
            const ollamaLog = join(stateDir, "logs", `ollama-${n.name}.jsonl`);
            writeFileSync(ollamaLog, "", { mode: 0o600 });
            const stubOptions = { logFile: ollamaLog, tokenIntervalMs: opts.tokenIntervalMs, tokens: opts.tokens, models: n.models };
            const first = await startStubOllama(stubOptions);
            stubs.set(n.name, first);
            const listen = { host: "127.0.0.1", port: await opts.freePort() };
            const spec = deriveNodeSpec(n.name, { maxBodyKiB: cfg.gateway.maxBodyKiB, upstreamTimeoutSeconds: cfg.gateway.upstreamTimeoutSeconds }, gatewayFingerprint, {
                listen,
                tlsFiles: { cert: pair.cert, key: pair.key, ca: ca.cert },
                ollama: { host: first.host, port: first.port },
                runtimeDir: join(nodeDir, "run"),
                accessLog: join(stateDir, "logs", `enclave-${n.name}-access.log`),
                errorLog: join(stateDir, "logs", `enclave-${n.name}-error.log`),
                workerUser: opts.workerUser,
            });
            const prepared = prepareNginx(renderEnclaveConf(spec), join(nodeDir, "nginx.conf"), spec.runtimeDir, spec.errorLog);
            const child = await supervisor.spawn(`enclave ${n.name}`, prepared.command, prepared.args, { logFile: join(stateDir, "logs", `enclave-${n.name}.out`) });
            await waitForListener(listen.host, listen.port, child.running);
            nodes.push({
                name: n.name,
                models: n.models,
                enclaveUrl: `https://${listen.host}:${listen.port}`,
                enclavePid: child.pid,
                ollama: first.url,
                ollamaLog,
                stopOllama: async () => {
                    await stubs.get(n.name)?.close();
                    stubs.delete(n.name);
                },
                startOllama: async () => {
                    if (stubs.has(n.name)) throw new SandboxError(`node ${n.name}: its stub Ollama is already running`);
                    stubs.set(n.name, await startStubOllama({ ...stubOptions, port: first.port }));
                },
            });
        }
    } catch (e) {
        await close();
        throw e;
    }
    const enclaves = Object.fromEntries(nodes.map((n) => [n.name, { host: "127.0.0.1", port: Number(new URL(n.enclaveUrl).port) }]));
    return { nodes, gatewayClient, nodePool: deriveNodePool(pool, enclaves, { ...gatewayClient, ca: ca.cert }, opts.router), close };
}
