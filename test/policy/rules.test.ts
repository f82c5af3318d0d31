/**
 * Every policy of the pack on hand-built resources: at least one passing and one failing case
 * each, plus the tunable settings (configSchema) and the identification of Ollama/gateway.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ENCRYPTED_STORE_LABEL, MODEL_STORE_CHECK_LABEL } from "../../components/hardening";
import { OLLAMA_MODELS_DIR } from "../../components/ollama";
import { renderTailnetPolicy, tailnetPolicyJson } from "../../components/tailnet/acl";
import { containerDisallowDangerousCapabilities } from "../../policies/rules/container-disallow-dangerous-capabilities";
import { containerDisallowDockerSocket } from "../../policies/rules/container-disallow-docker-socket";
import { containerDisallowHostNamespaces } from "../../policies/rules/container-disallow-host-namespaces";
import { containerDisallowPrivileged } from "../../policies/rules/container-disallow-privileged";
import { containerRequireDroppedCapabilities } from "../../policies/rules/container-require-dropped-capabilities";
import { containerRequireNoNewPrivileges } from "../../policies/rules/container-require-no-new-privileges";
import { containerRequireRoleLabel } from "../../policies/rules/container-require-role-label";
import { entraDisallowImplicitGrant } from "../../policies/rules/entra-disallow-implicit-grant";
import { entraRequireAssignment } from "../../policies/rules/entra-require-assignment";
import { entraRequireHttpsRedirects } from "../../policies/rules/entra-require-https-redirects";
import { entraRequireSingleTenant } from "../../policies/rules/entra-require-single-tenant";
import { gatewayRequireSingleIngress } from "../../policies/rules/gateway-require-single-ingress";
import { imageRequireDigestPin } from "../../policies/rules/image-require-digest-pin";
import { ollamaDisallowHostPorts } from "../../policies/rules/ollama-disallow-host-ports";
import { ollamaDisallowUnverifiedModelStore } from "../../policies/rules/ollama-disallow-unverified-model-store";
import { ollamaRequireEncryptedModelStore } from "../../policies/rules/ollama-require-encrypted-model-store";
import { ollamaRequireGpuReservation } from "../../policies/rules/ollama-require-gpu-reservation";
import { ollamaRequireInternalNetwork } from "../../policies/rules/ollama-require-internal-network";
import { ollamaRestrictNetworkPeers } from "../../policies/rules/ollama-restrict-network-peers";
import { randomRequireCookieSecretLength } from "../../policies/rules/random-require-cookie-secret-length";
import { tailscaleDisallowWildcards } from "../../policies/rules/tailscale-disallow-wildcards";
import { tailscaleRequireAclTests } from "../../policies/rules/tailscale-require-acl-tests";
import { tailscaleRestrictServerAccess } from "../../policies/rules/tailscale-restrict-server-access";
import { tlsLimitServerCertValidity } from "../../policies/rules/tls-limit-server-cert-validity";
import { tlsRequireStrongKeys } from "../../policies/rules/tls-require-strong-keys";
import { tlsRestrictCaUsage } from "../../policies/rules/tls-restrict-ca-usage";
import { tlsRestrictClientCertUsage } from "../../policies/rules/tls-restrict-client-cert-usage";
import { CONTAINER, DIGEST, IMAGE_ID, containerProps, messages, res, violations } from "./harness";

const container = (name: string, props: Record<string, any>) => res(CONTAINER, name, props);
const ollamaProps = (extra: Record<string, any> = {}) =>
    containerProps("ollama", { mounts: [{ type: "bind", source: "/srv/encrypted/ollama", target: OLLAMA_MODELS_DIR }], gpus: "all", ...extra, labels: extra.labels ?? [{ label: "zero-trust-ollama.role", value: "ollama" }, { label: ENCRYPTED_STORE_LABEL, value: OLLAMA_MODELS_DIR }, { label: MODEL_STORE_CHECK_LABEL, value: "verified" }] });
const internalNet = res("docker:index/network:Network", "net-internal", { name: "zto-test-internal", internal: true });
const edgeNet = res("docker:index/network:Network", "net-edge", { name: "zto-test-edge", internal: false });

/** Asserts exactly `count` violations and that every pattern matches one of them. */
async function assertFails(p: Parameters<typeof messages>[0], graph: Parameters<typeof messages>[1], patterns: RegExp[], config: Record<string, unknown> = {}): Promise<void> {
    const msgs = await messages(p, graph, config);
    assert.ok(msgs.length >= 1, "expected a violation, got none");
    for (const re of patterns) assert.ok(msgs.some((m) => re.test(m)), `no violation matches ${re}: ${JSON.stringify(msgs)}`);
}

