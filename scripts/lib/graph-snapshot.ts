/**
 * A stable, comparable picture of a mocked program graph: every resource's URN, parent and
 * (secret-masked) inputs, sorted by URN. Used to prove that a change leaves existing stacks'
 * graphs untouched (same URNs, same inputs), by comparing with a snapshot taken before it.
 */
import * as path from "node:path";
import type { RecordedResource } from "./mock-program";

/** The checkout the program runs from; build contexts name it, so it is replaced by a marker. */
const REPO_ROOT = path.resolve(__dirname, "../..");

export interface GraphSnapshotEntry {
    readonly urn: string;
    readonly parent?: string;
    readonly inputs: Record<string, unknown>;
}

/**
 * Inputs that depend on the calendar, not on the program: the Entra client secret's rotation
 * window moves every `identity.secretRotationDays`. They are replaced by a marker.
 */
const CALENDAR_INPUTS: Readonly<Record<string, readonly string[]>> = {
    "azuread:index/applicationPassword:ApplicationPassword": ["endDate", "displayName", "rotateWhenChanged"],
};

const CHECK_RUN_LABEL = "zero-trust-ollama.check-run";

export function graphSnapshot(resources: readonly RecordedResource[]): GraphSnapshotEntry[] {
    return resources
        .map((r) => {
            const inputs = { ...r.maskedInputs };
            for (const k of CALENDAR_INPUTS[r.type] ?? []) if (k in inputs) inputs[k] = "[calendar]";
            // The model-store check is labelled with the deployment's start time, so it re-runs at every up.
            if (Array.isArray(inputs.labels)) {
                inputs.labels = inputs.labels.map((l: { label: string; value: unknown }) => (l.label === CHECK_RUN_LABEL ? { ...l, value: "[deployment time]" } : l));
            }
            const portable = JSON.parse(JSON.stringify(inputs).split(REPO_ROOT).join("<repo>")) as Record<string, unknown>;
            return r.parent ? { urn: r.urn, parent: r.parent, inputs: portable } : { urn: r.urn, inputs: portable };
        })
        .sort((a, b) => (a.urn < b.urn ? -1 : a.urn > b.urn ? 1 : 0));
}
