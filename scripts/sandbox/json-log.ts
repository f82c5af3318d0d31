/**
 * Append-only JSON-lines logs written by the sandbox stubs. Each entry is written synchronously
 * before the stub answers, so a test that has its response can read the log and trust that
 * every request the stub received is already in it.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";

export class JsonLinesLog {
    constructor(readonly path: string) {
        if (!existsSync(path)) writeFileSync(path, "", { mode: 0o600 });
    }

    append(entry: object): void {
        appendFileSync(this.path, JSON.stringify(entry) + "\n");
    }
}

/** Every entry of a JSON-lines file; an absent file reads as no entries. */
export function readJsonLines<T>(path: string): T[] {
    if (!existsSync(path)) return [];
    return readFileSync(path, "utf8")
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as T);
}
