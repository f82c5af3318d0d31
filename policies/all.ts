/**
 * Every policy of the pack, in report order. Importing this constructs nothing (constructing a
 * PolicyPack starts a gRPC server), so tests, `npm run plan` and `npm run policy:check` evaluate
 * exactly these objects.
 */
import type { Policies } from "@pulumi/policy";
import { containerDisallowDangerousCapabilities } from "./rules/container-disallow-dangerous-capabilities";
import { containerDisallowDockerSocket } from "./rules/container-disallow-docker-socket";
import { containerDisallowHostNamespaces } from "./rules/container-disallow-host-namespaces";
import { containerDisallowPrivileged } from "./rules/container-disallow-privileged";
import { containerRequireDroppedCapabilities } from "./rules/container-require-dropped-capabilities";
import { containerRequireNoNewPrivileges } from "./rules/container-require-no-new-privileges";
import { containerRequireRoleLabel } from "./rules/container-require-role-label";
import { ollamaRequireNodeEnclaveMtls } from "./rules/ollama-require-node-enclave-mtls";
import { entraRequireSecurityDefaultsOff } from "./rules/entra-require-security-defaults-off";
import { entraDisallowImplicitGrant } from "./rules/entra-disallow-implicit-grant";
import { entraRequireAssignment } from "./rules/entra-require-assignment";
import { entraRequireHttpsRedirects } from "./rules/entra-require-https-redirects";
import { entraRequireSingleTenant } from "./rules/entra-require-single-tenant";
import { gatewayRequireSingleIngress } from "./rules/gateway-require-single-ingress";
import { imageRequireDigestPin } from "./rules/image-require-digest-pin";
import { ollamaDisallowHostPorts } from "./rules/ollama-disallow-host-ports";
import { ollamaDisallowUnverifiedModelStore } from "./rules/ollama-disallow-unverified-model-store";
import { ollamaDisallowVulnerableVersion } from "./rules/ollama-disallow-vulnerable-version";
import { ollamaRequireEncryptedModelStore } from "./rules/ollama-require-encrypted-model-store";
import { ollamaRequireGpuReservation } from "./rules/ollama-require-gpu-reservation";
import { ollamaRequireInternalNetwork } from "./rules/ollama-require-internal-network";
import { ollamaRestrictNetworkPeers } from "./rules/ollama-restrict-network-peers";
import { randomRequireCookieSecretLength } from "./rules/random-require-cookie-secret-length";
import { tailscaleDisallowWildcards } from "./rules/tailscale-disallow-wildcards";
import { tailscaleRequireAclTests } from "./rules/tailscale-require-acl-tests";
import { tailscaleRestrictServerAccess } from "./rules/tailscale-restrict-server-access";
import { tlsLimitServerCertValidity } from "./rules/tls-limit-server-cert-validity";
import { tlsRequireStrongKeys } from "./rules/tls-require-strong-keys";
import { tlsRestrictCaUsage } from "./rules/tls-restrict-ca-usage";
import { tlsRestrictClientCertUsage } from "./rules/tls-restrict-client-cert-usage";

export const PACK_NAME = "zero-trust-ollama";

export const POLICIES: Policies = [
    ollamaDisallowHostPorts,
    ollamaRequireInternalNetwork,
    ollamaRestrictNetworkPeers,
    gatewayRequireSingleIngress,
    ollamaRequireNodeEnclaveMtls,
    containerDisallowPrivileged,
    containerDisallowHostNamespaces,
    containerDisallowDockerSocket,
    containerDisallowDangerousCapabilities,
    containerRequireDroppedCapabilities,
    containerRequireNoNewPrivileges,
    containerRequireRoleLabel,
    imageRequireDigestPin,
    ollamaDisallowVulnerableVersion,
    ollamaRequireGpuReservation,
    ollamaRequireEncryptedModelStore,
    ollamaDisallowUnverifiedModelStore,
    tlsRequireStrongKeys,
    tlsRestrictCaUsage,
    tlsRestrictClientCertUsage,
    tlsLimitServerCertValidity,
    entraDisallowImplicitGrant,
    entraRequireHttpsRedirects,
    entraRequireSingleTenant,
    entraRequireAssignment,
    entraRequireSecurityDefaultsOff,
    tailscaleDisallowWildcards,
    tailscaleRestrictServerAccess,
    tailscaleRequireAclTests,
    randomRequireCookieSecretLength,
];
