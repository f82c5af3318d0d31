/**
 * The stacks' containers on a real Docker engine (npm run rehearse, docs/rehearsal.md): every
 * container healthy by its own healthcheck, the published port serving enrolled devices and
 * refusing the denied routes with the stub Ollama's log showing nothing, the measured
 * reachability matrix, hardening observed in /proc, revocation by a config edit, the
 * encrypted-storage checks refusing this machine's plain disk with only check containers ever
 * created, and (prod-like stack) the filter's budget ledger on its state volume across a container
 * restart. Needs
 * dockerd: without it the file fails, locally as in CI (.ci/setup.d/30-docker.sh starts it), never skips.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { parseStackFile, type StackFile } from "../../components/stack-file";
import { OFFLINE_CALLS } from "../../scripts/plan";
import { stackWithPort } from "../../scripts/rehearse";
import { measure, formatMatrix, type Matrix } from "../../scripts/rehearsal/matrix";
import { CHECK_ROLE, containerLogs, REHEARSAL_LABEL, removeByLabel } from "../../scripts/rehearsal/engine";
import { applyAgain, endRehearsal, rehearse, RehearsalError, type Rehearsal } from "../../scripts/rehearsal/run";
import { SESSION_COOKIE } from "../../scripts/sandbox/stub-oauth2-proxy";
import type { OllamaLogEntry, OllamaRequestEntry } from "../../scripts/sandbox/stub-ollama";
import { gatewayRequest, type SandboxInfo } from "./harness";

function engineAvailable(): boolean {
    return spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { stdio: "ignore", timeout: 20_000 }).status === 0;
}
if (!engineAvailable()) throw new Error("dockerd is not reachable: the engine tests need a Docker engine (start dockerd as root; .ci/setup.d/30-docker.sh does it in CI)");

async function freePort(): Promise<number> {
    return new Promise((resolve) => {
        const s = createServer().listen(0, "127.0.0.1", () => {
            const { port } = s.address() as { port: number };
            s.close(() => resolve(port));
        });
    });
}

/** The rehearsal as the sandbox harness's client expects it (url, CA, device certs, users). */
function clientInfo(r: Rehearsal): SandboxInfo {
    const users = Object.fromEntries(r.users.map((u) => [u.email, { cookie: `${SESSION_COOKIE}=${u.sessionToken}`, bearer: u.bearerToken, groups: u.groups }]));
    return { url: r.url, ca: r.caPath, devices: r.devices, users } as unknown as SandboxInfo;
}

/** Every request the Ollama stand-in received, from its log on stdout. */
function ollamaLog(r: Rehearsal): OllamaLogEntry[] {
    const out = execFileSync("docker", ["logs", r.containerOf("ollama").id], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as OllamaLogEntry);
}
/**
 * Paths of the requests that came through the network: the container's own healthcheck (`ollama
 * list`, the real client, User-Agent ollama/<version>) runs inside it and is left out.
 */
const paths = (log: OllamaLogEntry[]) =>
    log.filter((e): e is OllamaRequestEntry => e.kind === "request" && !String(e.headers["user-agent"] ?? "").startsWith("ollama/")).map((e) => e.path);

// Generous bounds for a loaded 2-core machine: they end a wait, they are not performance targets.
const opts = (stackName: string) => ({ stackName, calls: OFFLINE_CALLS, healthTimeoutMs: 240_000 });
const HOOK_TIMEOUT_MS = 900_000;

/** Every object of this test's stack name goes, whether or not the rehearsal came up. */
async function cleanUp(r: Rehearsal | undefined, stackName: string): Promise<void> {
    if (r) await endRehearsal(r);
    await removeByLabel(stackName);
}

const services = (r: Rehearsal) => r.deployed.containers.filter((c) => !c.plan.runToExit);
const oneShots = (r: Rehearsal) => r.deployed.containers.filter((c) => c.plan.runToExit);
const inspect = (id: string) => JSON.parse(execFileSync("docker", ["inspect", id], { encoding: "utf8" }))[0];
const DENIED = ["/api/pull", "/api/delete", "/api/create", "/api/push", "/api/copy", "/API/PULL", "/api/%70ull", "/api//pull", "/api/tags/../pull", "/api/pull;x=1", "/", "/api/blobs/sha256:00"];

