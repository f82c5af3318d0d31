/**
 * Published Ollama vulnerabilities by affected release range: the one data file the
 * `ollama-disallow-vulnerable-version` rule reads. An entry gives `fixed` (first release without
 * the flaw) or, when an advisory names no fix, `lastAffected` (last release it names as
 * affected). Add an entry when an advisory is published; never delete one. The default pin,
 * 0.17.4, is outside every range except CVE-2026-7020's, which is accepted (see its entry).
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
        source: "NVD CVE-2024-28224 (before 0.1.29)",
    },
    {
        id: "CVE-2024-37032",
        summary: "path traversal through a crafted manifest digest (\"Probllama\"), file write and code execution",
        via: ["/api/pull"],
        fixed: "0.1.34",
        source: "NVD CVE-2024-37032 (before 0.1.34)",
    },
    {
        id: "CVE-2024-39720",
        summary: "out-of-bounds read on a crafted GGUF model file crashes the server",
        via: ["/api/create"],
        fixed: "0.1.46",
        source: "NVD CVE-2024-39720 (before 0.1.46)",
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
        lastAffected: "0.12.3",
        source: "GHSA-f6mr-38g8-39rg / NVD CVE-2025-63389 (through 0.12.3)",
    },
    {
        id: "CVE-2026-7482",
        summary: "heap out-of-bounds read in the GGUF loader leaks process memory (\"Bleeding Llama\")",
        via: ["/api/blobs/:digest", "/api/create", "/api/push"],
        fixed: "0.17.1",
        source: "NVD CVE-2026-7482 (before 0.17.1)",
    },
    {
        id: "CVE-2026-7020",
        summary: "path traversal in the tensor model transfer's digestToPath (x/imagegen/transfer)",
        via: ["/api/pull"],
        lastAffected: "0.20.2",
        source: "NVD CVE-2026-7020 (through 0.20.2; vendor named no fix)",
        acceptedBecause:
            "reached only by pulling a model: the gateway refuses /api/pull, Ollama's only network has no egress, and no later release is in the Go module proxy to build and test (0.17.4 is the newest)",
    },
];
