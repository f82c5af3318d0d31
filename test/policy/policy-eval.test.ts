/**
 * What plan and policy:check do around the analyzer: policy config handling, stack-export
 * reading, and the client of the real CrossGuard server (what it sends: props, parents,
 * dependencies, providers, config; how it maps not-applicable, errors and enforcement levels),
 * checked with probe policies served by @pulumi/policy's own server, and plan's in-process
 * evaluation giving the same answers.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { POLICIES } from "../../policies/all";
import {
    EXPORT_SECRET_PLACEHOLDER,
    PolicyEvaluationError,
    PolicyInputError,
    graphFromStackExport,
    resolvePolicyConfig,
    schemaProblems,
    type GraphResource,
    type Violation,
} from "../../scripts/lib/policy-eval";
import { evaluatePolicies } from "../../scripts/lib/plan-eval";
import { PolicyServer } from "../../scripts/lib/policy-server";
import { PROBES } from "../fixtures/probe-pack/probes";
import { CONTAINER, containerProps, res } from "./harness";

let probeServer: Promise<PolicyServer> | undefined;
after(async () => {
    await probeServer?.then((s) => s.stop());
});

const settle = <T>(p: Promise<T>) => p.then((value) => ({ value }), (e: Error) => ({ error: `${e.name}: ${e.message}` }));

/**
 * Only the named probe policies on the graph, through the real server serving the probe pack;
 * plan's in-process evaluation must give the very same result (or the same error).
 */
async function probe(names: string[], graph: readonly GraphResource[], config: Record<string, unknown> = {}): Promise<Violation[]> {
    probeServer ??= PolicyServer.start(join(__dirname, "..", "fixtures", "probe-pack"));
    const others = Object.fromEntries(PROBES.filter((p) => !names.includes(p.name)).map((p) => [p.name, "disabled"]));
    const resolved = resolvePolicyConfig(PROBES, { ...others, ...config });
    const served = await settle((await probeServer).analyze(resolved, graph));
    assert.deepEqual(await settle(evaluatePolicies(resolved, graph)), served, "plan's in-process evaluation differs from the served analyzer");
    if ("error" in served) return (await probeServer).analyze(resolved, graph);
    return served.value;
}

const problemsOf = (config: unknown): string => {
    try {
        resolvePolicyConfig(POLICIES, config, "cfg.json");
    } catch (e) {
        assert.ok(e instanceof PolicyInputError, String(e));
        return e.message;
    }
    assert.fail("expected the policy config to be rejected");
};

describe("policy config", () => {
    test("defaults come from each policy's configSchema; enforcement from the policy", () => {
        const byName = new Map(resolvePolicyConfig(POLICIES).map((r) => [r.policy.name, r]));
        assert.equal(byName.get("tls-require-strong-keys")?.config.minRsaBits, 3072);
        assert.equal(byName.get("image-require-digest-pin")?.enforcementLevel, "advisory");
        assert.equal(byName.get("ollama-disallow-host-ports")?.enforcementLevel, "mandatory");
    });
    test("levels per policy (string or object), `all`, and config values override", () => {
        const byName = new Map(
            resolvePolicyConfig(POLICIES, { all: "advisory", "image-require-digest-pin": "mandatory", "tls-restrict-client-cert-usage": { enforcementLevel: "mandatory", maxValidityDays: 30 } }).map((r) => [r.policy.name, r]),
        );
        assert.equal(byName.get("ollama-disallow-host-ports")?.enforcementLevel, "advisory");
        assert.equal(byName.get("image-require-digest-pin")?.enforcementLevel, "mandatory");
        assert.equal(byName.get("tls-restrict-client-cert-usage")?.config.maxValidityDays, 30);
    });
    test("every problem is reported at once, naming policy and key", () => {
        const msg = problemsOf({
            "no-such-policy": "mandatory",
            "image-require-digest-pin": "strict",
            "tls-require-strong-keys": { minRsaBits: 1024, colour: "red" },
            "tls-restrict-client-cert-usage": { maxValidityDays: "90" },
            "tailscale-restrict-server-access": { gatewayPorts: [443, 70000] },
        });
        for (const re of [/cfg\.json: invalid policy config \(6 problems\)/, /no-such-policy: no such policy/, /image-require-digest-pin: enforcement level must be one of advisory, mandatory, remediate, disabled/, /tls-require-strong-keys\.minRsaBits: must be >= 2048 \(got 1024\)/, /tls-require-strong-keys\.colour: unknown config key \(allowed: minRsaBits, allowedEcdsaCurves\)/, /maxValidityDays: must be integer \(got "90"\)/, /gatewayPorts\[1\]: must be <= 65535/]) {
            assert.match(msg, re);
        }
    });
    test("the document must be an object", () => {
        assert.match(problemsOf([1, 2]), /must be a JSON object/);
    });
    test("every configSchema default satisfies its own schema, and no policy declares enforcementLevel as config", () => {
        for (const p of POLICIES) {
            for (const [k, s] of Object.entries(p.configSchema?.properties ?? {})) {
                assert.notEqual(k, "enforcementLevel");
                if (typeof s === "object" && s.default !== undefined) assert.deepEqual(schemaProblems(s.default, s, `${p.name}.${k}`), []);
            }
        }
    });
});

