/**
 * The budget ledger's durable half: one SQLite file (WAL, synchronous NORMAL) on the filter's own
 * volume. Every admitted request is a row committed before the request is forwarded: the commit is
 * in the WAL file when it returns, so a killed or crashed filter loses nothing; only a crash of the
 * host kernel or a power cut can lose commits since the last checkpoint (an fsync per request
 * would cost tens of milliseconds on a busy disk). Settlement replaces its reservation with
 * Ollama's count; settlements are written together, in one transaction per turn of the event loop
 * (at most SETTLE_BATCH rows): a settlement lost with the process leaves its row open, and open
 * rows count at their full reservation on the next start, so a lost settlement can only raise the
 * count, never lower it. Opening never starts from zero by accident: a
 * missing file next to its marker, a file that is not this store, or a failed integrity check is a
 * startup error naming the path.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type Database from "better-sqlite3";

const SCHEMA_VERSION = "2";
/** Settlements written in one transaction at most (more in one turn start another). */
export const SETTLE_BATCH = 256;

export type RequestState = "open" | "settled" | "crashed";

export interface ReservationRow {
    readonly subject: string;
    readonly groups: readonly string[];
    readonly model: string;
    readonly endpoint: string;
    /** Epoch ms of admission: the windows the request is charged to. */
    readonly startedAt: number;
    readonly reserved: number;
}

export interface ChargeRow {
    readonly subject: string;
    readonly startedAt: number;
    /** Settled tokens, or the reservation while the request is open. */
    readonly charged: number;
}

export interface UsageRow extends ChargeRow {
    readonly groups: readonly string[];
    readonly model: string;
    readonly endpoint: string;
    readonly state: RequestState;
    readonly inputTokens: number | null;
    readonly outputTokens: number | null;
}

export class BudgetStoreError extends Error {}

interface PendingSettlement {
    readonly id: number;
    readonly inputTokens: number | undefined;
    readonly outputTokens: number | undefined;
    readonly charged: number;
}

/** The marker that says a store was created here; a lost database file next to it is an error. */
export const markerPath = (file: string) => join(dirname(file), `${file.split("/").pop()}.id`);

export class BudgetStore {
    private readonly db: Database.Database;
    private readonly insert: Database.Statement;
    private readonly update: Database.Statement;
    private readonly settleAll: (rows: readonly PendingSettlement[]) => void;
    private pending: PendingSettlement[] = [];
    private flushScheduled = false;
    /** Requests that were still open when the previous process stopped, now counted in full. */
    readonly recoveredOpen: number;

    private constructor(db: Database.Database, recoveredOpen: number) {
        this.db = db;
        this.recoveredOpen = recoveredOpen;
        this.insert = db.prepare("INSERT INTO requests (subject, groups, model, endpoint, started_at, reserved, charged, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'open')");
        this.update = db.prepare("UPDATE requests SET input_tokens = ?, output_tokens = ?, charged = ?, state = 'settled' WHERE id = ? AND state = 'open'");
        this.settleAll = db.transaction((rows: readonly PendingSettlement[]) => {
            for (const r of rows) this.update.run(r.inputTokens ?? null, r.outputTokens ?? null, r.charged, r.id);
        });
    }