function checkSegmentation(m: Matrix, caller: string, others: string[]): void {
    const ollama = m.endpoints.find((e) => e.role === "ollama")!;
    const byRole = (role: string) => m.endpoints.find((e) => e.role === role)!.name;
    assert.equal(m.reach[byRole(caller)][ollama.name], "open", `${caller} reaches Ollama`);
    for (const role of others) assert.notEqual(m.reach[byRole(role)][ollama.name], "open", `${role} must not reach Ollama`);
    assert.equal(m.reach.host[ollama.name], "no route", "the host has no route to Ollama");
    for (const address of Object.values(ollama.addresses)) assert.equal(m.hostRoutes[address], "none", `host route to ${address}`);
    for (const e of m.endpoints) {
        if (e.role === "gateway") assert.equal(e.published.length, 1, "the gateway publishes exactly one port");
        else assert.deepEqual(e.published, [], `${e.name} publishes nothing`);
        // Docker still writes a default route on internal networks; on a network without a host
        // address nobody holds its gateway address, so it leads nowhere.
        if (!Object.keys(e.addresses).some((n) => /-(edge|egress)$/.test(n))) assert.match(e.defaultRoute, /^(none|via \S+ \(dead: nobody holds it\))$/, `${e.name}: ${e.defaultRoute}`);
    }
}

function checkHardening(r: Rehearsal): void {
    // A one-shot has exited, so there is no /proc to read: what the engine applied to it is read back.
    assert.ok(oneShots(r).length > 0, "the gateway's config writer ran");
    for (const c of oneShots(r)) {
        const info = inspect(c.id);
        assert.equal(info.State.ExitCode, 0, c.name);
        assert.deepEqual([info.HostConfig.NetworkMode, info.HostConfig.ReadonlyRootfs, info.HostConfig.CapDrop, info.HostConfig.SecurityOpt, info.HostConfig.RestartPolicy.Name], ["none", true, ["ALL"], ["no-new-privileges:true"], "no"], c.name);
    }
    for (const c of services(r)) {
        const info = inspect(c.id);
        const status = readFileSync(`/proc/${info.State.Pid}/status`, "utf8");
        const field = (k: string) => new RegExp(`^${k}:\\s+(.*)$`, "m").exec(status)?.[1].trim();
        assert.equal(field("CapEff"), "0000000000000000", `${c.name}: CapEff`);
        assert.equal(field("NoNewPrivs"), "1", `${c.name}: no_new_privs`);
        const declared = String(c.plan.create.User ?? "");
        const uid = field("Uid")!.split(/\s+/)[0];
        if (declared) {
            assert.equal(uid, declared.split(":")[0], `${c.name}: runs as the declared uid`);
            assert.notEqual(uid, "0", `${c.name}: not root`);
        } else {
            // Only Ollama declares no user: the official image runs as root (models in /root/.ollama),
            // with every capability dropped. Anything else without a user is a defect.
            assert.equal(c.plan.role, "ollama", `${c.name} declares no user`);
        }
        const write = spawnSync("docker", ["exec", c.id, "sh", "-c", "echo x > /zto-write-probe"], { encoding: "utf8" });
        assert.notEqual(write.status, 0, `${c.name}: root filesystem accepted a write`);
        assert.match(write.stderr, /Read-only file system/, `${c.name}: ${write.stderr}`);
    }
}

/**
 * The dev stack with the two development waivers: this machine keeps Docker's data root (the
 * stack's volumes) on a plain ext4 disk, and the rehearsal bind-mounts a scratch directory on it
 * in place of the model store, so the stack as shipped is refused here (the last suite shows that
 * refusal on the engine).
 */
function devStackWithWaivers(port: number, edit: (doc: any) => void = () => undefined): StackFile {
    const doc = parse(readFileSync("Pulumi.dev.yaml", "utf8"));
    doc.config["zero-trust-ollama:ollama"].allowUnencryptedModels = true;
    doc.config["zero-trust-ollama:docker"] = { ...doc.config["zero-trust-ollama:docker"], allowUnencryptedVolumes: true };
    doc.config["zero-trust-ollama:gateway"].port = port;
    edit(doc);
    return parseStackFile(stringify(doc), `Pulumi.dev.yaml (development waivers, gateway.port ${port})`);
}

