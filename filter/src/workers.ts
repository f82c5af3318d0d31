/**
 * Several filter processes (node:cluster, one per core by default) and still ONE budget ledger.
 * The primary owns the SQLite store and the BudgetLedger; workers serve HTTP and ask the primary
 * to admit, settle and report over IPC. The primary handles one message at a time and
 * `BudgetLedger.admit` checks and charges synchronously there, so the single-writer argument of
 * ledger.ts holds across processes: concurrent requests of one caller, in any workers, are admitted
 * one after another against the same totals, and a reservation is committed to the store (group
 * commit, store.ts) before its worker hears it was admitted (so before anything is forwarded).
 *
 * A worker that dies is replaced; the reservations it held open are settled at their full amount
 * (what a crashed process's open rows count at the next start) and free their concurrency slots.
 * The primary being killed takes the workers with it (node:cluster exits a worker whose IPC
 * channel closes) and its open rows count in full at the next start, as before.
 */
import cluster, { type Worker } from "node:cluster";
import type { FilterRules } from "../../components/filter/rules";
import type { AdmitRequest, BudgetService } from "./budget/gate";
import { settledTokens, type Admission, type BudgetLedger, type BudgetStatus, type Outcome, type Reservation } from "./budget/ledger";
import { effectiveLimits, type BudgetRules } from "./budget/windows";

/** Worker -> primary. */
type ToPrimary =
    | { readonly zto: "hello" }
    | { readonly zto: "admit"; readonly seq: number; readonly req: AdmitRequest }
    | { readonly zto: "status"; readonly seq: number; readonly subject: string; readonly groups: readonly string[] }
    | { readonly zto: "settle"; readonly reservation: number; readonly outcome: Outcome }
    /** The worker's last message before it exits: every settlement before it is on the channel. */
    | { readonly zto: "stopped" }
    /** Admissions, settlements and status asks of one turn of the worker's event loop, in order (see `send`). */
    | { readonly zto: "batch"; readonly messages: readonly Batched[] };

/** What a worker sends in batches: one per request, or two. */
type Batched = Extract<ToPrimary, { zto: "admit" | "status" | "settle" }>;

/** Primary -> worker. */
export type ToWorker =
    | { readonly zto: "start"; readonly rulesText: string; readonly budgets: boolean; readonly port: number }
    | { readonly zto: "reply"; readonly seq: number; readonly value: Admission | BudgetStatus }
    | { readonly zto: "drain" };

/** What a worker's own reservations settle at when it dies: the full reservation (never less than it may have generated). */
const DIED: Outcome = { usage: {}, frames: 0, clientAborted: false, nothingGenerated: false };

/** What a reservation settles at when its worker died before hearing it was admitted: nothing was forwarded. */
const NEVER_FORWARDED: Outcome = { usage: {}, frames: 0, clientAborted: false, nothingGenerated: true };

/** The worker's side: the primary's ledger, asked over the IPC channel. */
export class PrimaryBudgets implements BudgetService {
    private seq = 0;
    private readonly waiting = new Map<number, (value: Admission | BudgetStatus) => void>();

    constructor(private readonly rules: BudgetRules) {}

    get chargeBy(): BudgetRules["chargeBy"] {
        return this.rules.chargeBy;
    }

    /** Computed here from the same rules the primary holds (no round trip). */
    limits(groups: readonly string[]): boolean {
        return effectiveLimits(this.rules, groups) !== undefined;
    }

    admit(req: AdmitRequest): Promise<Admission> {
        // The ledger reads only the token bounds; the forwarded body never crosses the channel.
        const cost = { promptTokens: req.cost.promptTokens, outputTokens: req.cost.outputTokens, body: undefined, stripUsageChunk: false };
        return this.ask((seq) => ({ zto: "admit", seq, req: { ...req, cost } })) as Promise<Admission>;
    }

    status(subject: string, groups: readonly string[]): Promise<BudgetStatus> {
        return this.ask((seq) => ({ zto: "status", seq, subject, groups })) as Promise<BudgetStatus>;
    }

    /** Sent, not awaited: the primary computes the same charge with the same pure function. */
    settle(r: Reservation, outcome: Outcome): number {
        queue({ zto: "settle", reservation: r.id, outcome });
        return settledTokens(r, outcome);
    }

