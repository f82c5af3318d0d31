/**
 * Published Ollama vulnerabilities by affected release range: the one data file the
 * `ollama-disallow-vulnerable-version` rule reads. An entry gives exactly one bound: `fixed`
 * (first release without the flaw), `lastAffected` (last release an advisory names, when it
 * names no fix), or `noFixedRelease` (the record, e.g. the Go vulnerability database's, lists no
 * fixed version: every release is affected). Add an entry when an advisory is published; never
 * delete one. The default pin, 0.17.4, is outside every range except those of the accepted
 * entries (see each `acceptedBecause`). A Go vulnerability database record (GO-...) is entered
 * under the CVE it aliases, its id named in `source`.
 */

export interface OllamaAdvisory {
    /** CVE id (or GHSA id when no CVE exists). */
    readonly id: string;
    /** What the flaw lets an attacker do, in one line. */
    readonly summary: string;
    /** The Ollama routes it is reached through (the gateway refuses every one of them). */
    readonly via: readonly string[];
    /** First fixed release, when the advisory names one. */
    readonly fixed?: string;
    /** Last affected release, when the advisory names no fix. */
    readonly lastAffected?: string;
    /** No release fixes it (none recorded): every release is affected. */
    readonly noFixedRelease?: true;
    /** Where the range comes from. */
    readonly source: string;
    /**
     * Why this stack's design already closes the flaw, for an advisory that no release we can pin
     * and test fixes. Such an entry is reported only with the rule's `includeAccepted: true`.
     */
    readonly acceptedBecause?: string;
}