describe("dev stack on the real engine", () => {
    let r: Rehearsal;
    let m: Matrix;
    let port: number;
    const name = `e2e-dev-${process.pid}`;
    before(async () => {
        port = await freePort();
        r = await rehearse(devStackWithWaivers(port), opts(name));
        m = await measure(r.deployed);
        process.stdout.write(`${formatMatrix("Pulumi.dev.yaml", m)}\ntimings ${JSON.stringify(r.timings)}\n`);
    }, { timeout: HOOK_TIMEOUT_MS });
    after(() => cleanUp(r, name), { timeout: HOOK_TIMEOUT_MS });

    test("the config writer ran to exit 0 before the gateway started; every service reached healthy by its own declared healthcheck", async () => {
        const [writer] = oneShots(r);
        const gateway = r.containerOf("gateway");
        assert.ok(writer, "a one-shot config writer");
        assert.ok(Date.parse(inspect(writer.id).State.FinishedAt) <= Date.parse(inspect(gateway.id).State.StartedAt), "the writer finished before the gateway started");
        assert.match(await containerLogs(r.deployed.docker, writer.id), /zto-config-writer: current -> generations\/[0-9a-f]{16} \(was nothing\)/);
        for (const c of services(r)) assert.equal(inspect(c.id).State.Health?.Status, "healthy", c.name);
    });

    test("reachability: only the filter reaches Ollama; the host has no route to it; only the gateway publishes", () => {
        checkSegmentation(m, "filter", ["gateway"]);
    });

    test("an enrolled device gets 200 on allowlisted routes; denied routes and path tricks are refused and Ollama saw none of them", async () => {
        const info = clientInfo(r);
        const ok = await gatewayRequest(info, { path: "/api/tags", device: "alice-laptop" });
        assert.equal(ok.status, 200, ok.body);
        assert.equal((await gatewayRequest(info, { path: "/api/version", device: "alice-laptop" })).status, 200);
        const before = ollamaLog(r).length;
        for (const p of DENIED) {
            const res = await gatewayRequest(info, { path: p, method: "POST", body: { name: "llama3.2:3b" }, device: "alice-laptop" });
            assert.ok(res.status >= 400 && res.status < 500, `${p}: ${res.status}`);
        }
        assert.equal((await gatewayRequest(info, { path: "/api/tags", device: null })).status, 400, "no client certificate");
        assert.deepEqual(paths(ollamaLog(r).slice(before)), [], "Ollama received nothing");
    });

    test("hardening observed: read-only root, declared non-root uid, CapEff 0, no_new_privs 1", () => {
        checkHardening(r);
    });

    test("revocation: remove a device and apply again: only the config writer is replaced, the gateway reloads in place, the device gets 403 and Ollama sees nothing", async () => {
        const gateway = r.containerOf("gateway");
        const startedAt = inspect(gateway.id).State.StartedAt;
        const workers = nginxWorkers(gateway.id);
        assert.ok(workers.length > 0, "nginx workers before the edit");

        const withoutAlice = devStackWithWaivers(port, (doc) => (doc.config["zero-trust-ollama:devices"] = doc.config["zero-trust-ollama:devices"].filter((d: { name: string }) => d.name !== "alice-laptop")));
        const applied = await applyAgain(r, withoutAlice, opts(name));
        assert.deepEqual(applied.replaced, ["gateway-config-writer"]);

        const after = r.containerOf("gateway");
        assert.equal(after.id, gateway.id, "the gateway container was not replaced");
        assert.equal(inspect(after.id).State.StartedAt, startedAt, "nor restarted");
        const [writer] = oneShots(r);
        const generation = /-config-([0-9a-f]{16})$/.exec(writer.name)![1];
        // The supervisor polls the link once a second; then the old workers must have stopped
        // accepting (shutting down or gone), so the next connection meets the new config.
        await waitFor(`the gateway reloads generation ${generation}`, async () => (await containerLogs(r.deployed.docker, gateway.id)).includes(`-> generations/${generation} (nginx check passed)`));
        await waitFor("the old nginx workers stop accepting", async () => !nginxWorkers(gateway.id).some((pid) => workers.includes(pid)));

        const info = clientInfo(r);
        const before = ollamaLog(r).length;
        const res = await gatewayRequest(info, { path: "/api/tags", device: "alice-laptop" });
        assert.equal(res.status, 403, res.body);
        assert.deepEqual(paths(ollamaLog(r).slice(before)), [], "Ollama received nothing for the removed device");
        assert.equal((await gatewayRequest(info, { path: "/api/tags", device: "bob-workstation" })).status, 200, "the remaining device still works");
    });
});

