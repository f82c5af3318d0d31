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
import { startStubOllama, type StubOllamaOptions } from "./stub-ollama";

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

/** The enclaves of a pool (and the gateway's client certificate towards them), running. */
export interface SandboxEnclaves {
    /** The gateway's client certificate towards the enclaves. */
    readonly gatewayClient: CertPair;
    /** Per node, in pool order: where its enclave listens and the enclave's pid. */
    readonly enclaves: readonly { readonly name: string; readonly listen: Upstream; readonly pid: number }[];
    /** What the gateway spec needs: enclave addresses, client TLS files, the router listener. */
    readonly nodePool: NodePool;
}

export interface EnclaveOptions {
    /** Where the gateway's pool router listens. */
    readonly router: Upstream;
    /** The Ollama the enclave of `node` proxies to. */
    readonly ollamaOf: (node: string) => Upstream;
    readonly workerUser?: string;
    readonly freePort: () => Promise<number>;
}

/**
 * Per node of `pool` the node's real enclave proxy (nginx running renderEnclaveConf's config) on a
 * free 127.0.0.1 port, in front of `ollamaOf(node)`. Certificates (the gateway's client
 * certificate, one enclave certificate per node) go to `<stateDir>/nodes`, kept across runs;
 * logs to `<stateDir>/logs`.
 */
export async function startEnclaves(supervisor: Supervisor, cfg: StackConfig, pool: NodePoolSettings, stateDir: string, ca: CertPair, opts: EnclaveOptions): Promise<SandboxEnclaves> {
    const dir = join(stateDir, "nodes");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    mkdirSync(join(stateDir, "logs"), { recursive: true, mode: 0o700 });
    const notAfter = (days: number) => new Date(Date.now() + days * DAY_MS);
    const algorithm = cfg.pki.keyAlgorithm;
    const gatewayClient = { cert: join(dir, "gateway-client.crt"), key: join(dir, "gateway-client.key") };
    ensurePair(gatewayClient, () => issueCert(ca, gatewayClient, { commonName: GATEWAY_CLIENT_CN, usage: "client", notAfter: notAfter(cfg.pki.clientCertValidityDays), algorithm }));
    const gatewayFingerprint = certIdentity(readFileSync(gatewayClient.cert, "utf8")).sha1;
    const enclaves: SandboxEnclaves["enclaves"][number][] = [];
    for (const n of pool.nodes) {
        const nodeDir = join(dir, n.name);
        mkdirSync(join(nodeDir, "run"), { recursive: true, mode: 0o700 });
        const pair = { cert: join(nodeDir, "enclave.crt"), key: join(nodeDir, "enclave.key") };
        ensurePair(pair, () => issueCert(ca, pair, { commonName: n.name, usage: "server", dnsNames: [n.name, NODE_TLS_NAME], ipAddresses: ["127.0.0.1"], notAfter: notAfter(cfg.pki.serverCertValidityDays), algorithm }));
        const listen = { host: "127.0.0.1", port: await opts.freePort() };
        const spec = deriveNodeSpec(n.name, { maxBodyKiB: cfg.gateway.maxBodyKiB, upstreamTimeoutSeconds: cfg.gateway.upstreamTimeoutSeconds }, gatewayFingerprint, {
            listen,
            tlsFiles: { cert: pair.cert, key: pair.key, ca: ca.cert },
            ollama: opts.ollamaOf(n.name),
            runtimeDir: join(nodeDir, "run"),
            accessLog: join(stateDir, "logs", `enclave-${n.name}-access.log`),
            errorLog: join(stateDir, "logs", `enclave-${n.name}-error.log`),
            workerUser: opts.workerUser,
        });
        const prepared = prepareNginx(renderEnclaveConf(spec), join(nodeDir, "nginx.conf"), spec.runtimeDir, spec.errorLog);
        const child = await supervisor.spawn(`enclave ${n.name}`, prepared.command, prepared.args, { logFile: join(stateDir, "logs", `enclave-${n.name}.out`) });
        await waitForListener(listen.host, listen.port, child.running);
        enclaves.push({ name: n.name, listen, pid: child.pid });
    }
    const addresses = Object.fromEntries(enclaves.map((e) => [e.name, e.listen]));
    return { gatewayClient, enclaves, nodePool: deriveNodePool(pool, addresses, { ...gatewayClient, ca: ca.cert }, opts.router) };
}

/** The pool as the sandbox runs it: per node a stub Ollama of its own behind the node's enclave. */
export async function startSandboxNodes(
    supervisor: Supervisor,
    cfg: StackConfig,
    pool: NodePoolSettings,
    stateDir: string,
    ca: CertPair,
    opts: Omit<EnclaveOptions, "ollamaOf"> & { readonly tokenIntervalMs?: number; readonly tokens?: number },
): Promise<SandboxNodePool> {
    const stubs = new Map<string, StubServer>();
    const close = async () => {
        for (const s of stubs.values()) await s.close();
        stubs.clear();
    };
    try {
        const first = new Map<string, { options: StubOllamaOptions; server: StubServer; log: string }>();
        for (const n of pool.nodes) {
            const ollamaLog = join(stateDir, "logs", `ollama-${n.name}.jsonl`);
            writeFileSync(ollamaLog, "", { mode: 0o600 });
            const options = { logFile: ollamaLog, tokenIntervalMs: opts.tokenIntervalMs, tokens: opts.tokens, models: n.models };
            const server = await startStubOllama(options);
            stubs.set(n.name, server);
            first.set(n.name, { options, server, log: ollamaLog });
        }
        const running = await startEnclaves(supervisor, cfg, pool, stateDir, ca, { ...opts, ollamaOf: (name) => ({ host: first.get(name)!.server.host, port: first.get(name)!.server.port }) });
        const nodes = running.enclaves.map((e, i): SandboxNode => {
            const stub = first.get(e.name)!;
            return {
                name: e.name,
                models: pool.nodes[i].models,
                enclaveUrl: `https://${e.listen.host}:${e.listen.port}`,
                enclavePid: e.pid,
                ollama: stub.server.url,
                ollamaLog: stub.log,
                stopOllama: async () => {
                    await stubs.get(e.name)?.close();
                    stubs.delete(e.name);
                },
                startOllama: async () => {
                    if (stubs.has(e.name)) throw new SandboxError(`node ${e.name}: its stub Ollama is already running`);
                    stubs.set(e.name, await startStubOllama({ ...stub.options, port: stub.server.port }));
                },
            };
        });
        return { nodes, gatewayClient: running.gatewayClient, nodePool: running.nodePool, close };
    } catch (e) {
        await close();
        throw e;
    }
}