export const OLLAMA_ADVISORIES: readonly OllamaAdvisory[] = [
    {
        id: "CVE-2024-28224",
        summary: "DNS rebinding gives a web page the whole API (chat, delete models, exhaust resources)",
        via: ["every route"],
        fixed: "0.1.29",
        source: "NVD CVE-2024-28224 (before 0.1.29) / GO-2024-2699 (fixed 0.1.29, module github.com/jmorganca/ollama)",
    },
    {
        id: "CVE-2024-37032",
        summary: "path traversal through a crafted manifest digest (\"Probllama\"), file write and code execution",
        via: ["/api/pull"],
        fixed: "0.1.34",
        source: "NVD CVE-2024-37032 (before 0.1.34) / GO-2024-2901 (fixed 0.1.34)",
    },
    {
        id: "CVE-2024-39720",
        summary: "out-of-bounds read on a crafted GGUF model file crashes the server",
        via: ["/api/create"],
        fixed: "0.1.46",
        source: "NVD CVE-2024-39720 (before 0.1.46) / GO-2024-3245 (fixed 0.1.46)",
    },
    {
        id: "CVE-2024-39722",
        summary: "file existence disclosure through a crafted path",
        via: ["/api/push"],
        fixed: "0.1.46",
        source: "NVD CVE-2024-39722 (before 0.1.46)",
    },
    {
        id: "CVE-2025-63389",
        summary: "model management (create, copy, delete, push) needs no authentication",
        via: ["/api/create", "/api/copy", "/api/delete", "/api/push"],
        noFixedRelease: true,
        source: "GHSA-f6mr-38g8-39rg / NVD CVE-2025-63389 say through 0.12.3, but no later release adds authentication (github/advisory-database#6571) and GO-2025-4251 records no fix",
        acceptedBecause: "Ollama is reachable only through the gateway, which authenticates every request and refuses all four routes",
    },
    {
        id: "CVE-2024-45436",
        summary: "a ZIP model archive can write files outside the models directory (Zip Slip)",
        via: ["/api/create", "/api/blobs/:digest"],
        fixed: "0.1.47",
        source: "NVD CVE-2024-45436 (extractFromZipFile before 0.1.47; fix ollama/ollama#5314) / GO-2024-3104 (fixed 0.1.47)",
    },
    {
        id: "CVE-2024-12886",
        summary: "a registry answering a pull with a gzip bomb exhausts the server's memory",
        via: ["/api/pull"],
        noFixedRelease: true,
        source: "NVD CVE-2024-12886 / GO-2025-3548 (no fixed version recorded)",
        acceptedBecause: "reached only by pulling from a registry: the gateway refuses /api/pull and Ollama's only network has no egress",
    },
    {
        id: "CVE-2025-0315",
        summary: "a crafted GGUF file makes the server allocate without limit (denial of service)",
        via: ["/api/create", "/api/blobs/:digest"],
        noFixedRelease: true,
        source: "GHSA-fccc-8m69-8r78 (through 0.3.14) / GO-2025-3557 (no fixed version recorded)",
        acceptedBecause: "reached only by creating a model from an uploaded file: the gateway refuses /api/create and /api/blobs",
    },
    {
        id: "CVE-2024-12055",
        summary: "a crafted GGUF file causes an out-of-bounds read in gguf.go that crashes the server",
        via: ["/api/create", "/api/blobs/:digest"],
        noFixedRelease: true,
        source: "GHSA-89qx-m49c-8crf (through 0.3.14) / GO-2025-3558 (no fixed version recorded)",
        acceptedBecause: "reached only by creating a model from an uploaded file: the gateway refuses /api/create and /api/blobs",
    },
    {
        id: "CVE-2025-44779",
        summary: "a crafted request to /api/pull deletes arbitrary files on the server",
        via: ["/api/pull"],
        fixed: "0.1.34",
        source: "GO-2025-3851 (fixed 0.1.34) / GHSA-93jv-pvg8-hf3v (Ollama 0.1.33)",
    },
    {
        id: "CVE-2025-0317",
        summary: "a crafted GGUF file makes ggufPadding divide by zero and crash the server",
        via: ["/api/create", "/api/blobs/:digest"],
        noFixedRelease: true,
        source: "GO-2025-3559 (no fixed version recorded) / GHSA-9gcr-28rp-cc24 (through 0.3.14: a GGUF file uploaded and created on the server)",
        acceptedBecause: "reached only by creating a model from an uploaded file: the gateway refuses /api/create and /api/blobs",
    },
    {
        id: "CVE-2025-0312",
        summary: "a crafted GGUF file makes the server dereference a nil pointer and crash",
        via: ["/api/create", "/api/blobs/:digest"],
        noFixedRelease: true,
        source: "GO-2025-3582 (no fixed version recorded) / GHSA-p2wh-w96x-w232 (through 0.3.14: a GGUF file uploaded and created on the server)",
        acceptedBecause: "reached only by creating a model from an uploaded file: the gateway refuses /api/create and /api/blobs",
    },
    {
        id: "CVE-2024-8063",
        summary: "a GGUF model imported with a crafted block_count type makes the server divide by zero and crash",
        via: ["/api/create", "/api/blobs/:digest"],
        noFixedRelease: true,
        source: "GO-2025-3689 (advisory lists no fix) / GHSA-2xf2-gjm6-g2c6 (0.3.3: importing a GGUF model from a Modelfile)",
        acceptedBecause: "reached only by creating a model from an uploaded file: the gateway refuses /api/create and /api/blobs",
    },
    {
        id: "CVE-2025-1975",
        summary: "a spoofed registry's manifest with an out-of-range array index crashes the server during a pull",
        via: ["/api/pull"],
        noFixedRelease: true,
        source: "GO-2025-3695 (no patched version specified) / GHSA-wrh5-cmwx-q2qr (0.5.11: downloading a model via /api/pull)",
        acceptedBecause: "reached only by pulling from a registry: the gateway refuses /api/pull and Ollama's only network has no egress",
    },
    {
        id: "CVE-2025-51471",
        summary: "a registry's WWW-Authenticate realm on another host receives the server's registry token",
        via: ["/api/pull", "/api/push"],
        fixed: "0.14.3",
        source: "GHSA-x9hg-5q6g-q3jr / GO-2025-3824 (last_affected 0.9.6, no fix recorded); the same-host check landed in ollama/ollama#13738 (commit 7601f0e, 2026-01-16), first in 0.14.3 per github/advisory-database#8826",
    },
    {
        id: "CVE-2026-7482",
        summary: "heap out-of-bounds read in the GGUF loader leaks process memory (\"Bleeding Llama\")",
        via: ["/api/blobs/:digest", "/api/create", "/api/push"],
        fixed: "0.17.1",
        source: "NVD CVE-2026-7482 (before 0.17.1) / GO-2026-5748 (fixed 0.17.1)",
    },
    {
        id: "CVE-2026-7020",
        summary: "path traversal in the tensor model transfer's digestToPath (x/imagegen/transfer)",
        via: ["/api/pull"],
        lastAffected: "0.20.2",
        source: "NVD CVE-2026-7020 (through 0.20.2; vendor named no fix) / GO-2026-5750 (vulnerable at 0.20.2, no fix recorded)",
        acceptedBecause:
            "reached only by pulling a model: the gateway refuses /api/pull, Ollama's only network has no egress, and no later release is in the Go module proxy to build and test (0.17.4 is the newest)",
    },
];
