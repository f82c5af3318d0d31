/**
 * TLS session tickets that keep revocation. A resumed TLS 1.3 session carries the client
 * certificate it was first verified with (nginx `$ssl_client_fingerprint`, haproxy `ssl_c_sha1`
 * read it from the session), so the device allowlist is still evaluated on every request. The
 * keys that seal tickets are random bytes of one config generation: every reload (an enrol, a
 * revoke, any edit) puts new keys in force, so no ticket issued under an older allowlist can be
 * resumed after it, and a ticket expires after gateway.tlsTicketLifetimeSeconds in any case.
 */
import type { GatewaySpec } from "./spec";

/** The ticket key file, by path relative to a generation (private to the gateway user). */
export const SESSION_TICKET_KEYS_RELATIVE: Record<GatewaySpec["kind"], string> = {
    nginx: "tls/session-ticket.key",
    haproxy: "tls/session-ticket.keys",
};

/** One AES-256 ticket key as both binaries take it: 16 bytes name, 32 HMAC, 32 AES. */
const TICKET_KEY_BYTES = 80;
/**
 * haproxy reads TLS_TICKETS_NO (3) keys, encrypting with the second to last; all three are
 * fresh per generation, since no ticket of an older generation may be accepted.
 */
const HAPROXY_TICKET_KEYS = 3;

/** Random bytes a generation's ticket key file is made of, per gateway kind. */
export const SESSION_TICKET_RANDOM_BYTES: Record<GatewaySpec["kind"], number> = {
    nginx: TICKET_KEY_BYTES,
    haproxy: TICKET_KEY_BYTES * HAPROXY_TICKET_KEYS,
};

/**
 * The ticket key file for `kind` from fresh random bytes: nginx `ssl_session_ticket_key` reads
 * the 80 raw bytes; haproxy `tls-ticket-keys` reads one base64 key per line.
 */
export function sessionTicketKeyFile(kind: GatewaySpec["kind"], random: Buffer): Buffer {
    const want = SESSION_TICKET_RANDOM_BYTES[kind];
    if (random.length !== want) throw new Error(`the ${kind} session ticket key file needs ${want} random bytes (got ${random.length})`);
    switch (kind) {
        case "nginx":
            return Buffer.from(random);
        case "haproxy": {
            const lines = Array.from({ length: HAPROXY_TICKET_KEYS }, (_, i) => random.subarray(i * TICKET_KEY_BYTES, (i + 1) * TICKET_KEY_BYTES).toString("base64"));
            return Buffer.from(`${lines.join("\n")}\n`);
        }
        default: {
            const unknown: never = kind;
            throw new Error(`no session ticket key format for gateway kind ${String(unknown)}`);
        }
    }
}
