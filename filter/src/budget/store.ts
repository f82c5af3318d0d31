/**
 * The budget ledger's durable half: one SQLite file (WAL, synchronous NORMAL) on the filter's own
 * volume. Writes are group-committed: the reservations and settlements of one turn of the event
 * loop are queued and written in ONE transaction at its end (setImmediate, after the I/O callbacks
 * of that turn, so every request whose body arrived in the turn shares it; a microtask would run
 * after each callback and commit one row at a time; at most BATCH rows, a
 * full batch is written at once). `reserve` hands back the promise of that commit, and the caller
 * forwards a request only once it has resolved: a reservation is in the WAL file before anything
 * is forwarded, so a killed or crashed filter loses nothing it forwarded (a reservation still
 * queued at the crash belongs to a request that was never forwarded). Only a crash of the host
 * kernel or a power cut can lose commits since the last checkpoint (an fsync per commit would cost
 * tens of milliseconds on a busy disk). A failed commit rejects that promise for every reservation
 * of the batch. Row ids are assigned here (this connection is the only writer), so a reservation
 * knows its row before the commit. Settlement replaces its reservation with Ollama's count: a
 * settlement lost with the process (or with a failed batch) leaves its row open, and open rows
 * count at their full reservation on the next start, so a lost settlement can only raise the
 * count, never lower it. Opening never starts from zero by accident: a
 * missing file next to its marker, a file that is not this store, or a failed integrity check is a
 * startup error naming the path.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type Database from "better-sqlite3";

const SCHEMA_VERSION = "2";
/** Rows (reservations and settlements) written in one transaction at most (more in one turn start another). */
export const BATCH = 256;

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

interface PendingReservation extends ReservationRow {
    readonly id: number;
}

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
    private readonly writeAll: (reservations: readonly PendingReservation[], settlements: readonly PendingSettlement[]) => void;
    private reservations: PendingReservation[] = [];
    private settlements: PendingSettlement[] = [];
    /** The commit the queued rows wait for; created with the first row of a batch. */
    private batch: { readonly committed: Promise<void>; readonly resolve: () => void; readonly reject: (e: Error) => void } | undefined;
    private flushScheduled = false;
    private lastId: number;
    /** Requests that were still open when the previous process stopped, now counted in full. */
    readonly recoveredOpen: number;

    private constructor(db: Database.Database, recoveredOpen: number) {
        this.db = db;
        this.recoveredOpen = recoveredOpen;
        this.lastId = (db.prepare("SELECT coalesce(max(id), 0) AS id FROM requests").get() as { id: number }).id;
        this.insert = db.prepare("INSERT INTO requests (id, subject, groups, model, endpoint, started_at, reserved, charged, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open')");
        this.update = db.prepare("UPDATE requests SET input_tokens = ?, output_tokens = ?, charged = ?, state = 'settled' WHERE id = ? AND state = 'open'");
        // Reservations first: a settlement of a row queued in the same batch finds it.
        this.writeAll = db.transaction((reservations: readonly PendingReservation[], settlements: readonly PendingSettlement[]) => {
            for (const r of reservations) this.insert.run(r.id, r.subject, JSON.stringify(r.groups), r.model, r.endpoint, r.startedAt, r.reserved, r.reserved);
            for (const r of settlements) this.update.run(r.inputTokens ?? null, r.outputTokens ?? null, r.charged, r.id);
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

    /**
     * Queue the reservation's row; `committed` resolves once it is in the WAL (survives the
     * process) and rejects when its batch could not be written. The caller forwards only after it
     * resolved.
     */
    reserve(r: ReservationRow): { readonly id: number; readonly committed: Promise<void> } {
        const id = ++this.lastId;
        this.reservations.push({ ...r, id });
        return { id, committed: this.queued() };
    }

    /** Queued, and written with the others of this turn of the event loop (see the file comment). */
    settle(id: number, inputTokens: number | undefined, outputTokens: number | undefined, charged: number): void {
        this.settlements.push({ id, inputTokens, outputTokens, charged });
        void this.queued();
    }

    /** The current batch's commit, after scheduling its write (or writing it now when it is full). */
    private queued(): Promise<void> {
        if (!this.batch) {
            let resolve!: () => void;
            let reject!: (e: Error) => void;
            const committed = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
            // Settlements alone have no one waiting: a failure they share must not be an unhandled rejection.
            committed.catch(() => undefined);
            this.batch = { committed, resolve, reject };
        }
        const { committed } = this.batch;
        if (this.reservations.length + this.settlements.length >= BATCH) this.flush();
        else if (!this.flushScheduled) {
            this.flushScheduled = true;
            setImmediate(() => this.flush());
        }
        return committed;
    }

    /** Write the queued rows now, in one transaction, and settle the batch's promise. */
    flush(): void {
        this.flushScheduled = false;
        const batch = this.batch;
        if (!batch) return;
        const { reservations, settlements } = this;
        this.batch = undefined;
        this.reservations = [];
        this.settlements = [];
        try {
            if (!this.db.open) throw new BudgetStoreError("the budget store is closed");
            this.writeAll(reservations, settlements);
        } catch (e) {
            return batch.reject(e instanceof Error ? e : new Error(String(e)));
        }
        batch.resolve();
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
