/**
 * Runs the attack matrix (attack-matrix.ts) against a real gateway in the sandbox, for one gateway
 * kind. Each case asserts the status, the gateway's response headers and error shape, and what the
 * stub Ollama received (for refusals: nothing at all).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, test } from "node:test";
import {
    ATTACK_MATRIX,
    expectedStatuses,
    profiles,
    REQUIRED_RESPONSE_HEADERS,
    type AttackCase,
    type CertChoice,
    type GatewayKind,
    type HttpSend,
    type Profile,
    type ProfileName,
    type RawSend,
} from "./attack-matrix";
import { makeExpiredDeviceCert, makeForeignCaCert, makeUnenrolledDeviceCert, startSandbox, tempDir, type CertPair, type ClientCert, type OllamaRequestEntry, type Sandbox } from "./harness";

/** Stub Ollama pacing: slow enough that streaming is visibly spread over time. */
export const TOKEN_INTERVAL_MS = 40;
export const TOKENS = 8;

/** A running profile: its sandbox and the certificates the cases may present. */
interface Target {
    readonly sb: Sandbox;
    readonly profile: Profile;
    readonly certs: Record<Exclude<CertChoice, "enrolled" | "second-device" | "none">, CertPair | undefined>;
}

async function startProfile(kind: GatewayKind, profile: Profile): Promise<Target> {
    const extraArgs = ["--token-interval-ms", String(TOKEN_INTERVAL_MS), "--tokens", String(TOKENS)];
    const stateDir = tempDir("zto-matrix-");
    let removed: CertPair | undefined;
    if (profile.removed) {
        // Enrol the device, then restart on the same state dir without it: revocation by config edit.
        const devices = profile.config.devices as object[];
        const first = await startSandbox({ config: { ...profile.config, devices: [...devices, profile.removed] }, stateDir, extraArgs });
        assert.ok(first.info.devices[profile.removed.name], "the device to remove was enrolled first");
        await first.stop();
        removed = { cert: join(stateDir, "devices", `${profile.removed.name}.crt`), key: join(stateDir, "devices", `${profile.removed.name}.key`) };
    }
    const sb = await startSandbox({ config: profile.config, stateDir, extraArgs });
    assert.equal(sb.info.gateway.kind, kind);
    return { sb, profile, certs: { removed, "foreign-ca": makeForeignCaCert(), expired: makeExpiredDeviceCert(sb.info), unenrolled: makeUnenrolledDeviceCert(sb.info) } };
}

function certFor(t: Target, choice: CertChoice | undefined): ClientCert {
    switch (choice ?? "enrolled") {
        case "enrolled":
            return t.profile.enrolled.name;
        case "second-device":
            return t.profile.second.name;
        case "none":
            return null;
        default: {
            const pair = t.certs[choice as keyof Target["certs"]];
            assert.ok(pair, `profile has no ${choice} certificate`);
            return pair;
        }
    }
}

/** One response as the assertions need it, whichever way it was sent. */
interface Outcome {
    /** 0: no HTTP response. */
    readonly status: number;
    readonly headers: Record<string, string>;
    readonly body: string;
    readonly chunks?: readonly { readonly atMs: number }[];
    readonly responses: number;
    readonly closedByServer: boolean;
    /** Raw sends: how many bytes the server sent back (HTTP or not). */
    readonly answeredBytes?: number;
}

async function sendHttp(t: Target, s: HttpSend): Promise<Outcome> {
    const body = s.bodyBytes !== undefined ? `{"prompt":"${"x".repeat(Math.max(0, s.bodyBytes - 13))}"}` : s.body;
    const headers = { ...(s.bodyBytes !== undefined ? { "Content-Type": "application/json" } : {}), ...(s.headers ?? {}) };
    const once = () =>
        t.sb.request({ path: s.path, method: s.method, headers, body, device: certFor(t, s.cert), user: s.auth ? t.profile.user : undefined, auth: s.auth, servername: s.servername });
    for (let i = 0; i < (s.warmup ?? 0); i++) await once();
    if (s.warmup) t.sb.resetOllamaLog();
    try {
        const r = await once();
        const flat = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : String(v)]));
        return { status: r.status, headers: flat, body: r.body, chunks: r.chunks, responses: 1, closedByServer: false };
    } catch {
        return { status: 0, headers: {}, body: "", responses: 0, closedByServer: true };
    }
}

/**
 * Raw bytes with a foreign SNI name. The harness's raw client verifies the server name, which a
 * real attacker would not, so this one checks the chain only.
 */
function rawWithForeignSni(t: Target, servername: string, data: string): Promise<{ text: string; statuses: number[]; closedByServer: boolean; error?: string }> {
    const { hostname, port } = new URL(t.sb.info.url);
    const device = t.sb.info.devices[t.profile.enrolled.name];
    return new Promise((done) => {
        const received: Buffer[] = [];
        let error: string | undefined;
        const socket = tlsConnect({ host: hostname, port: Number(port), servername, ca: readFileSync(t.sb.info.ca), cert: readFileSync(device.cert), key: readFileSync(device.key), checkServerIdentity: () => undefined }, () => socket.write(data));
        const timer = setTimeout(() => socket.destroy(), 3000);
        socket.on("data", (b: Buffer) => received.push(b));
        socket.on("error", (e) => (error = e.message));
        socket.on("close", () => {
            clearTimeout(timer);
            const text = Buffer.concat(received).toString("latin1");
            done({ text, statuses: [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1])), closedByServer: true, error });
        });
    });
}

