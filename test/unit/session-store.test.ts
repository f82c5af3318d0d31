/**
 * oauth2-proxy's Redis session store: its config keys, the rendered redis.conf, and the resource
 * graph under mocks (its own hop network shared with oauth2-proxy only, no port, the password a
 * secret everywhere it travels). The real store runs in test/e2e/signin-sessions.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseStackConfig, type ConfigProblem } from "../../components/config";
import { parseStackFile, readStackFile, type StackFile } from "../../components/stack-file";
import { renderSessionStoreConf, sessionStoreHealthcheck, SESSION_STORE_CONFIG_FILE, SESSION_STORE_PASSWORD_LENGTH } from "../../components/identity/session-store-settings";
import { ROLE_LABEL } from "../../components/hardening";
import { runProgramUnderMocks, type RecordedResource } from "../../scripts/lib/mock-program";

const TENANT = "00000000-1111-2222-3333-444444444444";
const GROUP = "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";
const ENTRA = { provider: "entra", tenantId: TENANT, allowedGroups: [GROUP] };
const OIDC = { provider: "oidc", issuerUrl: "https://idp.example.com", clientId: "c", allowedEmailDomains: ["example.com"] };
const CONTAINER = "docker:index/container:Container";

function problems(raw: Record<string, unknown>): ConfigProblem[] {
    const r = parseStackConfig({ domain: "ollama.example.com", ...raw });
    return r.ok ? [] : r.problems;
}

describe("session store config", () => {
    test("redis is the default for entra and oidc; oidc may choose the cookie", () => {
        for (const identity of [ENTRA, OIDC]) {
            const r = parseStackConfig({ domain: "ollama.example.com", identity, ...(identity.provider === "oidc" ? { oidcClientSecret: "x" } : {}) });
            assert.ok(r.ok && r.config.identity.sessionStore === "redis", JSON.stringify(r));
        }
        assert.deepEqual(problems({ identity: { ...OIDC, sessionStore: "cookie" }, oidcClientSecret: "x" }), []);
    });

    test("refused: an Entra session in cookies, an unknown store, a misspelled key, a store image without a store, an unpinned store image under requirePinnedImages", () => {
        const entraCookie = problems({ identity: { ...ENTRA, sessionStore: "cookie" } });
        assert.deepEqual(entraCookie.map((p) => p.path), ["zero-trust-ollama:identity.sessionStore"]);
        assert.match(entraCookie[0].message, /cannot hold an Entra session.*first Set-Cookie.*use "redis"/);
        assert.deepEqual(problems({ identity: { ...ENTRA, sessionStore: "memcached" } }).map((p) => p.path), ["zero-trust-ollama:identity.sessionStore"]);
        const typo = problems({ identity: { ...ENTRA, sessionStor: "redis" } });
        assert.equal(typo.length, 1);
        assert.match(typo[0].path + typo[0].message, /sessionStor/);
        assert.deepEqual(problems({ identity: { sessionStoreImage: "redis:7.4.2-alpine" } }).map((p) => p.path), ["zero-trust-ollama:identity.sessionStoreImage"]);
        assert.deepEqual(problems({ identity: { ...OIDC, sessionStore: "cookie", sessionStoreImage: "redis:7.4.2-alpine" }, oidcClientSecret: "x" }).map((p) => p.path), ["zero-trust-ollama:identity.sessionStoreImage"]);
        assert.deepEqual(problems({ identity: { ...ENTRA, sessionStoreImage: "Redis latest" } }).map((p) => p.path), ["zero-trust-ollama:identity.sessionStoreImage"]);
        const pinned = (sessionStoreImage?: string) =>
            problems({ requirePinnedImages: true, gateway: { image: `nginx:1.28.0-alpine@sha256:${"a".repeat(64)}` }, ollama: { image: `ollama/ollama:0.17.4@sha256:${"b".repeat(64)}`, modelStore: { probeImage: `python:3.13.5-alpine3.22@sha256:${"e".repeat(64)}` } }, identity: { ...ENTRA, image: `quay.io/oauth2-proxy/oauth2-proxy:v7.15.6-alpine@sha256:${"c".repeat(64)}`, ...(sessionStoreImage ? { sessionStoreImage } : {}) } });
        assert.deepEqual(pinned().map((p) => p.path), ["zero-trust-ollama:identity.sessionStoreImage"]);
        assert.match(pinned()[0].message, /pinned by digest.*redis:7\.4\.2-alpine/);
        assert.deepEqual(pinned(`redis:7.4.2-alpine@sha256:${"d".repeat(64)}`), []);
    });
});

describe("redis.conf", () => {
    const PASSWORD = "A".repeat(8) + "b".repeat(8) + "1".repeat(24);
    test("password required, nothing persisted, memory capped, reconfiguring and dumping commands refused", () => {
        const conf = renderSessionStoreConf({ password: PASSWORD, bind: "0.0.0.0", port: 6379 }).split("\n");
        for (const line of ["bind 0.0.0.0", "port 6379", "protected-mode yes", `requirepass ${PASSWORD}`, 'save ""', "appendonly no", "maxmemory 64mb", "maxmemory-policy volatile-ttl"]) assert.ok(conf.includes(line), line);
        for (const cmd of ["CONFIG", "DEBUG", "MODULE", "REPLICAOF", "SLAVEOF", "KEYS", "FLUSHALL", "SAVE", "BGSAVE", "SHUTDOWN"]) assert.ok(conf.includes(`rename-command ${cmd} ""`), cmd);
    });

    test("refuses a password that would need quoting or is short, a bind that is no address, a bad port", () => {
        for (const password of ["short1A", `${PASSWORD} x`, `${PASSWORD}"`, `${PASSWORD}\nrequirepass x`]) assert.throws(() => renderSessionStoreConf({ password, bind: "127.0.0.1", port: 6379 }), /32 letters and digits/);
        assert.throws(() => renderSessionStoreConf({ password: PASSWORD, bind: "127.0.0.1\nrequirepass x", port: 6379 }), /bind address/);
        assert.throws(() => renderSessionStoreConf({ password: PASSWORD, bind: "127.0.0.1", port: 70000 }), /1-65535/);
    });

    test("the healthcheck proves the store answers and demands the password, with no password on its command line", () => {
        const hc = sessionStoreHealthcheck();
        assert.equal(hc[0], "CMD-SHELL");
        assert.match(hc[1], /PING .*grep -q NOAUTH/);
        assert.doesNotMatch(hc[1], /-a |AUTH /);
    });
});

function stackFile(lines: string[]): StackFile {
    return parseStackFile(["config:", ...lines.map((l) => "  " + l)].join("\n") + "\n", "test.yaml");
}

const byName = (rs: RecordedResource[], type: string, name: string) => {
    const hits = rs.filter((r) => r.type === type && r.name === name);
    assert.equal(hits.length, 1, `expected one ${type} ${name}, got ${hits.length}`);
    return hits[0];
};
const joined = (c: RecordedResource) => ((c.inputs.networksAdvanced ?? []) as { name: string }[]).map((n) => n.name);

describe("session store container (mocks)", () => {
    test("pinned image, hardened, on its own internal hop network with oauth2-proxy only, no port, password a secret everywhere", async () => {
        const r = await runProgramUnderMocks(readStackFile("Pulumi.prod.yaml"));
        assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
        const c = byName(r.resources, CONTAINER, "session-store-container");
        assert.match(byName(r.resources, "docker:index/remoteImage:RemoteImage", "session-store-image").inputs.name, /^redis:7\.4\.2-alpine@sha256:[a-f0-9]{64}$/);
        assert.equal(c.inputs.ports, undefined);
        assert.notEqual(c.inputs.publishAllPorts, true);
        assert.equal(c.inputs.networkMode, undefined);
        assert.deepEqual(c.inputs.networksAdvanced, [{ name: "zto-mock-to-session-store", aliases: ["session-store"] }]);
        assert.deepEqual(c.inputs.capabilities, { drops: ["ALL"] });
        assert.deepEqual(c.inputs.securityOpts, ["no-new-privileges:true"]);
        assert.equal(c.inputs.readOnly, true);
        assert.equal(c.inputs.user, "999:999");
        assert.ok(c.inputs.labels.some((l: { label: string; value: string }) => l.label === ROLE_LABEL && l.value === "session-store"));
        assert.deepEqual(c.inputs.command, ["redis-server", SESSION_STORE_CONFIG_FILE]);
        assert.deepEqual(c.inputs.healthcheck.tests, sessionStoreHealthcheck());

        // Its network: internal, no host address, and joined by exactly the store and oauth2-proxy.
        const net = byName(r.resources, "docker:index/network:Network", "network-to-session-store").inputs;
        assert.equal(net.internal, true);
        assert.equal(net.options["com.docker.network.bridge.inhibit_ipv4"], "true");
        const members = r.resources.filter((x) => x.type === CONTAINER && joined(x).includes("zto-mock-to-session-store")).map((x) => x.name);
        assert.deepEqual(members.sort(), ["oauth2-proxy-container", "session-store-container"]);

        // The password: generated, in redis.conf (a secret upload) and oauth2-proxy's secret env, nowhere in plain sight.
        const password = byName(r.resources, "random:index/randomPassword:RandomPassword", "session-store-password");
        assert.equal(password.inputs.length, SESSION_STORE_PASSWORD_LENGTH);
        assert.equal(password.inputs.special, false);
        assert.ok(c.secretInputs.includes("uploads"), `uploads must be secret; secret inputs: ${c.secretInputs}`);
        const conf = (c.inputs.uploads as { file: string; content: string }[])[0];
        assert.equal(conf.file, SESSION_STORE_CONFIG_FILE);
        const secret = /^requirepass (\S+)$/m.exec(conf.content)![1];
        assert.equal(secret.length, SESSION_STORE_PASSWORD_LENGTH);
        const oauth2 = byName(r.resources, CONTAINER, "oauth2-proxy-container");
        assert.ok((oauth2.inputs.envs as string[]).includes(`OAUTH2_PROXY_REDIS_PASSWORD=${secret}`));
        assert.ok((oauth2.inputs.command as string[]).includes("--redis-connection-url=redis://session-store:6379"));
        for (const x of r.resources) assert.ok(!JSON.stringify(x.maskedInputs).includes(secret), `session store password visible in ${x.urn}`);
    });

    test("no store for identity none or an oidc stack on cookies; oauth2-proxy then joins no store network", async () => {
        const dev = await runProgramUnderMocks(readStackFile("Pulumi.dev.yaml"));
        assert.ok(dev.ok);
        assert.equal(dev.resources.filter((x) => /session-store/.test(x.name)).length, 0);
        const cookie = await runProgramUnderMocks(
            stackFile([
                "zero-trust-ollama:domain: ollama.example.com",
                "zero-trust-ollama:identity: {provider: oidc, issuerUrl: 'https://idp.example.com', clientId: c, allowedEmailDomains: [example.com], sessionStore: cookie}",
                "zero-trust-ollama:oidcClientSecret: x",
            ]),
        );
        assert.ok(cookie.ok, JSON.stringify(!cookie.ok && cookie.problems));
        assert.equal(cookie.resources.filter((x) => /session-store/.test(x.name)).length, 0);
        const oauth2 = byName(cookie.resources, CONTAINER, "oauth2-proxy-container");
        assert.deepEqual(joined(oauth2), ["zto-mock-to-oauth2-proxy", "zto-mock-egress"]);
        assert.ok((oauth2.inputs.command as string[]).includes("--session-store-type=cookie"));
    });
});
