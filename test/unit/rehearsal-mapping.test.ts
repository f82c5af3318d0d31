/**
 * The rehearsal's field tables (scripts/rehearsal/mapping.ts): every Docker input the example
 * stacks emit is mapped or listed as not applicable, and an input in neither list (a new field,
 * a new nested key, a new Docker resource type) fails with its name instead of being dropped.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { readFileSync } from "node:fs";
import { parseStackFile, readStackFile } from "../../components/stack-file";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";
import { OFFLINE_CALLS } from "../../scripts/plan";
import { CONTAINER_FIELDS, MappingError, planRehearsal, TYPES } from "../../scripts/rehearsal/mapping";
import { CHECK_ROLE, checksFirst } from "../../scripts/rehearsal/engine";
import { mockImageIds } from "../../scripts/rehearsal/run";

async function resourcesOf(file: ReturnType<typeof readStackFile>): Promise<RecordedResource[]> {
    const r = await runProgramUnderMocks(file, { stack: "mapping", calls: OFFLINE_CALLS });
    assert.ok(r.ok);
    return r.resources;
}

function haproxyDev() {
    const doc = parse(readFileSync("Pulumi.dev.yaml", "utf8"));
    doc.config["zero-trust-ollama:gateway"].kind = "haproxy";
    return parseStackFile(stringify(doc), "dev (haproxy)");
}

describe("rehearsal field mapping", () => {
    const graphs: Record<string, RecordedResource[]> = {};
    before(async () => {
        for (const f of ["Pulumi.dev.yaml", "Pulumi.prod.yaml", "test/fixtures/Pulumi.nodes.yaml", "test/fixtures/Pulumi.rehearsal.yaml"]) graphs[f] = await resourcesOf(readStackFile(f));
        graphs.haproxy = await resourcesOf(haproxyDev());
    });

    test("every example stack maps completely; what is not applied is named with its reason", () => {
        for (const [name, resources] of Object.entries(graphs)) {
            const plan = planRehearsal(resources, mockImageIds);
            assert.equal(plan.containers.length, resources.filter((r) => r.type === TYPES.container).length, name);
            assert.equal(plan.networks.length, resources.filter((r) => r.type === TYPES.network).length, name);
            for (const note of plan.notApplied) assert.match(note, /not applied: .{10,}/, note);
        }
        const prod = planRehearsal(graphs["Pulumi.prod.yaml"], mockImageIds).notApplied.join("\n");
        assert.match(prod, /gpus not applied: GPU device requests/);
        assert.match(prod, /logDriver syslog not applied: no syslog receiver/);
        assert.match(prod, /host "ssh:\/\/deploy@gpu-01\.corp\.example\.com" not applied: remote Docker hosts/);
    });

    test("the mapped container keeps the security-relevant inputs", () => {
        const plan = planRehearsal(graphs["Pulumi.dev.yaml"], mockImageIds);
        const gw = plan.containers.find((c) => c.role === "gateway")!;
        assert.deepEqual(gw.create.HostConfig.CapDrop, ["ALL"]);
        assert.equal(gw.create.HostConfig.ReadonlyRootfs, true);
        assert.deepEqual(gw.create.HostConfig.SecurityOpt, ["no-new-privileges:true"]);
        assert.equal(gw.create.User, "101:101");
        assert.deepEqual(Object.values(gw.create.HostConfig.PortBindings), [[{ HostIp: "127.0.0.1", HostPort: "8443" }]]);
        assert.deepEqual(gw.networks.map((n) => n.name), ["zto-mapping-edge", "zto-mapping-to-filter"]);
        // The TLS key reaches the gateway through its config writer, readable by the gateway's uid only.
        const writer = plan.containers.find((c) => c.role === "gateway-config")!;
        assert.deepEqual(gw.uploads, []);
        assert.ok(writer.uploads.some((u) => u.file.endsWith("server.key") && u.mode === 0o400 && u.uid === 101));
        // The TLS session ticket key is a binary upload (contentBase64): its bytes, not its base64 text.
        assert.ok(writer.uploads.some((u) => u.file.endsWith("tls/session-ticket.key") && u.content.length === 80 && u.mode === 0o400 && u.uid === 101));
    });

    const first = (rs: RecordedResource[], type: string) => rs.findIndex((r) => r.type === type);
    const withChange = (change: (r: RecordedResource[]) => void) => {
        const copy = structuredClone(graphs["Pulumi.dev.yaml"]);
        change(copy);
        return () => planRehearsal(copy, mockImageIds);
    };
    const cases: { what: string; change: (r: RecordedResource[]) => void; says: RegExp }[] = [
        { what: "a new container field (a gateway volume list)", change: (r) => (r[first(r, TYPES.container)].inputs.volumes = [{ volumeName: "x", containerPath: "/x" }]), says: /\.volumes: the rehearsal neither maps/ },
        { what: "a new nested mount key", change: (r) => r[first(r, TYPES.container)].inputs.mounts.push({ type: "volume", source: "v", target: "/v", volumeOptions: { noCopy: true } }), says: /mounts\[1\]\.volumeOptions/ },
        { what: "an unknown mount type", change: (r) => r[first(r, TYPES.container)].inputs.mounts.push({ type: "tmpfs", target: "/t" }), says: /mount type "tmpfs" is not mapped/ },
        // The first service with a healthcheck (one-shot check containers come earlier and have none).
        { what: "a new healthcheck key", change: (r) => (r.find((x) => x.type === TYPES.container && x.inputs.healthcheck)!.inputs.healthcheck.startInterval = "1s"), says: /healthcheck\.startInterval/ },
        { what: "a new network field", change: (r) => (r[first(r, TYPES.network)].inputs.ipamConfigs = [{ subnet: "10.0.0.0/24" }]), says: /\.ipamConfigs: the rehearsal neither maps/ },
        { what: "an unknown Docker resource type", change: (r) => r.push({ ...r[first(r, TYPES.volume)], type: "docker:index/service:Service", name: "writer" }), says: /writer \(docker:index\/service:Service\): the rehearsal does not know this Docker resource type/ },
    ];
    for (const c of cases) {
        test(`fails, naming the field: ${c.what}`, () => {
            assert.throws(withChange(c.change), (e: Error) => e instanceof MappingError && c.says.test(e.message));
        });
    }

    test("the gateway's config writer maps as a one-shot: no network, run to exit before the gateway, its logs kept", () => {
        for (const [name, resources] of Object.entries(graphs)) {
            const plan = planRehearsal(resources, mockImageIds);
            const writer = plan.containers.find((c) => c.role === "gateway-config")!;
            const gateway = plan.containers.find((c) => c.role === "gateway")!;
            assert.ok(writer.runToExit && writer.keepLogs, name);
            assert.equal(writer.create.HostConfig.NetworkMode, "none", name);
            assert.deepEqual(writer.create.HostConfig.RestartPolicy, { Name: "no" }, name);
            assert.ok(gateway.dependsOn.includes(writer.resourceName), `${name}: the gateway depends on the writer`);
            assert.ok(plan.containers.indexOf(writer) < plan.containers.indexOf(gateway), `${name}: the writer comes first`);
            assert.ok(!gateway.runToExit && !gateway.keepLogs, name);
            assert.ok(writer.uploads.length > 0 && writer.uploads.every((u) => u.file.includes("/generations/")), name);
        }
        for (const [field, rule] of Object.entries(CONTAINER_FIELDS)) assert.ok("map" in rule || rule.notApplicable.length > 20, field);
    });

    const writerOf = (r: RecordedResource[]) => r.find((x) => x.name === "gateway-config-writer")!;
    const oneShotCases: { what: string; change: (w: RecordedResource) => void; says: RegExp }[] = [
        { what: "a new writer field (wait)", change: (w) => (w.inputs.wait = true), says: /gateway-config-writer \(docker:index\/container:Container\)\.wait: the rehearsal neither maps/ },
        { what: "an attached container the engine would restart", change: (w) => (w.inputs.restart = "unless-stopped"), says: /\.restart: a container Pulumi waits for \(attach\) must not be restarted/ },
        { what: "an attached container that must keep running", change: (w) => delete w.inputs.mustRun, says: /\.mustRun: a container Pulumi waits for \(attach\) must set mustRun false/ },
        { what: "logs without attach", change: (w) => delete w.inputs.attach, says: /\.logs: the provider keeps logs only of an attached container/ },
        { what: "an upload with both content and contentBase64", change: (w) => (w.inputs.uploads[0].contentBase64 = "AA=="), says: /uploads\[0\]: exactly one of content and contentBase64/ },
        { what: "mustRun false on a service", change: (w) => (delete w.inputs.attach, delete w.inputs.logs), says: /\.mustRun: false on a service/ },
    ];
    for (const c of oneShotCases) {
        test(`fails, naming the field: ${c.what}`, () => {
            assert.throws(withChange((r) => c.change(writerOf(r))), (e: Error) => e instanceof MappingError && c.says.test(e.message));
        });
    }

    test("the checks run before every other container, each group in the program's order; a check that needs another container is refused by name", () => {
        const plan = planRehearsal(graphs["Pulumi.dev.yaml"], mockImageIds);
        const { checks, rest } = checksFirst(plan.containers);
        assert.deepEqual(checks.map((c) => c.resourceName).sort(), ["filter-rules-check-probe", "filter-state-check-probe", "gateway-config-check-probe", "ollama-model-store-probe"]);
        assert.deepEqual(rest, plan.containers.filter((c) => c.role !== CHECK_ROLE), "the rest keep the program's order");
        assert.deepEqual([...checks, ...rest].map((c) => c.resourceName).sort(), plan.containers.map((c) => c.resourceName).sort(), "nothing dropped");
        const consumers = rest.filter((c) => c.dependsOn.some((d) => checks.some((x) => x.resourceName === d)));
        assert.ok(consumers.some((c) => c.role === "ollama") && consumers.some((c) => c.role === "gateway-config"), "Ollama and the config writer wait for their checks");
        const tangled = plan.containers.map((c) => (c.resourceName === "gateway-config-check-probe" ? { ...c, dependsOn: [...c.dependsOn, "filter-container"] } : c));
        assert.throws(() => checksFirst(tangled), /gateway-config-check-probe: a check that depends on filter-container/);
    });
});