/** Pids of nginx workers that accept connections (not those "shutting down" after a reload). */
function nginxWorkers(id: string): string[] {
    const out = execFileSync("docker", ["top", id, "-eo", "pid,args"], { encoding: "utf8" });
    return out.split("\n").filter((l) => /nginx: worker process\s*$/.test(l)).map((l) => l.trim().split(/\s+/)[0]);
}

/** Polls until `ok` holds, at most 90 s (a bound for a loaded machine, not a target). */
async function waitFor(what: string, ok: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 90_000;
    while (!(await ok())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
    }
}

describe("prod-like stack (oidc, filter on, loopback) on the real engine", () => {
    let r: Rehearsal;
    let m: Matrix;
    const name = `e2e-prod-${process.pid}`;
    before(async () => {
        r = await rehearse(stackWithPort("test/fixtures/Pulumi.rehearsal.yaml", String(await freePort())), opts(name));
        m = await measure(r.deployed);
        process.stdout.write(`${formatMatrix("test/fixtures/Pulumi.rehearsal.yaml", m)}\ntimings ${JSON.stringify(r.timings)}\n`);
    }, { timeout: HOOK_TIMEOUT_MS });
    after(() => cleanUp(r, name), { timeout: HOOK_TIMEOUT_MS });

    test("reachability: only the filter reaches Ollama; oauth2-proxy and the gateway cannot; the host has no route to it", () => {
        checkSegmentation(m, "filter", ["gateway", "oauth2-proxy"]);
        const oauth2 = m.endpoints.find((e) => e.role === "oauth2-proxy")!.name;
        const filter = m.endpoints.find((e) => e.role === "filter")!.name;
        assert.notEqual(m.reach[oauth2][filter], "open", "oauth2-proxy cannot reach the filter either");
    });

    test("a signed-in user on an enrolled device gets 200; without sign-in 401; denied routes refused; Ollama saw none", async () => {
        const info = clientInfo(r);
        const user = "alice@example.com";
        assert.equal((await gatewayRequest(info, { path: "/api/tags", device: "alice-laptop", user, auth: "bearer" })).status, 200);
        const before = ollamaLog(r).length;
        assert.equal((await gatewayRequest(info, { path: "/api/tags", device: "alice-laptop" })).status, 401);
        for (const p of DENIED) {
            const res = await gatewayRequest(info, { path: p, method: "POST", body: { name: "x" }, device: "alice-laptop", user, auth: "bearer" });
            assert.ok(res.status >= 400 && res.status < 500, `${p}: ${res.status}`);
        }
        assert.deepEqual(paths(ollamaLog(r).slice(before)), []);
    });

    test("budgets on: the filter's ledger is on its state volume; answers say what is left; the charge survives a restart of the container", async () => {
        const info = clientInfo(r);
        const as = { device: "alice-laptop", user: "alice@example.com", auth: "bearer" } as const;
        const chat = await gatewayRequest(info, { ...as, path: "/api/chat", method: "POST", body: { model: "llama3.2:3b", messages: [{ role: "user", content: "hi" }], stream: false }, timeoutMs: 60_000 });
        assert.equal(chat.status, 200, chat.body);
        assert.ok(Number(chat.headers["x-budget-remaining-tokens"]) < 200_000, `X-Budget-Remaining-Tokens ${chat.headers["x-budget-remaining-tokens"]}`);
        const used = async () => {
            const b = await gatewayRequest(info, { ...as, path: "/v1/budget" });
            return b.status === 200 ? b.json<{ windows: { window: string; used: number }[] }>().windows.find((w) => w.window === "day")?.used : undefined;
        };
        const charged = await used();
        assert.ok(charged !== undefined && charged > 0, `charged ${charged}`);
        const filter = r.containerOf("filter");
        const mounts = JSON.parse(execFileSync("docker", ["inspect", "-f", "{{json .Mounts}}", filter.id], { encoding: "utf8" })) as { Type: string; Name?: string; Destination: string; RW: boolean }[];
        const state = mounts.find((m) => m.Destination === "/var/lib/zto-filter");
        assert.deepEqual(state && [state.Type, state.Name, state.RW], ["volume", `${filter.name}-state`, true], "the ledger's directory is the filter's own named volume");
        execFileSync("docker", ["restart", "-t", "10", filter.id], { stdio: "ignore", timeout: 120_000 });
        let after: number | undefined;
        await waitFor("the restarted filter answers /v1/budget", async () => (after = await used().catch(() => undefined)) !== undefined);
        assert.equal(after, charged, "the ledger on the volume kept the charge");
    });

    test("hardening observed on every container, oauth2-proxy included", () => {
        checkHardening(r);
    });
});

