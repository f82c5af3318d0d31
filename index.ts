/**
 * zero-trust-ollama: parse and validate the stack config, compose the components, export the
 * outputs. Invalid config stops the program before any resource is registered.
 */
import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfig from "@pulumi/pulumi/runtime/config";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { getMonitor } from "@pulumi/pulumi/runtime/settings";
import { formatProblems, parsePulumiConfig } from "./components/config";
import { modelsPathProblems, statPath } from "./components/host-preflight";
import { deployStack } from "./components/stack";

// The SDK knows which config keys hold secrets (`secure:` values) but does not type this accessor.
const { isConfigSecret } = runtimeConfig as unknown as { isConfigSecret(fullKey: string): boolean };
// Every key of every namespace is checked: a misspelled namespace is an error, never skipped.
const parsed = parsePulumiConfig(pulumi.runtime.allConfig(), isConfigSecret);
if (!parsed.ok) {
    // RunError ends the program with this message only: no stack trace, non-zero exit.
    throw new pulumi.RunError(formatProblems(parsed.problems));
}
// Step two, on the deploying machine: what Docker would otherwise fail on half-way through. Under
// mocks (plan, tests) there is no Docker host to look at.
const hostProblems = getMonitor() instanceof MockMonitor ? [] : modelsPathProblems(parsed.config, statPath);
if (hostProblems.length) throw new pulumi.RunError(formatProblems(hostProblems, "the stack cannot be deployed on this host"));
const config = new pulumi.Config();
const outputs = deployStack(parsed.config, {
    oidcClientSecret: parsed.config.hasOidcClientSecret ? config.requireSecret("oidcClientSecret") : undefined,
    tailscaleLogstreamToken: parsed.config.hasTailscaleLogstreamToken ? config.requireSecret("tailscaleLogstreamToken") : undefined,
});

export const gatewayUrl = outputs.gatewayUrl;
export const caCertPem = outputs.caCertPem;
export const devices = outputs.devices;
export const deviceBundles = pulumi.secret(outputs.deviceBundles);
export const gatewayListenAddress = outputs.gatewayListenAddress;
export const tailnetPolicy = outputs.tailnetPolicy;
export const tailnetServerAuthKey = outputs.tailnetServerAuthKey && pulumi.secret(outputs.tailnetServerAuthKey);
export const identity = outputs.identity;
export const apiKeys = outputs.apiKeys && pulumi.secret(outputs.apiKeys);
export const nodeAuthKeys = outputs.nodeAuthKeys && pulumi.secret(outputs.nodeAuthKeys);