describe("ollama-disallow-host-ports", () => {
    const p = [ollamaDisallowHostPorts];
    test("passes an Ollama container without host ports, and ignores other containers' ports", async () => {
        assert.deepEqual(await messages(p, [container("ollama", ollamaProps()), container("gw", containerProps("gateway", { ports: [{ internal: 8443, external: 8443, ip: "127.0.0.1" }] }))]), []);
    });
    test("fails a published port, publishAllPorts and host networking", async () => {
        await assertFails(p, [container("o1", ollamaProps({ ports: [{ internal: 11434, external: 11434 }] }))], [/port 11434 on the host \(every address:11434\)/]);
        await assertFails(p, [container("o2", ollamaProps({ publishAllPorts: true }))], [/publishAllPorts/]);
        await assertFails(p, [container("o3", ollamaProps({ networkMode: "host" }))], [/networkMode "host"/]);
    });
    test("recognises Ollama by image reference when the role label is missing", async () => {
        const unlabelled = { ...ollamaProps(), labels: [], image: "docker.io/ollama/ollama:0.12.3", ports: [{ internal: 11434, external: 8080, ip: "127.0.0.1" }] };
        await assertFails(p, [container("o4", unlabelled)], [/127\.0\.0\.1:8080/]);
    });
});

describe("ollama-require-internal-network (stack)", () => {
    const p = [ollamaRequireInternalNetwork];
    test("passes Ollama on the stack's internal network only", async () => {
        assert.deepEqual(await messages(p, [internalNet, edgeNet, container("ollama", ollamaProps())]), []);
    });
    test("fails a non-internal network, an undeclared network, the default bridge and network modes", async () => {
        await assertFails(p, [internalNet, edgeNet, container("o", ollamaProps({ networksAdvanced: [{ name: "zto-test-internal" }, { name: "zto-test-edge" }] }))], [/"zto-test-edge", which is not internal/]);
        await assertFails(p, [internalNet, container("o", ollamaProps({ networksAdvanced: [{ name: "shared-lan" }] }))], [/"shared-lan", which this stack does not define/]);
        await assertFails(p, [internalNet, container("o", ollamaProps({ networksAdvanced: [] }))], [/default bridge/]);
        await assertFails(p, [internalNet, container("o", ollamaProps({ networkMode: "bridge" }))], [/networkMode "bridge"/]);
    });
    test("traces an image id back to the RemoteImage to recognise an unlabelled Ollama", async () => {
        const image = res("docker:index/remoteImage:RemoteImage", "img", { name: "ollama/ollama:0.12.3" }, { imageId: IMAGE_ID });
        const unlabelled = { ...ollamaProps(), labels: [], networksAdvanced: [{ name: "zto-test-edge" }] };
        await assertFails(p, [internalNet, edgeNet, image, container("o", unlabelled)], [/not internal/]);
    });
});