/** Containers the engine created for this stack name between two instants (its event log, not a later `ps`). */
function containersCreated(stackName: string, sinceSeconds: number, untilSeconds: number): { name: string; role: string }[] {
    const out = execFileSync(
        "docker",
        ["events", "--since", String(sinceSeconds), "--until", String(untilSeconds), "--filter", "type=container", "--filter", "event=create", "--filter", `label=${REHEARSAL_LABEL}=${stackName}`, "--format", "{{json .Actor.Attributes}}"],
        { encoding: "utf8", timeout: 60_000 },
    );
    return out.split("\n").filter(Boolean).map((l) => JSON.parse(l)).map((a) => ({ name: a.name, role: a["zero-trust-ollama.role"] }));
}

/**
 * The checks for real on this machine, whose Docker data root and scratch directories are on a
 * plain ext4 disk: the shipped dev stack is refused at its model store (the first refusal: the
 * filter and the gateway wait for Ollama), and with only the models waived, at a Docker volume.
 * Either way the engine only ever created the check containers.
 */
const REFUSALS = [
    {
        what: "the dev stack as shipped (no waiver)",
        edit: (_doc: any) => undefined,
        says: [/model store \/srv\/encrypted\/ollama is not encrypted at rest: \S+ on \/dev\/\S+, not encrypted\. Fix: [^\n]*Ollama is not created\./, /\(bind-mount sources are scratch directories here: \/srv\/encrypted\/ollama was \S+/],
        never: undefined,
    },
    {
        what: "the dev stack with only ollama.allowUnencryptedModels",
        edit: (doc: any) => (doc.config["zero-trust-ollama:ollama"].allowUnencryptedModels = true),
        says: [/Docker volume zto-e2e-refuse-\d+-\d-[a-z-]+ \([^)]+\) is not encrypted at rest: \S+ on \/dev\/\S+, not encrypted\. Fix: Docker keeps named volumes under its data root[^\n]* is not created\./],
        // The waived store is not checked at all.
        never: "model store",
    },
];

for (const [i, c] of REFUSALS.entries()) {
    describe(`${c.what} on this machine's plain disk`, () => {
        const name = `e2e-refuse-${process.pid}-${i}`;
        let refusal: Error | undefined;
        let created: { name: string; role: string }[] = [];
        let left = "";
        before(async () => {
            const doc = parse(readFileSync("Pulumi.dev.yaml", "utf8"));
            c.edit(doc);
            doc.config["zero-trust-ollama:gateway"].port = await freePort();
            const since = Math.floor(Date.now() / 1000) - 1;
            await rehearse(parseStackFile(stringify(doc), `Pulumi.dev.yaml (${c.what})`), opts(name)).then(
                () => assert.fail("the rehearsal of a plain-disk stack came up"),
                (e: Error) => (refusal = e),
            );
            created = containersCreated(name, since, Math.ceil(Date.now() / 1000) + 1);
            left = execFileSync("docker", ["ps", "-a", "--filter", `name=zto-${name}-`, "--format", "{{.Names}}"], { encoding: "utf8" }).trim();
            process.stdout.write(`refusal on the engine (${c.what}):\n${refusal?.message}\ncreated: ${created.map((x) => x.name).join(", ")}\n`);
        }, { timeout: HOOK_TIMEOUT_MS });
        after(() => removeByLabel(name), { timeout: HOOK_TIMEOUT_MS });

        test("the rehearsal stops with the program's refusal, naming what was checked and what the probe found there", () => {
            assert.ok(refusal instanceof RehearsalError, String(refusal?.stack));
            for (const pattern of c.says) assert.match(refusal.message, pattern);
            if (c.never) assert.ok(!refusal.message.includes(c.never), refusal.message);
        });

        test("only the check containers were ever created on the engine: no Ollama, no gateway, no filter; nothing is left", () => {
            assert.ok(created.length > 0, "the checks ran on the engine");
            for (const x of created) assert.equal(x.role, CHECK_ROLE, `${x.name} was created although the checks refused`);
            assert.ok(!created.some((x) => x.name === `zto-${name}-ollama`), "no Ollama container");
            assert.equal(left, "", "the rehearsal removed what it created");
        });
    });
}