    /**
     * Open the store at `file`, creating it only where none ever was (no file and no marker).
     * `readOnly` opens an existing store for reports and never creates or recovers anything.
     */
    static open(file: string, opts: { readOnly?: boolean } = {}): BudgetStore {
        const marker = markerPath(file);
        const hasFile = existsSync(file);
        const hasMarker = existsSync(marker);
        if (!hasFile && (hasMarker || opts.readOnly)) {
            throw new BudgetStoreError(`budget store ${file} is missing${hasMarker ? ` but its marker ${marker} is there` : ""}: refusing to start with zero counts (restore the file, or remove the marker to start a new store)`);
        }
        if (hasFile && !hasMarker) throw new BudgetStoreError(`budget store ${file} has no marker ${marker}: it was not created here (restore the marker with the file, or move the file away to start a new store)`);
        if (!hasFile) mkdirSync(dirname(file), { recursive: true });
        let SQLite: typeof Database;
        try {
            // Loaded only when a store is used: an image built without the native binding still runs without budgets.
            SQLite = require("better-sqlite3") as typeof Database;
        } catch (e) {
            throw new BudgetStoreError(`budget store ${file}: the SQLite binding (better-sqlite3) is not installed in this filter build (${(e as Error).message.split("\n")[0]})`);
        }
        let db: Database.Database;
        try {
            db = new SQLite(file, { readonly: opts.readOnly === true, fileMustExist: hasFile });
            if (!opts.readOnly) {
                db.pragma("journal_mode = WAL");
                db.pragma("synchronous = NORMAL");
            }
            db.pragma("busy_timeout = 5000");
            if (!hasFile) {
                const id = randomUUID();
                db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE requests (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, groups TEXT NOT NULL, model TEXT NOT NULL, endpoint TEXT NOT NULL,
                        started_at INTEGER NOT NULL, reserved INTEGER NOT NULL, input_tokens INTEGER, output_tokens INTEGER, charged INTEGER NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('open', 'settled', 'crashed')));
                    CREATE INDEX requests_by_time ON requests (started_at);`);
                db.prepare("INSERT INTO meta VALUES ('schema', ?), ('store', ?)").run(SCHEMA_VERSION, id);
                writeFileSync(marker, `${id}\n`, { mode: 0o600 });
            }
            const check = db.pragma("quick_check", { simple: true });
            if (check !== "ok") throw new BudgetStoreError(`integrity check failed: ${String(check)}`);
            const meta = new Map((db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
            if (meta.get("schema") !== SCHEMA_VERSION) throw new BudgetStoreError(`schema version ${meta.get("schema") ?? "(none)"} is not ${SCHEMA_VERSION}`);
            if (meta.get("store") !== readFileSync(marker, "utf8").trim()) throw new BudgetStoreError(`store id does not match its marker ${marker} (a file from another store?)`);
        } catch (e) {
            const why = e instanceof BudgetStoreError ? e.message : `not a readable budget store (${(e as Error).message})`;
            throw new BudgetStoreError(`budget store ${file}: ${why}`);
        }
        // A request open at the last stop may have generated up to its reservation: count it in full.
        const recovered = opts.readOnly ? 0 : db.prepare("UPDATE requests SET state = 'crashed' WHERE state = 'open'").run().changes;
        return new BudgetStore(db, recovered);
    }

    /** Committed to the WAL when it returns (survives the process): the caller forwards only after this. Returns the row's id. */
    reserve(r: ReservationRow): number {
        return Number(this.insert.run(r.subject, JSON.stringify(r.groups), r.model, r.endpoint, r.startedAt, r.reserved, r.reserved).lastInsertRowid);
    }

    /** Queued, and written with the others of this turn of the event loop (see the file comment). */
    settle(id: number, inputTokens: number | undefined, outputTokens: number | undefined, charged: number): void {
        this.pending.push({ id, inputTokens, outputTokens, charged });
        if (this.pending.length >= SETTLE_BATCH) this.flush();
        else if (!this.flushScheduled) {
            this.flushScheduled = true;
            setImmediate(() => this.flush());
        }
    }

    /** Write the queued settlements now, in one transaction. */
    flush(): void {
        this.flushScheduled = false;
        if (!this.pending.length || !this.db.open) return;
        const rows = this.pending;
        this.pending = [];
        this.settleAll(rows);
    }

    /** Charges of requests admitted at or after `since` (epoch ms), for rebuilding the windows. */
    chargesSince(since: number): ChargeRow[] {
        this.flush();
        return this.db.prepare("SELECT subject, started_at AS startedAt, charged FROM requests WHERE started_at >= ?").all(since) as ChargeRow[];
    }

    /** Every request admitted at or after `since`, for the usage report. */
    usageSince(since: number): UsageRow[] {
        this.flush();
        const rows = this.db
            .prepare("SELECT subject, started_at AS startedAt, charged, groups, model, endpoint, state, input_tokens AS inputTokens, output_tokens AS outputTokens FROM requests WHERE started_at >= ? ORDER BY started_at")
            .all(since) as (Omit<UsageRow, "groups"> & { groups: string })[];
        return rows.map((r) => ({ ...r, groups: JSON.parse(r.groups) as string[] }));
    }

    close(): void {
        this.flush();
        this.db.close();
    }
}
