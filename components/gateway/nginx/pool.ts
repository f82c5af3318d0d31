/**
 * The gateway's GPU node pool (ollama.nodes) in nginx.conf. Renders nothing without
 * spec.nodePool, so single-node specs produce exactly the gateway config.
 *
 * Requests reach a second, internal server (the router) from @zto_route (no filter) or from the
 * filter, which names the request's model in X-Zto-Model. The router picks a pool: the nodes that
 * serve that model, else (no model named) every node for metadata and the default model's nodes
 * for inference; least_conn inside the pool. It connects to the node's enclave over mTLS with the
 * gateway's own client certificate and verifies the enclave's certificate against the CA.
 *
 *   passive health: max_fails=1 fail_timeout=<nodeFailTimeoutSeconds> per node
 *   metadata (idempotent): retried on another node after a connect error, timeout or 502/503/504
 *   inference: retried on another node only when no answer began: the node was unreachable or
 *              answered 502/503; never after a timeout, never once the response started streaming
 */
import { canonicalModel } from "../../config";
import { NODE_TLS_NAME, type NodePool, type PoolNode } from "../node-spec";
import { checkOf, type GatewayPolicy } from "../policy";
import type { GatewaySpec } from "../spec";
import { NginxRenderError, address, endpointRefusal, errorLocations, forwardingLocation, indent, mapBlock, methodRefusal, nginxPath, nginxString, requestHeaderVariable } from "./syntax";

/** Header the filter sets to the request's model; the router's only routing input besides the path. */
export const MODEL_ROUTING_HEADER = "X-Zto-Model";

/** The node sets the router uses: one upstream per distinct set, named by first use. */
export function nodePools(pool: NodePool): { all: string; fallback: string; byModel: Map<string, string>; members: Map<string, readonly PoolNode[]> } {
    const members = new Map<string, readonly PoolNode[]>();
    const nameOf = (nodes: readonly PoolNode[]) => {
        const key = nodes.map((n) => n.name).join(",");
        for (const [name, m] of members) if (m.map((n) => n.name).join(",") === key) return name;
        const name = `zto_pool_${members.size}`;
        members.set(name, nodes);
        return name;
    };
    const all = nameOf(pool.nodes);
    // Keyed by canonical name: the filter names models that way (llama3.2 = llama3.2:latest).
    const models = [...new Set(pool.nodes.flatMap((n) => n.models.map(canonicalModel)))];
    const byModel = new Map(models.map((m) => [m, nameOf(pool.nodes.filter((n) => n.models.map(canonicalModel).includes(m)))]));
    const fallback = byModel.get(canonicalModel(pool.defaultModel));
    if (!fallback) throw new NginxRenderError(`nodePool.defaultModel "${pool.defaultModel}" is served by no node`);
    return { all, fallback, byModel, members };
}

/** http-level blocks of the pool: one upstream per node set, and the maps that pick one. */
export function nodePoolHttp(spec: GatewaySpec): string[] {
    const pool = spec.nodePool;
    if (!pool) return [];
    if (!pool.router) throw new NginxRenderError("nodePool.router: the router listener address is required");
    const p = nodePools(pool);
    const kinds = spec.endpoints.map((e) => [e.id, e.kind] as const);
    return [
        "",
        "# GPU node pool: one upstream per set of nodes that serve a model; least connections inside.",
        ...[...p.members].flatMap(([name, nodes]) => [
            `upstream ${name} {`,
            "    # Shared memory: every worker sees the same connection counts and failed nodes.",
            `    zone ${name} 64k;`,
            "    least_conn;",
            ...nodes.map((n) => `    server ${address(n.enclave, `node ${n.name}`)} max_fails=1 fail_timeout=${pool.failTimeoutSeconds}s; # ${n.name}`),
            "    keepalive 16;",
            "    keepalive_timeout 4s;",
            "}",
        ]),
        ...mapBlock("$zto_endpoint", "$zto_endpoint_kind", kinds),
        ...mapBlock("$zto_endpoint_kind", "$zto_fallback_pool", [["metadata", p.all]], p.fallback),
        "# The model the filter read from the body selects the nodes that serve it.",
        ...mapBlock(requestHeaderVariable(MODEL_ROUTING_HEADER), "$zto_pool", [...p.byModel].map(([m, name]) => [nginxString(m, "model"), name] as const), "$zto_fallback_pool"),
    ];
}

/** Retry rules: metadata is idempotent; a generation moves to another node only before any answer exists. */
function retryRules(retry: "metadata" | "inference"): string[] {
    return retry === "metadata"
        ? ["# Idempotent: another node answers when one fails.", "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;", "proxy_next_upstream_tries 3;"]
        : [
              "# Another node takes a generation only before any answer exists: the node was unreachable",
              "# or answered 502/503 (its Ollama down or busy). Never after a timeout (the generation may be",
              "# running) and never once streaming began (nginx cannot retry after the response started).",
              "proxy_next_upstream error http_502 http_503 non_idempotent;",
              "proxy_next_upstream_tries 2;",
          ];
}

function poolLocation(match: string, pool: NodePool, policy: GatewayPolicy, retry: "metadata" | "inference", readTimeoutSeconds: number): string[] {
    const t = pool.clientTls;
    const body = forwardingLocation(policy, {
        // The router's callers already passed every gateway check; the allowlist is held again here.
        checks: [endpointRefusal(checkOf(policy, "endpoint").refusal), methodRefusal(checkOf(policy, "method").refusal)],
        beforeProxy: retryRules(retry),
        upstream: "https://$zto_pool",
        hostHeader: `"${NODE_TLS_NAME}"`,
        afterProxy: [
            `proxy_ssl_certificate ${nginxPath(t.cert, "nodePool.clientTls.cert")};`,
            `proxy_ssl_certificate_key ${nginxPath(t.key, "nodePool.clientTls.key")};`,
            `proxy_ssl_trusted_certificate ${nginxPath(t.ca, "nodePool.clientTls.ca")};`,
            "proxy_ssl_verify on;",
            "proxy_ssl_verify_depth 1;",
            `proxy_ssl_name ${NODE_TLS_NAME};`,
            "proxy_ssl_server_name off;",
            "proxy_ssl_protocols TLSv1.3;",
            "proxy_ssl_session_reuse on;",
        ],
        connectTimeoutSeconds: 3,
        readTimeoutSeconds,
    });
    return [`location ${match} {`, indent(body, 1), "}"];
}

/** The router: an internal listener (the gateway's own hop or the filter) in front of the node pool. */
export function nodePoolRouter(spec: GatewaySpec, policy: GatewayPolicy): string[] {
    const pool = spec.nodePool;
    if (!pool) return [];
    const metadata = spec.endpoints.filter((e) => e.kind === "metadata");
    return [
        "",
        "# Router: internal listener (the gateway's own hop or the filter) -> the node pool.",
        "server {",
        indent(
            [
                `listen ${address(pool.router!, "nodePool.router")};`,
                "error_page 502 503 504 /_zto_error/502;",
                ...metadata.map((e) => poolLocation(e.modelParam ? `^~ ${e.path}` : `= ${e.path}`, pool, policy, "metadata", spec.limits.upstreamTimeoutSeconds)).flat(),
                ...poolLocation("/", pool, policy, "inference", spec.limits.upstreamTimeoutSeconds),
                ...errorLocations(),
            ],
            1,
        ),
        "}",
    ];
}