    /** Hand a primary's reply to the request waiting for it. */
    answer(m: Extract<ToWorker, { zto: "reply" }>): void {
        const resolve = this.waiting.get(m.seq);
        this.waiting.delete(m.seq);
        resolve?.(m.value);
    }

    private ask(message: (seq: number) => Batched): Promise<Admission | BudgetStatus> {
        const seq = ++this.seq;
        return new Promise((resolve) => {
            this.waiting.set(seq, resolve);
            queue(message(seq));
        });
    }
}

/**
 * Every message costs a serialisation, a write to the channel and a wake-up of the primary; an
 * inference request needs two (its admission and its settlement). Those of one turn of the event
 * loop leave together, in order, once the turn's I/O has been handled (setImmediate): under load
 * one write then carries several requests' messages.
 */
let outbox: Batched[] = [];

function queue(m: Batched): void {
    if (outbox.push(m) === 1) setImmediate(flush);
}

function flush(): void {
    if (!outbox.length) return;
    const messages = outbox;
    outbox = [];
    post(messages.length === 1 ? messages[0]! : { zto: "batch", messages });
}

function post(m: ToPrimary, then?: () => void): void {
    // Without a channel the primary is gone and this worker is exiting (node:cluster sees to it).
    if (process.connected) process.send!(m, undefined, {}, then);
    else then?.();
}

/** Send now, after whatever is queued (so "stopped" follows every settlement before it). */
export function send(m: Extract<ToPrimary, { zto: "hello" | "stopped" }>, then?: () => void): void {
    flush();
    post(m, then);
}

/**
 * The primary's side: answers every worker from the one ledger and remembers which reservations
 * each worker holds open, so a dead worker's are settled in full.
 */
export class LedgerHost {
    private readonly open = new Map<number, Map<number, Reservation>>();

    constructor(private readonly ledger: BudgetLedger) {}

    handle(worker: Worker, m: ToPrimary): void {
        const held = this.open.get(worker.id) ?? new Map<number, Reservation>();
        this.open.set(worker.id, held);
        switch (m.zto) {
            case "batch":
                // Only the messages a worker batches; anything else inside one is a broken worker.
                for (const inner of Array.isArray(m.messages) ? m.messages : [undefined]) {
                    if (!isFilterMessage(inner) || !BATCHED.has(inner.zto)) throw new Error(`worker ${worker.id} sent a batch holding ${JSON.stringify(isFilterMessage(inner) ? inner.zto : inner)}`);
                    this.handle(worker, inner as Batched);
                }
                return;
            case "admit":
                // Checked and charged now, in message order; answered once committed (the next
                // messages are handled meanwhile, so one commit serves every worker's turn).
                void this.ledger.admit(m.req).then((a) => {
                    if (a.admitted) {
                        // A worker that died while the batch committed never heard of the request:
                        // nothing was forwarded, and held by nobody it would keep its slot forever.
                        if (this.open.get(worker.id) === held && !worker.isDead()) held.set(a.reservation.id, a.reservation);
                        else this.ledger.settle(a.reservation, NEVER_FORWARDED);
                    }
                    reply(worker, m.seq, a);
                });
                return;
            case "status":
                return reply(worker, m.seq, this.ledger.status(m.subject, m.groups));
            case "settle": {
                const r = held.get(m.reservation);
                // Only a reservation this worker holds can be settled, and only once: anything else
                // is a broken worker (its reservations then count in full, see runPrimary).
                if (!r) throw new Error(`worker ${worker.id} settled reservation ${m.reservation}, which it does not hold`);
                held.delete(m.reservation);
                this.ledger.settle(r, m.outcome);
                return;
            }
            case "hello":
            case "stopped":
                return;
            default:
                // Typed away, but a worker of another build could still send it: refused, not skipped.
                throw new Error(`worker ${worker.id} sent an unknown message ${JSON.stringify((m satisfies never as { zto: string }).zto)}`);
        }
    }

    /** The worker is gone: what it held open is charged in full. Returns how many. */
    released(worker: Worker): number {
        const held = this.open.get(worker.id);
        this.open.delete(worker.id);
        for (const r of held?.values() ?? []) this.ledger.settle(r, DIED);
        return held?.size ?? 0;
    }
}

