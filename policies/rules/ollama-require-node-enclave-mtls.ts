import type { ResourceValidationPolicy } from "@pulumi/policy";
import { isTailscaleAddress, portsOf, roleOf } from "../lib/containers";
import { TYPES, forType, listOf, str } from "../lib/policy-kit";

/** Role label value of a GPU node's enclave proxy (components/node.ts). */
export const ENCLAVE_ROLE = "enclave";

/**
 * A GPU node's enclave proxy is the node's only published socket; anyone who reaches it reaches
 * that node's Ollama. It must listen only on the node's Tailscale address and admit only the
 * gateway's client certificate.
 */
export const ollamaRequireNodeEnclaveMtls: ResourceValidationPolicy = {
    name: "ollama-require-node-enclave-mtls",
    description:
        "A GPU node's enclave proxy (role label `enclave`) publishes only on Tailscale addresses (100.64.0.0/10, fd7a:115c:a1e0::/48), never on 0.0.0.0, ::, loopback or an unset address, never with publishAllPorts or the host network; and its uploaded nginx.conf requires a client certificate (`ssl_verify_client on;`) and admits only the one pinned gateway certificate. Otherwise any tailnet or LAN peer could talk to the node's Ollama without passing the gateway.",
    enforcementLevel: "mandatory",
    severity: "critical",
    remediationSteps: "Build enclave proxies with components/node.ts (GpuNode): ports[].ip = the node's Tailscale address, config rendered by renderEnclaveConf.",
    validateResource: forType(TYPES.container, (props, args, report) => {
        if (roleOf(props) !== ENCLAVE_ROLE) return args.notApplicable("not an enclave proxy");
        const ports = portsOf(props);
        if (ports.length === 0) report("the enclave proxy publishes no port; it is the node's only way in and must publish exactly on the node's Tailscale address.");
        for (const p of ports) {
            if (!isTailscaleAddress(p.ip)) report(`the enclave proxy publishes port ${p.external ?? p.internal} on ${p.ip ? `"${p.ip}"` : "an unset address (Docker binds 0.0.0.0 and ::)"}; bind only the node's Tailscale address.`);
        }
        if (props.publishAllPorts === true) report("the enclave proxy sets publishAllPorts, which binds every exposed port on all host addresses.");
        if (str(props.networkMode) === "host") report("the enclave proxy uses networkMode \"host\", so every socket it opens is on all host addresses.");
        const confs = listOf<{ file?: unknown; content?: unknown }>(props.uploads).filter((u) => str(u.file).endsWith("nginx.conf"));
        if (confs.length === 0) report("the enclave proxy uploads no nginx.conf, so nothing shows that it requires the gateway's client certificate.");
        for (const u of confs) {
            // Content computed from outputs is unknown during a preview of a new node; it is checked on the next run.
            if (u.content === undefined) continue;
            const conf = str(u.content);
            if (!/^\s*ssl_verify_client on;\s*$/m.test(conf)) report(`${str(u.file)} does not set "ssl_verify_client on;": the enclave would accept connections without a client certificate.`);
            const pinned = /map \$ssl_client_fingerprint \$zto_gateway \{\s*default "";\s*[0-9a-f]{40} "gateway";\s*\}/.test(conf) && /if \(\$zto_gateway = ""\) \{ return 403 /.test(conf);
            if (!pinned) report(`${str(u.file)} does not admit exactly one pinned client certificate (the gateway's): any certificate from the CA, such as a device's, would reach the node's Ollama.`);
        }
    }),
};
