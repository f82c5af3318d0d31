/**
 * zero-trust-ollama: parse and validate the stack config, compose the components, export the
 * outputs. Invalid config stops the program before any resource is registered.
 */
import * as pulumi from "@pulumi/pulumi";
import { fromPulumiConfigMap, parseStackConfig, formatProblems } from "./components/config";
import { deployStack } from "./components/stack";

const parsed = parseStackConfig(fromPulumiConfigMap(pulumi.runtime.allConfig()));
if (!parsed.ok) {
    // RunError ends the program with this message only: no stack trace, non-zero exit.
    throw new pulumi.RunError(formatProblems(parsed.problems));
}
const config = new pulumi.Config();
const outputs = deployStack(parsed.config, { oidcClientSecret: parsed.config.hasOidcClientSecret ? config.requireSecret("oidcClientSecret") : undefined });

export const gatewayUrl = outputs.gatewayUrl;
export const caCertPem = outputs.caCertPem;
export const devices = outputs.devices;
export const deviceBundles = pulumi.secret(outputs.deviceBundles);