describe("ollama-restrict-network-peers (stack)", () => {
    const p = [ollamaRestrictNetworkPeers];
    const hop = (name: string, options: Record<string, string> = { "com.docker.network.bridge.inhibit_ipv4": "true" }) => res("docker:index/network:Network", name, { name, internal: true, options });
    const on = (role: string, name: string, ...nets: string[]) => container(name, containerProps(role, { networksAdvanced: nets.map((n) => ({ name: n })) }));
    const ollama = container("ollama", ollamaProps({ name: "zto-test-ollama", networksAdvanced: [{ name: "to-ollama" }] }));
    const segmented = [hop("to-ollama"), hop("to-filter"), hop("to-oauth2-proxy"), ollama, on("filter", "filter", "to-filter", "to-ollama"), on("gateway", "gateway", "to-filter", "to-oauth2-proxy"), on("oauth2-proxy", "oauth2-proxy", "to-oauth2-proxy")];
    test("passes Ollama sharing its inhibited network with the filter only (or the gateway when there is no filter, the enclave on a node)", async () => {
        assert.deepEqual(await messages(p, segmented), []);
        assert.deepEqual(await messages(p, [hop("to-ollama"), ollama, on("gateway", "gateway", "to-ollama")]), []);
        assert.deepEqual(await messages(p, [hop("to-ollama"), ollama, on("enclave", "enclave", "to-ollama"), on("filter", "filter", "to-filter")]), []);
    });
    test("fails oauth2-proxy or the gateway on Ollama's network when the filter is its caller", async () => {
        await assertFails(p, [...segmented.slice(0, 6), on("oauth2-proxy", "oauth2-proxy", "to-oauth2-proxy", "to-ollama")], [/oauth2-proxy \(role oauth2-proxy\) shares Ollama's network "to-ollama"; only the filter may/]);
        await assertFails(p, [...segmented.slice(0, 5), on("gateway", "gateway", "to-filter", "to-ollama")], [/gateway \(role gateway\) shares Ollama's network/]);
    });
    test("fails an unlabelled peer, two callers, a shared network namespace and a network Ollama joins by mode", async () => {
        await assertFails(p, [hop("to-ollama"), ollama, on("gateway", "gateway", "to-ollama"), container("sidecar", { networksAdvanced: [{ name: "to-ollama" }] })], [/sidecar \(role unlabelled\)/]);
        await assertFails(p, [hop("to-ollama"), ollama, on("gateway", "gw-a", "to-ollama"), on("gateway", "gw-b", "to-ollama")], [/shared with 2 gateway containers \(gw-a, gw-b\)/]);
        await assertFails(p, [hop("to-ollama"), ollama, on("gateway", "gateway", "to-ollama"), container("debug", containerProps("gateway", { networksAdvanced: [], networkMode: "container:zto-test-ollama" }))], [/debug \(role gateway\) shares Ollama's network namespace/]);
        await assertFails(p, [hop("lan", {}), container("o", ollamaProps({ networksAdvanced: [], networkMode: "lan" }))], [/"lan" lacks the bridge option/]);
    });
    test("fails a network without the host-address inhibition, with it off, or not defined by the stack", async () => {
        await assertFails(p, [hop("to-ollama", {}), ollama, on("gateway", "gateway", "to-ollama")], [/network "to-ollama" lacks the bridge option com\.docker\.network\.bridge\.inhibit_ipv4/]);
        await assertFails(p, [hop("to-ollama", { "com.docker.network.bridge.inhibit_ipv4": "false" }), ollama, on("gateway", "gateway", "to-ollama")], [/lacks the bridge option/]);
        await assertFails(p, [ollama, on("gateway", "gateway", "to-ollama")], [/"to-ollama", which this stack does not define/]);
    });
    test("is not applicable without an Ollama container", async () => {
        assert.deepEqual(await messages(p, [hop("to-filter"), on("filter", "filter", "to-filter")]), []);
    });
});

describe("gateway-require-single-ingress (stack)", () => {
    const p = [gatewayRequireSingleIngress];
    const gw = (ports: any[], extra: Record<string, any> = {}) => container("gateway-container", containerProps("gateway", { ports, ...extra }));
    test("passes a gateway bound to loopback or a Tailscale address", async () => {
        for (const ip of ["127.0.0.1", "::1", "[::1]", "100.101.102.103", "fd7a:115c:a1e0::1234"]) {
            assert.deepEqual(await messages(p, [gw([{ internal: 8443, external: 443, ip }]), container("ollama", ollamaProps())]), [], ip);
        }
    });
    test("fails wildcard, unset and LAN bind addresses", async () => {
        for (const ip of ["0.0.0.0", "::", "[::]", "", "192.168.1.10", "100.128.0.1"]) {
            await assertFails(p, [gw([{ internal: 8443, external: 443, ip }])], [/the gateway publishes port 443 on/]);
        }
        await assertFails(p, [gw([{ internal: 8443, external: 443 }])], [/unset address/]);
    });
    test("GPU node pool: each node's enclave may publish on its own Docker host, never beside another ingress", async () => {
        const onHost = (r: ReturnType<typeof container>, host: string) => ({ ...r, provider: `urn:pulumi:test::zero-trust-ollama::pulumi:providers:docker::${host}` });
        const enclave = (name: string, ip: string) => container(name, containerProps("enclave", { ports: [{ internal: 8443, external: 11443, ip }] }));
        const main = onHost(gw([{ internal: 8443, external: 443, ip: "127.0.0.1" }]), "docker");
        assert.deepEqual(await messages(p, [main, onHost(enclave("node-a-enclave", "100.70.0.1"), "node-a-docker"), onHost(enclave("node-b-enclave", "100.70.0.2"), "node-b-docker")]), []);
        await assertFails(p, [main, onHost(enclave("node-a-enclave", "100.70.0.1"), "docker")], [/gateway-container publishes on the same Docker host as node-a-enclave/, /node-a-enclave publishes on the same Docker host as gateway-container/]);
        await assertFails(p, [onHost(enclave("node-a-enclave", "0.0.0.0"), "node-a-docker")], [/node-a-enclave \("enclave"\) publishes port 11443 on "0.0.0.0"/]);
    });

    test("fails any other publishing container, a second gateway and publishAllPorts", async () => {
        await assertFails(p, [gw([{ internal: 8443, external: 443, ip: "127.0.0.1" }]), container("filter", containerProps("filter", { ports: [{ internal: 8080, external: 8080, ip: "127.0.0.1" }] }))], [/filter \(role "filter"\) publishes to the host; only the gateway/]);
        await assertFails(p, [gw([{ internal: 8443, external: 443, ip: "127.0.0.1" }]), container("gateway-2", containerProps("gateway", { ports: [{ internal: 8443, external: 8444, ip: "127.0.0.1" }] }))], [/second gateway container/]);
        await assertFails(p, [gw([], { publishAllPorts: true })], [/publishAllPorts/]);
        await assertFails(p, [container("x", { ...containerProps("filter"), labels: [], networkMode: "host" })], [/unlabelled/]);
    });
});

describe("container hardening policies", () => {
    const hardened = container("c", containerProps("filter"));
    test("a container built from hardenedContainerArgs passes them all", async () => {
        const all = [containerDisallowPrivileged, containerDisallowHostNamespaces, containerDisallowDockerSocket, containerDisallowDangerousCapabilities, containerRequireDroppedCapabilities, containerRequireNoNewPrivileges, containerRequireRoleLabel];
        assert.deepEqual(await messages(all, [hardened]), []);
    });
    test("container-disallow-privileged: privileged and unconfined profiles", async () => {
        const p = [containerDisallowPrivileged];
        await assertFails(p, [container("c", containerProps("filter", { privileged: true }))], [/runs privileged/]);
        await assertFails(p, [container("c", containerProps("filter", { securityOpts: ["no-new-privileges:true", "seccomp=unconfined", "apparmor:unconfined"] }))], [/seccomp=unconfined/, /apparmor:unconfined/]);
    });
    test("container-disallow-host-namespaces: pid, ipc, network, user namespaces", async () => {
        const p = [containerDisallowHostNamespaces];
        assert.equal((await messages(p, [container("c", containerProps("filter", { pidMode: "host", ipcMode: "host", networkMode: "host", usernsMode: "host" }))])).length, 4);
        assert.deepEqual(await messages(p, [container("c", containerProps("filter", { ipcMode: "private" }))]), []);
    });
    test("container-disallow-docker-socket: sockets, their directories, spelling tricks and extra paths", async () => {
        const p = [containerDisallowDockerSocket];
        await assertFails(p, [container("c", containerProps("filter", { mounts: [{ type: "bind", source: "/var/run/docker.sock", target: "/var/run/docker.sock" }] }))], [/runtime socket \/var\/run\/docker.sock/]);
        await assertFails(p, [container("c", containerProps("filter", { volumes: [{ hostPath: "/run//containerd/containerd.sock", containerPath: "/c.sock" }] }))], [/runtime socket/]);
        await assertFails(p, [container("c", containerProps("filter", { volumes: [{ hostPath: "/var/run/", containerPath: "/host-run" }] }))], [/contains the container runtime socket/]);
        const smuggled = { type: "volume", target: "/sock", volumeOptions: { driverName: "local", driverOptions: { type: "none", o: "bind", device: "/var/run/docker.sock" } } };
        await assertFails(p, [container("c", containerProps("filter", { mounts: [smuggled] }))], [/runtime socket \/var\/run\/docker.sock at \/sock/]);
        await assertFails(p, [container("c", containerProps("filter", { mounts: [{ type: "bind", source: "/etc/shadow", target: "/x" }] }))], [/additionalPaths/], { "container-disallow-docker-socket": { additionalPaths: ["/etc/shadow"] } });
        assert.deepEqual(await messages(p, [container("c", containerProps("filter", { mounts: [{ type: "bind", source: "/srv/encrypted/ollama", target: "/root/.ollama" }, { type: "volume", source: "docker.sock", target: "/data" }] }))]), []);
    });
    test("container-disallow-dangerous-capabilities: SYS_ADMIN, cap_ prefix, lower case, configurable list", async () => {
        const p = [containerDisallowDangerousCapabilities];
        await assertFails(p, [container("c", containerProps("filter", { capabilities: { drops: ["ALL"], adds: ["SYS_ADMIN", "cap_net_admin"] } }))], [/SYS_ADMIN/, /cap_net_admin/]);
        const bind = container("c", containerProps("gateway", { capabilities: { drops: ["ALL"], adds: ["NET_BIND_SERVICE"] } }));
        assert.deepEqual(await messages(p, [bind]), []);
        await assertFails(p, [bind], [/NET_BIND_SERVICE/], { "container-disallow-dangerous-capabilities": { disallowed: ["NET_BIND_SERVICE"] } });
    });
    test("container-require-dropped-capabilities: drops must contain ALL", async () => {
        await assertFails([containerRequireDroppedCapabilities], [container("c", containerProps("filter", { capabilities: { drops: ["NET_RAW"] } }))], [/does not contain ALL/]);
        assert.deepEqual(await messages([containerRequireDroppedCapabilities], [container("c", containerProps("filter", { capabilities: { drops: ["cap_all"] } }))]), []);
    });
    test("container-require-no-new-privileges: missing, false, and a later false overriding true", async () => {
        const p = [containerRequireNoNewPrivileges];
        await assertFails(p, [container("c", containerProps("filter", { securityOpts: [] }))], [/lacks no-new-privileges/]);
        await assertFails(p, [container("c", containerProps("filter", { securityOpts: ["no-new-privileges:false"] }))], [/must be true/]);
        await assertFails(p, [container("c", containerProps("filter", { securityOpts: ["no-new-privileges:true", "no-new-privileges=false"] }))], [/must be true/]);
        assert.deepEqual(await messages(p, [container("c", containerProps("filter", { securityOpts: ["no-new-privileges"] }))]), []);
    });
    test("container-require-role-label", async () => {
        await assertFails([containerRequireRoleLabel], [container("c", { ...containerProps("filter"), labels: [{ label: "other", value: "x" }] })], [/no zero-trust-ollama.role label/]);
    });
});

describe("image-require-digest-pin", () => {
    const p = [imageRequireDigestPin];
    test("advisory by default: tags are reported, digests and image ids pass", async () => {
        const v = await violations(p, [res("docker:index/remoteImage:RemoteImage", "img", { name: "nginx:1.28.0-alpine" }), container("c", containerProps("gateway", { image: "nginx:latest" }))]);
        assert.deepEqual(v.map((x) => [x.enforcementLevel, /not pinned|neither an image id/.test(x.message)]), [["advisory", true], ["advisory", true]]);
        assert.deepEqual(await messages(p, [res("docker:index/remoteImage:RemoteImage", "img", { name: `nginx:1.28.0-alpine@${DIGEST}` }), container("c", containerProps("gateway")), container("d", containerProps("gateway", { image: `nginx@${DIGEST}` }))]), []);
    });
    test("mandatory when policy config says so", async () => {
        const v = await violations(p, [res("docker:index/remoteImage:RemoteImage", "img", { name: "ollama/ollama:0.12.3" })], { "image-require-digest-pin": "mandatory" });
        assert.equal(v[0].enforcementLevel, "mandatory");
    });
});

describe("ollama-require-gpu-reservation (advisory)", () => {
    const p = [ollamaRequireGpuReservation];
    test("CPU-only Ollama is an advisory violation; gpus, device requests and ROCm devices pass", async () => {
        const v = await violations(p, [container("o", ollamaProps({ gpus: undefined }))]);
        assert.deepEqual(v.map((x) => x.enforcementLevel), ["advisory"]);
        for (const extra of [{ gpus: "all" }, { gpus: undefined, deviceRequests: [{ driver: "nvidia", count: -1, capabilities: ["gpu"] }] }, { gpus: undefined, devices: [{ hostPath: "/dev/kfd" }, { hostPath: "/dev/dri" }] }]) {
            assert.deepEqual(await messages(p, [container("o", ollamaProps(extra))]), [], JSON.stringify(extra));
        }
    });
});

describe("ollama-require-encrypted-model-store", () => {
    const p = [ollamaRequireEncryptedModelStore];
    test("passes the labelled bind mount Ollama's models live on", async () => {
        assert.deepEqual(await messages(p, [container("o", ollamaProps())]), []);
        assert.deepEqual(await messages(p, [container("o", ollamaProps())], { "ollama-require-encrypted-model-store": { hostPathPrefixes: ["/srv/encrypted"] } }), []);
    });
    test("fails a missing label, a missing mount, models moved elsewhere, a shadowing tmpfs and a host path off the encrypted volume", async () => {
        await assertFails(p, [container("o", ollamaProps({ labels: [{ label: "zero-trust-ollama.role", value: "ollama" }] }))], [/no zero-trust-ollama.encrypted-store label/]);
        await assertFails(p, [container("o", ollamaProps({ mounts: [] }))], [/nothing is bind-mounted/]);
        await assertFails(p, [container("o", ollamaProps({ envs: ["OLLAMA_MODELS=/models"] }))], [/\/models, outside the labelled encrypted store/]);
        await assertFails(p, [container("o", ollamaProps({ tmpfs: { "/root/.ollama/models": "rw" } }))], [/hides the encrypted model store/]);
        await assertFails(p, [container("o", ollamaProps())], [/not under an encrypted volume/], { "ollama-require-encrypted-model-store": { hostPathPrefixes: ["/mnt/luks"] } });
    });
    const withCheck = (value?: string) =>
        ollamaProps({ labels: [{ label: "zero-trust-ollama.role", value: "ollama" }, { label: ENCRYPTED_STORE_LABEL, value: OLLAMA_MODELS_DIR }, ...(value === undefined ? [] : [{ label: MODEL_STORE_CHECK_LABEL, value }])] });
    test("the host check: verified and a development waiver pass; no check, a waiver in a pinned stack and an unknown value fail", async () => {
        assert.deepEqual(await messages(p, [container("o", withCheck("skipped"))]), []);
        await assertFails(p, [container("o", withCheck())], [/never checked for encryption on the host/]);
        await assertFails(p, [container("o", withCheck("skipped-in-pinned-stack"))], [/requirePinnedImages \(a production stack\); remove the opt-out/]);
        await assertFails(p, [container("o", withCheck("trust-me"))], [/unknown zero-trust-ollama.model-store-check value "trust-me"/]);
    });
});

describe("ollama-disallow-unverified-model-store", () => {
    const p = [ollamaDisallowUnverifiedModelStore];
    const withCheck = (value: string) => ollamaProps({ labels: [{ label: "zero-trust-ollama.role", value: "ollama" }, { label: MODEL_STORE_CHECK_LABEL, value }] });
    test("advisory; passes a verified store, is not applicable to other containers", async () => {
        assert.equal(ollamaDisallowUnverifiedModelStore.enforcementLevel, "advisory");
        assert.deepEqual(await messages(p, [container("o", withCheck("verified")), container("gw", containerProps("gateway"))]), []);
    });
    test("reports every waiver, in development and pinned stacks", async () => {
        await assertFails(p, [container("o", withCheck("skipped"))], [/ollama.allowUnencryptedModels is set/]);
        await assertFails(p, [container("o", withCheck("skipped-in-pinned-stack"))], [/not checked for encryption at rest/]);
    });
});

describe("TLS policies", () => {
    const key = (props: Record<string, any>) => res("tls:index/privateKey:PrivateKey", "k", props);
    const cert = (type: "selfSignedCert:SelfSignedCert" | "locallySignedCert:LocallySignedCert", props: Record<string, any>) => res(`tls:index/${type}`, "c", props);
    test("tls-require-strong-keys: ECDSA P-256+/RSA 3072+ pass; small RSA, provider defaults and ED25519 fail", async () => {
        const p = [tlsRequireStrongKeys];
        for (const ok of [{ algorithm: "ECDSA", ecdsaCurve: "P256" }, { algorithm: "ECDSA", ecdsaCurve: "P384" }, { algorithm: "RSA", rsaBits: 3072 }, { algorithm: "RSA", rsaBits: 4096 }]) assert.deepEqual(await messages(p, [key(ok)]), [], JSON.stringify(ok));
        await assertFails(p, [key({ algorithm: "RSA", rsaBits: 2048 })], [/RSA key of 2048 bits; at least 3072/]);
        await assertFails(p, [key({ algorithm: "RSA" })], [/2048 bits \(provider default\)/]);
        await assertFails(p, [key({ algorithm: "ECDSA" })], [/P224 \(provider default\)/]);
        await assertFails(p, [key({ algorithm: "ED25519" })], [/"ED25519" is not allowed/]);
        await assertFails(p, [key({ algorithm: "RSA", rsaBits: 3072 })], [/at least 4096/], { "tls-require-strong-keys": { minRsaBits: 4096 } });
    });
    test("tls-restrict-ca-usage: the CA only signs; nothing else signs", async () => {
        const p = [tlsRestrictCaUsage];
        assert.deepEqual(await messages(p, [cert("selfSignedCert:SelfSignedCert", { isCaCertificate: true, allowedUses: ["cert_signing", "crl_signing"] }), cert("locallySignedCert:LocallySignedCert", { allowedUses: ["digital_signature", "server_auth"] })]), []);
        await assertFails(p, [cert("selfSignedCert:SelfSignedCert", { isCaCertificate: true, allowedUses: ["cert_signing", "server_auth"] })], [/also allows server_auth/]);
        await assertFails(p, [cert("selfSignedCert:SelfSignedCert", { isCaCertificate: true, allowedUses: ["digital_signature"] })], [/lacks cert_signing/]);
        await assertFails(p, [cert("locallySignedCert:LocallySignedCert", { allowedUses: ["client_auth", "cert_signing"] })], [/non-CA certificate allows cert_signing/]);
    });
    test("tls-restrict-client-cert-usage: client_auth only, bounded validity (configurable)", async () => {
        const p = [tlsRestrictClientCertUsage];
        const device = (uses: string[], days: number) => cert("locallySignedCert:LocallySignedCert", { allowedUses: uses, validityPeriodHours: days * 24 });
        assert.deepEqual(await messages(p, [device(["digital_signature", "client_auth"], 90)]), []);
        await assertFails(p, [device(["digital_signature", "client_auth", "server_auth"], 90)], [/also allows server_auth/]);
        await assertFails(p, [device(["client_auth"], 900)], [/900 days; at most 825/]);
        await assertFails(p, [device(["client_auth"], 90)], [/90 days; at most 30/], { "tls-restrict-client-cert-usage": { maxValidityDays: 30 } });
    });
    test("tls-limit-server-cert-validity: at most 397 days (configurable lower)", async () => {
        const p = [tlsLimitServerCertValidity];
        const server = (days: number) => cert("locallySignedCert:LocallySignedCert", { allowedUses: ["digital_signature", "server_auth"], validityPeriodHours: days * 24 });
        assert.deepEqual(await messages(p, [server(397)]), []);
        await assertFails(p, [server(398)], [/398 days; at most 397/]);
        await assertFails(p, [server(365)], [/at most 90/], { "tls-limit-server-cert-validity": { maxValidityDays: 90 } });
    });
});

describe("Entra ID policies", () => {
    const app = (props: Record<string, any>) => res("azuread:index/application:Application", "app", { displayName: "x", ...props });
    const good = { signInAudience: "AzureADMyOrg", web: { redirectUris: ["https://ollama.example.com/oauth2/callback"], implicitGrant: { accessTokenIssuanceEnabled: false, idTokenIssuanceEnabled: false } } };
    test("a locked-down app registration passes all app policies", async () => {
        assert.deepEqual(await messages([entraDisallowImplicitGrant, entraRequireHttpsRedirects, entraRequireSingleTenant], [app(good)]), []);
        assert.deepEqual(await messages([entraRequireSingleTenant], [app({})]), [], "unset audience is AzureADMyOrg");
    });
    test("entra-disallow-implicit-grant", async () => {
        await assertFails([entraDisallowImplicitGrant], [app({ web: { implicitGrant: { accessTokenIssuanceEnabled: true, idTokenIssuanceEnabled: true } } })], [/access tokens/, /ID tokens/]);
        await assertFails([entraDisallowImplicitGrant], [app({ web: [{ implicitGrant: [{ idTokenIssuanceEnabled: true }] }] })], [/ID tokens/]);
    });
    test("entra-require-https-redirects", async () => {
        await assertFails([entraRequireHttpsRedirects], [app({ web: { redirectUris: ["http://ollama.example.com/oauth2/callback"] } })], [/must be https/]);
        await assertFails([entraRequireHttpsRedirects], [app({ singlePageApplication: { redirectUris: ["https://*.example.com/cb"] } })], [/wildcard "https:\/\/\*\.example\.com\/cb"/]);
        await assertFails([entraRequireHttpsRedirects], [app({ publicClient: { redirectUris: ["https://ollama.example.com/*"] } })], [/wildcard/]);
    });
    test("entra-require-single-tenant", async () => {
        await assertFails([entraRequireSingleTenant], [app({ signInAudience: "AzureADMultipleOrgs" })], [/AzureADMultipleOrgs/]);
    });
    test("entra-require-assignment", async () => {
        const sp = (props: Record<string, any>) => res("azuread:index/servicePrincipal:ServicePrincipal", "sp", { clientId: "x", ...props });
        assert.deepEqual(await messages([entraRequireAssignment], [sp({ appRoleAssignmentRequired: true })]), []);
        await assertFails([entraRequireAssignment], [sp({})], [/every account in the tenant/]);
    });
});

describe("Tailscale ACL policies", () => {
    const rendered = tailnetPolicyJson(renderTailnetPolicy({ serverTag: "tag:ai-server", clientTag: "tag:ai-client", gatewayPort: 443, allowedUsers: ["alice@example.com"], tagOwners: ["autogroup:admin"] }));
    const acl = (text: string) => res("tailscale:index/acl:Acl", "acl", { acl: text });
    const gateway = container("gateway", containerProps("gateway", { ports: [{ internal: 8443, external: 443, ip: "100.101.102.103" }] }));
    const all = [tailscaleDisallowWildcards, tailscaleRestrictServerAccess, tailscaleRequireAclTests];
    test("the program's rendered policy passes all three", async () => {
        assert.deepEqual(await messages(all, [gateway, acl(rendered)]), []);
    });
    test("HuJSON comments and trailing commas are understood", async () => {
        const hujson = `{
  // who may tag
  "grants": [ { "src": ["tag:ai-client",], "dst": ["tag:ai-server"], "ip": ["tcp:443"], }, ], /* trailing */
  "tests": [ { "src": "tag:ai-client", "accept": ["tag:ai-server:443"], "deny": ["tag:ai-server:11434"] } ],
}`;
        assert.deepEqual(await messages(all, [gateway, acl(hujson)]), []);
    });
    test("tailscale-disallow-wildcards: * sources and *:* destinations, in acls and grants; unparseable policy", async () => {
        const p = [tailscaleDisallowWildcards];
        await assertFails(p, [acl(JSON.stringify({ acls: [{ action: "accept", src: ["*"], dst: ["*:*"] }] }))], [/acls\[0\] allows every source/, /acls\[0\] allows every destination/]);
        await assertFails(p, [acl(JSON.stringify({ grants: [{ src: ["group:eng"], dst: ["*"], ip: ["*"] }] }))], [/grants\[0\] allows every destination/]);
        await assertFails(p, [acl("{ not json")], [/not a valid policy file/]);
    });
    test("tailscale-require-acl-tests: tests must exist and exercise the server tag", async () => {
        const p = [tailscaleRequireAclTests];
        const policy = JSON.parse(rendered);
        await assertFails(p, [acl(JSON.stringify({ ...policy, tests: [] }))], [/has no tests/]);
        await assertFails(p, [acl(JSON.stringify({ ...policy, tests: [{ src: "tag:ai-client", accept: ["tag:other:80"] }] }))], [/no ACL test .* tag:ai-server/]);
    });
    test("tailscale-restrict-server-access: only the client tag/listed users, only the gateway port", async () => {
        const p = [tailscaleRestrictServerAccess];
        const grant = (g: Record<string, unknown>) => acl(JSON.stringify({ grants: [g], tests: [] }));
        await assertFails(p, [gateway, grant({ src: ["autogroup:member"], dst: ["tag:ai-server"], ip: ["tcp:443"] })], [/"autogroup:member" reach tag:ai-server/]);
        await assertFails(p, [gateway, grant({ src: ["tag:ai-client"], dst: ["tag:ai-server"], ip: ["tcp:11434"] })], [/opens tag:ai-server:11434/]);
        await assertFails(p, [gateway, grant({ src: ["tag:ai-client"], dst: ["tag:ai-server"], ip: ["tcp:400-500"] })], [/opens tag:ai-server:400-500/]);
        await assertFails(p, [gateway, acl(JSON.stringify({ acls: [{ action: "accept", src: ["group:eng"], dst: ["*:443"] }] }))], [/"group:eng" reach/]);
        await assertFails(p, [gateway, grant({ src: ["mallory@example.com"], dst: ["tag:ai-server"], ip: ["tcp:443"] })], [/"mallory@example.com"/], { "tailscale-restrict-server-access": { allowedUsers: ["alice@example.com"] } });
        assert.deepEqual(await messages(p, [gateway, grant({ src: ["tag:ai-client"], dst: ["tag:other"], ip: ["*"] })]), [], "rules not reaching the server are out of scope");
    });
    test("tailscale-restrict-server-access: GPU nodes are reachable only from the server tag, only on the enclave port", async () => {
        const p = [tailscaleRestrictServerAccess];
        const pool = JSON.stringify({
            grants: [
                { src: ["tag:ai-client"], dst: ["tag:ai-server"], ip: ["tcp:443"] },
                { src: ["tag:ai-server"], dst: ["tag:ai-node"], ip: ["tcp:11443"] },
            ],
            tests: [{ src: "tag:ai-server", accept: ["tag:ai-node:11443"], deny: ["tag:ai-node:11434"] }, { src: "tag:ai-client", accept: ["tag:ai-server:443"], deny: ["tag:ai-node:11443"] }],
        });
        const enclave = container("node-a-enclave", containerProps("enclave", { ports: [{ internal: 8443, external: 11443, ip: "100.70.0.1" }] }));
        assert.deepEqual(await messages(all, [gateway, enclave, acl(pool)]), []);
        const grant = (g: Record<string, unknown>) => acl(JSON.stringify({ grants: [g] }));
        await assertFails(p, [gateway, enclave, grant({ src: ["tag:ai-client"], dst: ["tag:ai-node"], ip: ["tcp:11443"] })], [/"tag:ai-client" reach tag:ai-node; only tag:ai-server may/]);
        await assertFails(p, [gateway, enclave, grant({ src: ["tag:ai-server"], dst: ["tag:ai-node"], ip: ["tcp:11434"] })], [/opens tag:ai-node:11434; only the enclave port 11443/]);
    });

    test("tailscale-restrict-server-access: without a published gateway the port must come from policy config", async () => {
        const p = [tailscaleRestrictServerAccess];
        await assertFails(p, [acl(rendered)], [/set gatewayPorts in policy config/]);
        assert.deepEqual(await messages(p, [acl(rendered)], { "tailscale-restrict-server-access": { gatewayPorts: [443] } }), []);
    });
});

describe("random-require-cookie-secret-length", () => {
    const p = [randomRequireCookieSecretLength];
    const bytes = (name: string, length: number) => res("random:index/randomBytes:RandomBytes", name, { length });
    test("32 bytes pass; 16 fail; other RandomBytes are out of scope", async () => {
        assert.deepEqual(await messages(p, [bytes("oauth2-proxy-cookie-secret", 32), bytes("api-key-salt", 8)]), []);
        await assertFails(p, [bytes("oauth2-proxy-cookie-secret", 16)], [/16 bytes; .* must be 32 bytes/]);
        await assertFails(p, [bytes("session-key", 24)], [/24 bytes/], { "random-require-cookie-secret-length": { namePattern: "session" } });
    });
});