async function sendRaw(t: Target, s: RawSend): Promise<Outcome> {
    const host = new URL(t.sb.info.url).host;
    const data = s.pieces.map((p) => p.replaceAll("{host}", host));
    const r = s.servername
        ? await rawWithForeignSni(t, s.servername, data.join(""))
        : await t.sb.rawRequest({ data, pauseMs: s.pauseMs, timeoutMs: s.timeoutMs, device: certFor(t, s.cert) });
    const head = r.text.split("\r\n\r\n")[0];
    const headers: Record<string, string> = {};
    for (const line of head.split("\r\n").slice(1)) {
        const i = line.indexOf(":");
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const body = r.text.slice(head.length + 4);
    return { status: r.statuses[0] ?? 0, headers, body, responses: r.statuses.length, closedByServer: r.closedByServer || r.error !== undefined, answeredBytes: r.text.length };
}

function expand(t: Target, value: string): string {
    const d = t.profile.enrolled;
    return value.replaceAll("{device}", d.name).replaceAll("{owner}", d.owner).replaceAll("{groups}", d.groups.join(",")).replaceAll("{user}", t.profile.user ?? "");
}

function assertHeaderValue(actual: string | undefined, expected: string | null, what: string): void {
    if (expected === null) assert.equal(actual, undefined, `${what} must be absent`);
    else if (expected.startsWith("~")) assert.match(actual ?? "", new RegExp(expected.slice(1)), what);
    else assert.equal(actual, expected, what);
}

const settle = () => new Promise((r) => setTimeout(r, 60));

async function runCase(t: Target, c: AttackCase, kind: GatewayKind): Promise<void> {
    t.sb.resetOllamaLog();
    const out = c.send.kind === "http" ? await sendHttp(t, c.send) : await sendRaw(t, c.send);
    await settle();
    const seen: OllamaRequestEntry[] = t.sb.ollamaRequests();
    const context = `${c.id}: got ${out.status} ${out.body.slice(0, 300)}; Ollama saw ${JSON.stringify(seen.map((e) => `${e.method} ${e.path}`))}`;

    assert.ok(expectedStatuses(c, kind).includes(out.status), `status ${out.status} not in ${JSON.stringify(expectedStatuses(c, kind))} — ${context}`);
    if (out.status === 0 && c.send.kind === "raw") {
        assert.ok(out.closedByServer, `${c.id}: the server must close the connection`);
        // No HTTP status and yet bytes back would be another protocol (e.g. an HTTP/2 switch).
        assert.equal(out.answeredBytes, 0, `${c.id}: no HTTP response, so the server must send nothing at all`);
    }
    if (c.maxResponses !== undefined) assert.ok(out.responses <= c.maxResponses, `${c.id}: ${out.responses} responses; a smuggled request was answered`);

    if (c.upstream.reaches) {
        assert.equal(seen.length, 1, `exactly one request upstream — ${context}`);
        assert.equal(seen[0].path, c.upstream.path, `path sent upstream — ${context}`);
        for (const [name, value] of Object.entries(c.upstream.headers ?? {})) {
            const got = seen[0].headers[name];
            assertHeaderValue(Array.isArray(got) ? got.join(", ") : got, value === null ? null : expand(t, value), `${c.id}: upstream header ${name}`);
        }
    } else {
        assert.deepEqual(seen, [], `nothing may reach Ollama — ${context}`);
    }

    if (out.status === 0) return;
    for (const h of REQUIRED_RESPONSE_HEADERS) assert.ok(out.headers[h], `${c.id}: response header ${h} missing on ${out.status}`);
    for (const [name, value] of Object.entries(c.responseHeaders ?? {})) assertHeaderValue(out.headers[name], value, `${c.id}: response header ${name}`);
    const ollamaPort = new URL(t.sb.info.ollama).port;
    const everything = out.body + JSON.stringify(out.headers);
    assert.ok(!everything.includes(`:${ollamaPort}`), `${c.id}: the upstream address leaked`);
    assert.ok(!everything.includes(t.sb.stateDir), `${c.id}: a local path leaked`);
    assert.ok(!/nginx\/\d|haproxy\/?\d/i.test(everything), `${c.id}: a version leaked`);
    if (c.errorCode && !(c.send.kind === "http" && c.send.method === "HEAD")) {
        const err = (JSON.parse(out.body) as { error: { code: string; requestId: string } }).error;
        assert.equal(err.code, c.errorCode, context);
        assert.equal(err.requestId, out.headers["x-request-id"], `${c.id}: the body's requestId is the X-Request-Id header`);
    }
    if (c.streamedChunks !== undefined) {
        const chunks = out.chunks ?? [];
        assert.ok(chunks.length >= c.streamedChunks, `${c.id}: ${chunks.length} chunks, expected >= ${c.streamedChunks} (buffered?)`);
        const spread = chunks[chunks.length - 1].atMs - chunks[0].atMs;
        assert.ok(spread >= ((c.streamedChunks - 1) * TOKEN_INTERVAL_MS) / 2, `${c.id}: chunks arrived within ${spread.toFixed(0)} ms: buffered, not streamed`);
    }
}

/** Register one test per applicable case, grouped by sandbox profile. */
export function runAttackMatrix(kind: GatewayKind, opts: { includeIdentity: boolean }): void {
    const cases = ATTACK_MATRIX.filter((c) => c.appliesTo.includes(kind) && (opts.includeIdentity || c.needs !== "identity"));
    const byProfile = new Map<ProfileName, AttackCase[]>();
    for (const c of cases) byProfile.set(c.profile, [...(byProfile.get(c.profile) ?? []), c]);
    const all = profiles(kind);
    for (const [name, list] of byProfile) {
        describe(`${kind} attack matrix, profile ${name}`, () => {
            let target: Target | undefined;
            before(async () => {
                target = await startProfile(kind, all[name]);
            });
            after(async () => {
                await target?.sb.stop();
            });
            for (const c of list) test(`${c.id}: ${c.description}`, () => runCase(target!, c, kind));
        });
    }
}
