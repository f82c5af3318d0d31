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
    test("the default pin passes; with includeAccepted it reports only the accepted entries", async () => {
        assert.deepEqual(await messages(p, [image(DEFAULT_IMAGES.ollama)]), []);
        const msgs = await messages(p, [image(`${DEFAULT_IMAGES.ollama}@${DIGEST}`)], { "ollama-disallow-vulnerable-version": { includeAccepted: true } });
        assert.deepEqual(ids(msgs), ["CVE-2024-12055", "CVE-2024-12886", "CVE-2024-8063", "CVE-2025-0312", "CVE-2025-0315", "CVE-2025-0317", "CVE-2025-1975", "CVE-2025-63389", "CVE-2026-7020"]);
        assert.ok(OLLAMA_ADVISORIES.filter((a) => ids(msgs).includes(a.id)).every((a) => a.acceptedBecause), "only accepted entries are reported");
        assert.match(msgs.join("\n"), /CVE-2026-7020 \(through 0\.20\.2\).*Accepted: reached only by pulling a model/);
        assert.match(msgs.join("\n"), /CVE-2025-63389 \(every release: no fixed release\).*Accepted: Ollama is reachable only through the gateway/);
    });

    test("the old default 0.12.3 fails with CVE-2025-51471 and CVE-2026-7482", async () => {
        const msgs = await messages(p, [image("ollama/ollama:0.12.3")]);
        assert.deepEqual(ids(msgs), ["CVE-2025-51471", "CVE-2026-7482"]);
        assert.match(msgs.join("\n"), /ollama\/ollama:0\.12\.3" \(0\.12\.3\) is affected by CVE-2026-7482 \(before 0\.17\.1\).*\/api\/create/);
    });

    test("range edges: fixed is exclusive, lastAffected inclusive", async () => {
        assert.deepEqual(ids(await messages(p, [image("ollama/ollama:0.17.0")])), ["CVE-2026-7482"]);
        assert.deepEqual(await messages(p, [image("ollama/ollama:0.17.1")]), []);
        assert.deepEqual(ids(await messages(p, [image("ollama/ollama:0.14.2")])), ["CVE-2025-51471", "CVE-2026-7482"]);
        assert.deepEqual(ids(await messages(p, [image("ollama/ollama:0.14.3")])), ["CVE-2026-7482"]);
        assert.deepEqual(ids(await messages(p, [image("docker.io/ollama/ollama:v0.1.33-rocm")])), ["CVE-2024-39720", "CVE-2024-39722", "CVE-2024-37032", "CVE-2024-45436", "CVE-2025-44779", "CVE-2025-51471", "CVE-2026-7482"].sort());
        assert.deepEqual(ids(await messages(p, [image("ollama/ollama:0.1.47")])), ["CVE-2025-51471", "CVE-2026-7482"]);
    });

    test("a container started from an Ollama reference is judged; one from an image id or another image is not applicable", async () => {
        assert.deepEqual(ids(await messages(p, [res(CONTAINER, "o", containerProps("ollama", { image: "ollama/ollama:0.12.3" }))])), ["CVE-2025-51471", "CVE-2026-7482"]);
        assert.deepEqual(await violations(p, [res(CONTAINER, "o", containerProps("ollama", { image: IMAGE_ID })), image("nginx:1.28.0-alpine"), image("quay.io/oauth2-proxy/oauth2-proxy:v7.12.0")]), []);
    });

    test("tags that name no release are not judged", async () => {
        for (const ref of ["ollama/ollama:latest", "ollama/ollama", `ollama/ollama@${DIGEST}`, "ollama/ollama:rocm"]) assert.deepEqual(await messages(p, [image(ref)]), [], ref);
    });

    test("mandatory in policy config blocks the pin", async () => {
        const vs = await violations(p, [image("ollama/ollama:0.17.0")], { "ollama-disallow-vulnerable-version": "mandatory" });
        assert.deepEqual(vs.map((v) => v.enforcementLevel), ["mandatory"]);
    });

    test("every advisory has exactly one bound and a source; a future release is affected only by the unfixed ones", () => {
        for (const a of OLLAMA_ADVISORIES) {
            assert.equal([a.fixed, a.lastAffected, a.noFixedRelease].filter((b) => b !== undefined).length, 1, a.id);
            if (!a.noFixedRelease) assert.match(a.fixed ?? a.lastAffected!, /^\d+\.\d+\.\d+$/, a.id);
            assert.ok(a.source.length > 0 && a.via.length > 0, a.id);
        }
        assert.deepEqual(advisoriesAffecting([0, 99, 0]).map((a) => a.id), OLLAMA_ADVISORIES.filter((a) => a.noFixedRelease).map((a) => a.id));
        assert.ok(OLLAMA_ADVISORIES.filter((a) => a.noFixedRelease).length >= 4);
    });

    // Every record of the module (and its old path github.com/jmorganca/ollama) in the Go vulnerability database, data/reports/GO-*.yaml of golang/vulndb at a752ea5.
    test("every Go vulnerability database record of github.com/ollama/ollama is entered under the CVE it aliases", () => {
        const goRecords: Record<string, string> = {
            "GO-2024-2699": "CVE-2024-28224",
            "GO-2024-2901": "CVE-2024-37032",
            "GO-2024-3104": "CVE-2024-45436",
            "GO-2024-3245": "CVE-2024-39720",
            "GO-2025-3548": "CVE-2024-12886",
            "GO-2025-3557": "CVE-2025-0315",
            "GO-2025-3558": "CVE-2024-12055",
            "GO-2025-3559": "CVE-2025-0317",
            "GO-2025-3582": "CVE-2025-0312",
            "GO-2025-3689": "CVE-2024-8063",
            "GO-2025-3695": "CVE-2025-1975",
            "GO-2025-3824": "CVE-2025-51471",
            "GO-2025-3851": "CVE-2025-44779",
            "GO-2025-4251": "CVE-2025-63389",
            "GO-2026-5748": "CVE-2026-7482",
            "GO-2026-5750": "CVE-2026-7020",
        };
        for (const [go, cve] of Object.entries(goRecords)) {
            const entry = OLLAMA_ADVISORIES.find((a) => a.id === cve);
            assert.ok(entry, `${go} aliases ${cve}, which is not entered`);
            assert.match(entry.source, new RegExp(`\\b${go}\\b`), `${cve}'s source names ${go}`);
        }
        for (const cve of ["CVE-2025-0317", "CVE-2025-0312", "CVE-2024-8063", "CVE-2025-1975"]) {
            const a = OLLAMA_ADVISORIES.find((x) => x.id === cve)!;
            assert.ok(a.noFixedRelease && a.acceptedBecause, `${cve}: no fix recorded, accepted for its route`);
            for (const route of a.via) assert.match(a.acceptedBecause!, new RegExp(route.replace(/\/:digest$/, "").replace(/\//g, "\\/")), `${cve}: the reason names ${route}`);
        }
    });

    test("the pack's tag parser agrees with the program's", () => {
        const refs = ["ollama/ollama:0.17.4", "ollama/ollama:v0.17.4", `ollama/ollama:0.17.4@${DIGEST}`, "ollama/ollama:0.6.5-rocm", "registry.local:5000/ollama/ollama:0.12.3", "ollama/ollama:latest", "ollama/ollama", `ollama/ollama@${DIGEST}`, "ollama/ollama:0.17", "ollama/ollama:rocm"];
        for (const r of refs) assert.deepEqual(ollamaTagVersion(r), ollamaImageVersion(r) && [...ollamaImageVersion(r)!], r);
    });
});
