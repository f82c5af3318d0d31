/**
 * haproxy.cfg syntax for the gateway renderer (../haproxy.ts): quoting, paths, addresses and the
 * JSON refusals.
 */
import type { GatewayError } from "../errors";
import type { Upstream } from "../spec";
import { checkAddress, checkNoControlCharacters, checkPath, RenderError } from "../values";

/** Thrown when a spec value cannot be written into haproxy.cfg safely. */
export class HaproxyRenderError extends RenderError {}

/**
 * A double-quoted haproxy word taken literally: `\`, `"` and `$` (environment expansion) are
 * escaped; `%` is doubled because every place this is used parses a log-format string.
 */
export function haproxyLiteral(value: string, what: string): string {
    checkNoControlCharacters(value, what, HaproxyRenderError);
    return `"${value.replace(/%/g, "%%").replace(/[\\"$]/g, (c) => "\\" + c)}"`;
}

/** A single-quoted haproxy word: no escape or variable processing at all (regexes, JSON). */
export function singleQuoted(value: string, what: string): string {
    checkNoControlCharacters(value, what, HaproxyRenderError);
    if (value.includes("'")) throw new HaproxyRenderError(`${what}: ${JSON.stringify(value)} cannot be single-quoted for haproxy`);
    return `'${value}'`;
}

/** A filesystem path for haproxy; these come from placements, never from users. */
export function haproxyPath(p: string, what: string): string {
    checkPath(p, what, HaproxyRenderError);
    return p;
}

export function address(u: Upstream, what: string): string {
    checkAddress(u, what, HaproxyRenderError);
    return u.host.includes(":") ? `ipv6@${u.host}:${u.port}` : `${u.host}:${u.port}`;
}

export const isIpLiteral = (h: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.includes(":");

export function indent(lines: readonly string[]): string[] {
    return lines.map((l) => (l === "" ? "" : "    " + l));
}

/** `{"error":{...}}` as a single-quoted log-format string with the request id. */
export function errorBody(e: GatewayError): string {
    return singleQuoted(`{"error":{"code":"${e.code}","message":"${e.message}","requestId":"%[unique-id]"}}`, `error ${e.code}`);
}

/** An `http-request return` answering with the JSON error (plus extra headers) when `cond` holds. */
export function refuse(e: GatewayError, cond: string, headers: readonly (readonly [string, string])[] = []): string {
    const hdrs = headers.map(([n, v]) => ` hdr ${n} ${v}`).join("");
    return `http-request return status ${e.status} content-type application/json lf-string ${errorBody(e)}${hdrs} if ${cond}`;
}