const BATCHED: ReadonlySet<string> = new Set<Batched["zto"]>(["admit", "status", "settle"]);

function reply(worker: Worker, seq: number, value: Admission | BudgetStatus): void {
    if (worker.isConnected()) worker.send({ zto: "reply", seq, value } satisfies ToWorker);
}

/** True for a message of this protocol (other modules may use the channel too). */
export const isFilterMessage = (m: unknown): m is { readonly zto: string } => typeof m === "object" && m !== null && typeof (m as { zto?: unknown }).zto === "string";

export interface PrimaryOptions {
    readonly workers: number;
    readonly rulesText: string;
    readonly rules: FilterRules;
    readonly listen: { readonly host: string; readonly port: number };
    readonly ledger?: BudgetLedger;
    /** Called once every worker listens, with the port they share. */
    readonly ready: (host: string, port: number) => void;
    /** A worker failed before it listened (a bad listen address, say): the filter cannot run. */
    readonly fatal: (message: string) => void;
    readonly log: (line: string) => void;
}

/** How long SIGTERM waits for the workers to close before they are killed (their open reservations then count in full). */
const DRAIN_BOUND_MS = 8000;

/** Start the workers and serve their ledger; resolves once all have stopped after `drain()`. */
export function runPrimary(opts: PrimaryOptions): { drain: () => Promise<void> } {
    const host = opts.ledger ? new LedgerHost(opts.ledger) : undefined;
    /** Listening workers and the port each asked for. */
    const listening = new Map<number, number>();
    let boundPort: number | undefined;
    // node:cluster shares one socket among workers asking for the same address, port 0 included:
    // a new worker asks what the listening ones asked; only when none is left (the socket closed
    // with the last) does it ask for the port they had, so a port-0 filter keeps its port.
    const portToAsk = () => listening.values().next().value ?? boundPort ?? opts.listen.port;
    let announced = false;
    let draining = false;
    cluster.schedulingPolicy = cluster.SCHED_RR;

    const fork = () => {
        const w = cluster.fork();
        let asked = opts.listen.port;
        w.on("message", (m: unknown) => {
            if (!isFilterMessage(m)) return;
            const message = m as ToPrimary;
            // Sent once the worker listens for messages ("online" comes before its code runs).
            if (message.zto === "hello") {
                asked = portToAsk();
                w.send({ zto: "start", rulesText: opts.rulesText, budgets: opts.ledger !== undefined, port: asked } satisfies ToWorker);
            } else {
                try {
                    host?.handle(w, message);
                } catch (e) {
                    // A worker that breaks the protocol is stopped (its open reservations count in
                    // full on exit) and replaced, rather than trusted with the ledger any further.
                    opts.log(`zto-filter: ${(e as Error).message}; stopping it`);
                    w.process.kill("SIGKILL");
                }
            }
        });
        w.once("listening", (address) => {
            listening.set(w.id, asked);
            boundPort = address.port;
            if (!announced && listening.size === opts.workers) {
                announced = true;
                opts.ready(address.address ?? opts.listen.host, address.port);
            }
        });
        w.once("exit", (code, signal) => {
            const released = host?.released(w) ?? 0;
            const listened = listening.delete(w.id);
            if (draining) return;
            if (!listened) return opts.fatal(`a filter worker exited before it listened (${signal ?? `code ${code}`})`);
            opts.log(`zto-filter: worker ${w.process.pid} exited (${signal ?? `code ${code}`}); ${released} open request(s) counted at their full reservation; starting a new one`);
            fork();
        });
    };
    for (let i = 0; i < opts.workers; i++) fork();

    return {
        drain: () => {
            draining = true;
            const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
            return Promise.all(
                workers.map(
                    (w) =>
                        new Promise<void>((resolve) => {
                            if (w.isDead()) return resolve();
                            const kill = setTimeout(() => w.process.kill("SIGKILL"), DRAIN_BOUND_MS);
                            w.once("exit", () => {
                                clearTimeout(kill);
                                resolve();
                            });
                            if (w.isConnected()) w.send({ zto: "drain" } satisfies ToWorker);
                        }),
                ),
            ).then(() => undefined);
        },
    };
}