describe("the pack itself", () => {
    test("names are <area>-<verb>-<thing> and unique; each has a description and a deliberate level", () => {
        const names = POLICIES.map((p) => p.name);
        assert.equal(new Set(names).size, names.length);
        for (const p of POLICIES) {
            assert.match(p.name, /^[a-z0-9]+-(disallow|require|restrict|limit)-[a-z0-9-]+$/, p.name);
            assert.ok(p.description.length > 60, `${p.name}: description too short to say what and why`);
            assert.ok(p.enforcementLevel === "mandatory" || p.enforcementLevel === "advisory", p.name);
        }
    });
    test("the issue's policies are all present", () => {
        const names = new Set(POLICIES.map((p) => p.name));
        for (const n of ["ollama-disallow-host-ports", "ollama-require-internal-network", "gateway-require-single-ingress", "container-disallow-privileged", "container-require-no-new-privileges", "image-require-digest-pin", "ollama-require-gpu-reservation", "ollama-require-encrypted-model-store"]) {
            assert.ok(names.has(n), n);
        }
        const stackPolicies = POLICIES.filter((p) => "validateStack" in p).map((p) => p.name).sort();
        assert.deepEqual(stackPolicies, ["gateway-require-single-ingress", "ollama-require-internal-network", "ollama-restrict-network-peers", "tailscale-restrict-server-access"]);
    });
});

describe("stack export reading", () => {
    const fixture = JSON.parse(readFileSync("test/fixtures/stack-export-violations.json", "utf8"));
    const shapeError = (doc: unknown): string => {
        try {
            graphFromStackExport(doc, "x.json");
        } catch (e) {
            assert.ok(e instanceof PolicyInputError);
            return e.message;
        }
        assert.fail("expected the export to be rejected");
    };
    test("reads resources with names from URNs, parents and dependencies", () => {
        const graph = graphFromStackExport(fixture, "f.json");
        const ollama = graph.find((r) => r.name === "ollama-container")!;
        assert.equal(ollama.type, CONTAINER);
        assert.match(ollama.parent!, /OllamaRuntime::ollama$/);
        assert.equal(ollama.dependencies.length, 3);
        assert.equal(ollama.propertyDependencies.image.length, 1);
    });
    test("encrypted secrets become a placeholder; plaintext secrets are unwrapped", () => {
        const graph = graphFromStackExport(fixture, "f.json");
        assert.equal(graph.find((r) => r.name === "pki-ca-key")!.outputs.privateKeyPem, EXPORT_SECRET_PLACEHOLDER);
        const plain = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify(["no-new-privileges:false"]) };
        const [r] = graphFromStackExport({ version: 3, deployment: { resources: [{ urn: "urn:pulumi:s::p::docker:index/container:Container::c", type: CONTAINER, inputs: { securityOpts: plain } }] } }, "p.json");
        assert.deepEqual(r.inputs.securityOpts, ["no-new-privileges:false"]);
        assert.deepEqual(r.outputs, r.inputs, "no outputs yet: stack policies see the inputs");
    });
    test("malformed documents are rejected with the JSON path of each problem", () => {
        assert.match(shapeError("text"), /top level must be a JSON object/);
        assert.match(shapeError({ version: 3 }), /deployment: missing or not an object/);
        assert.match(shapeError({ version: 9, deployment: {} }), /unsupported deployment version 9/);
        assert.match(shapeError({ deployment: { resources: {} } }), /deployment\.resources: must be an array/);
        const msg = shapeError({ deployment: { resources: [{ urn: "urn:pulumi:s::p::t::a", type: "t" }, { urn: "nope", inputs: [] }, 7, { urn: "urn:pulumi:s::p::t::b", type: "t", dependencies: [1] }] } });
        for (const re of [/resources\[1\]\.urn: must be a URN/, /resources\[1\]\.type: must be a resource type token/, /resources\[1\]\.inputs: must be an object/, /resources\[2\]: must be an object/, /resources\[3\]\.dependencies: must be an array of URNs/]) assert.match(msg, re);
        assert.deepEqual(graphFromStackExport({ version: 3, deployment: {} }, "empty.json"), [], "a stack with no resources is valid");
    });
    test("a resource's provider reference (<urn>::<id>) reaches the policies as the analyzer's provider object", async () => {
        const prov = "urn:pulumi:s::p::zero-trust-ollama:node:GpuNode$pulumi:providers:docker::node-a-docker";
        const doc = { version: 3, deployment: { resources: [{ urn: prov, type: "pulumi:providers:docker", inputs: { host: "ssh://a" }, outputs: { host: "ssh://a" } }, { urn: "urn:pulumi:s::p::docker:index/container:Container::c", type: CONTAINER, provider: `${prov}::0b6f-id`, inputs: {} }, { urn: "urn:pulumi:s::p::docker:index/container:Container::d", type: CONTAINER, provider: "urn:pulumi:s::p::pulumi:providers:docker::gone::x", inputs: {} }] } };
        const graph = graphFromStackExport(doc, "p.json");
        assert.equal(graph[1].provider, prov);
        const seen = (await probe(["t-stack"], graph)).filter((v) => v.urn?.includes("Container")).map((v) => JSON.parse(v.message)[5]);
        assert.deepEqual(seen, [["pulumi:providers:docker", "node-a-docker", "ssh://a"], ["pulumi:providers:docker", "gone", null]]);
    });
    test("old copies of replaced resources (delete: true) are not part of the stack", () => {
        const urn = "urn:pulumi:s::p::docker:index/container:Container::c";
        const graph = graphFromStackExport({ version: 3, deployment: { resources: [{ urn, type: CONTAINER, inputs: { privileged: true }, delete: true }, { urn, type: CONTAINER, inputs: { privileged: false } }] } }, "r.json");
        assert.deepEqual(graph.map((r) => r.inputs.privileged), [false]);
    });
});

