/**
 * ollama-disallow-vulnerable-version on hand-built images and containers: each advisory range
 * edge, accepted advisories, tags that name no release, and the pack's tag parser agreeing with
 * the program's.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DEFAULT_IMAGES } from "../../components/config";
import { ollamaImageVersion } from "../../components/ollama-version";
import { ollamaTagVersion } from "../../policies/lib/containers";
import { OLLAMA_ADVISORIES } from "../../policies/lib/ollama-advisories";
import { advisoriesAffecting, ollamaDisallowVulnerableVersion } from "../../policies/rules/ollama-disallow-vulnerable-version";
import { CONTAINER, DIGEST, IMAGE_ID, containerProps, messages, res, violations } from "./harness";

const p = [ollamaDisallowVulnerableVersion];
const image = (name: string) => res("docker:index/remoteImage:RemoteImage", "img", { name }, { imageId: IMAGE_ID });
const ids = (msgs: string[]) => msgs.map((m) => /affected by (\S+)/.exec(m)![1]).sort();

describe("ollama-disallow-vulnerable-version", () => {
    test("the default pin passes; with includeAccepted it reports only the accepted CVE-2026-7020", async () => {
        assert.deepEqual(await messages(p, [image(DEFAULT_IMAGES.ollama)]), []);
        const msgs = await messages(p, [image(`${DEFAULT_IMAGES.ollama}@${DIGEST}`)], { "ollama-disallow-vulnerable-version": { includeAccepted: true } });
        assert.deepEqual(ids(msgs), ["CVE-2026-7020"]);
        assert.match(msgs[0], /Accepted: reached only by pulling a model/);
    });

    test("the old default 0.12.3 fails with CVE-2025-63389 and CVE-2026-7482", async () => {
        const msgs = await messages(p, [image("ollama/ollama:0.12.3")]);
        assert.deepEqual(ids(msgs), ["CVE-2025-63389", "CVE-2026-7482"]);
        assert.match(msgs.join("\n"), /ollama\/ollama:0\.12\.3" \(0\.12\.3\) is affected by CVE-2026-7482 \(before 0\.17\.1\).*\/api\/create/);
    });

    test("range edges: fixed is exclusive, lastAffected inclusive", async () => {
        assert.deepEqual(ids(await messages(p, [image("ollama/ollama:0.17.0")])), ["CVE-2026-7482"]);
        assert.deepEqual(await messages(p, [image("ollama/ollama:0.17.1")]), []);
        assert.deepEqual(ids(await messages(p, [image("ollama/ollama:0.12.4")])), ["CVE-2026-7482"]);
        assert.deepEqual(ids(await messages(p, [image("docker.io/ollama/ollama:v0.1.33-rocm")])), ["CVE-2024-39720", "CVE-2024-39722", "CVE-2024-37032", "CVE-2025-63389", "CVE-2026-7482"].sort());
    });

    test("a container started from an Ollama reference is judged; one from an image id or another image is not applicable", async () => {
        assert.deepEqual(ids(await messages(p, [res(CONTAINER, "o", containerProps("ollama", { image: "ollama/ollama:0.12.3" }))])), ["CVE-2025-63389", "CVE-2026-7482"]);
        assert.deepEqual(await violations(p, [res(CONTAINER, "o", containerProps("ollama", { image: IMAGE_ID })), image("nginx:1.28.0-alpine"), image("quay.io/oauth2-proxy/oauth2-proxy:v7.12.0")]), []);
    });

    test("tags that name no release are not judged", async () => {
        for (const ref of ["ollama/ollama:latest", "ollama/ollama", `ollama/ollama@${DIGEST}`, "ollama/ollama:rocm"]) assert.deepEqual(await messages(p, [image(ref)]), [], ref);
    });

    test("mandatory in policy config blocks the pin", async () => {
        const vs = await violations(p, [image("ollama/ollama:0.17.0")], { "ollama-disallow-vulnerable-version": "mandatory" });
        assert.deepEqual(vs.map((v) => v.enforcementLevel), ["mandatory"]);
    });

    test("every advisory has exactly one bound and a source", () => {
        for (const a of OLLAMA_ADVISORIES) {
            assert.ok((a.fixed === undefined) !== (a.lastAffected === undefined), a.id);
            assert.match(a.fixed ?? a.lastAffected!, /^\d+\.\d+\.\d+$/, a.id);
            assert.ok(a.source.length > 0 && a.via.length > 0, a.id);
        }
        assert.deepEqual(advisoriesAffecting([0, 99, 0]), []);
    });

    test("the pack's tag parser agrees with the program's", () => {
        const refs = ["ollama/ollama:0.17.4", "ollama/ollama:v0.17.4", `ollama/ollama:0.17.4@${DIGEST}`, "ollama/ollama:0.6.5-rocm", "registry.local:5000/ollama/ollama:0.12.3", "ollama/ollama:latest", "ollama/ollama", `ollama/ollama@${DIGEST}`, "ollama/ollama:0.17", "ollama/ollama:rocm"];
        for (const r of refs) assert.deepEqual(ollamaTagVersion(r), ollamaImageVersion(r) && [...ollamaImageVersion(r)!], r);
    });
});
