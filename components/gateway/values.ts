/**
 * Checks every renderer applies to a value before writing it into a config file, each throwing
 * the renderer's own error type (`fail`) with a message naming the field. Quoting differs per
 * binary (nginx/syntax.ts, haproxy/syntax.ts); what may be quoted at all does not.
 */

/** The error type a renderer throws: checks name the field, the renderer names the class its callers catch. */
export type SpecErrorType = new (message: string) => Error;

/** A spec value a renderer cannot write safely; each renderer has its own subclass, named after it. */
export class RenderError extends Error {
    constructor(message: string) {
        super(message);
        this.name = new.target.name;
    }
}

/** Control characters would end a directive (or a header) wherever they are written. */
export function checkNoControlCharacters(value: string, what: string, fail: SpecErrorType): void {
    if (/[\u0000-\u001f\u007f]/.test(value)) throw new fail(`${what}: control characters are not allowed (got ${JSON.stringify(value)})`);
}

/** A host and TCP port as a listen or server address: a plain host name or IP, never directive text. */
export function checkAddress(u: { readonly host: string; readonly port: number }, what: string, fail: SpecErrorType): void {
    if (!/^[A-Za-z0-9._:-]+$/.test(u.host)) throw new fail(`${what}: host ${JSON.stringify(u.host)} is not a plain host name or IP`);
    if (!Number.isInteger(u.port) || u.port < 1 || u.port > 65535) throw new fail(`${what}: port ${u.port} is not a TCP port`);
}

/** A filesystem path (from placements, never from users) that needs no quoting. */
export function checkPath(p: string, what: string, fail: SpecErrorType): void {
    if (!/^\/[A-Za-z0-9._\/-]*$/.test(p)) throw new fail(`${what}: ${JSON.stringify(p)} must be an absolute path of [A-Za-z0-9._/-]`);
}

/** A literal for a regex source. */
export const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