describe("the analyzer client, against probe policies on the real server", () => {
    const c = res(CONTAINER, "c", containerProps("filter"));
    test("not-applicable is not a violation; a throwing policy is an error naming policy and resource", async () => {
        assert.deepEqual(await probe(["t-quiet"], [c]), []);
        await assert.rejects(probe(["t-broken"], [c]), (e: unknown) => e instanceof PolicyEvaluationError && /^policy t-broken failed on urn:pulumi:test.*::c: boom$/.test(e.message));
    });
    test("disabled policies do not run; remediate reports as mandatory", async () => {
        assert.deepEqual(await probe(["t-always"], [c], { "t-always": "disabled" }), []);
        const [v] = await probe(["t-always"], [c], { "t-always": "remediate" });
        assert.equal(v.enforcementLevel, "mandatory");
        assert.equal(v.message, "x", "the policy's description is not part of the message");
    });
    test("resource policies get isType/asType/getConfig/name/urn/parent like the CLI gives them", async () => {
        const child = { ...c, parent: "urn:pulumi:test::zero-trust-ollama::zero-trust-ollama:x:X::p" };
        assert.deepEqual((await probe(["t-probe"], [child])).map((v) => JSON.parse(v.message)), [[true, false, false, 7, "c", c.urn, 0, child.parent]]);
        assert.equal(JSON.parse((await probe(["t-probe"], [c], { "t-probe": { n: 9 } }))[0].message)[3], 9, "configured values reach getConfig");
    });
    test("stack policies see outputs, parents, dependencies and property dependencies as objects", async () => {
        const parent = res("zero-trust-ollama:x:X", "p", {});
        const net = res("docker:index/network:Network", "n", { name: "n1" }, { id: "net-id" });
        const child = { ...res(CONTAINER, "k", containerProps("filter")), parent: parent.urn, dependencies: [net.urn], propertyDependencies: { networksAdvanced: [net.urn] } };
        const vs = await probe(["t-stack"], [parent, net, child]);
        const k = vs.find((v) => v.urn === child.urn)!;
        assert.deepEqual(JSON.parse(k.message).slice(0, 5), ["k", "p", ["net-id"], { networksAdvanced: ["n"] }, true]);
        assert.deepEqual(vs.at(-1), { policy: "t-stack", enforcementLevel: "advisory", urn: undefined, message: "stack-wide" });
    });
});
