/**
 * Reads a Tailscale policy file (the `acl` input of tailscale.Acl) into flat access rules, from
 * both the legacy `acls` section and `grants`, so the rules can check who reaches what port.
 */
import { parseHuJson } from "./hujson";
import { listOf, str } from "./policy-kit";

export interface AccessRule {
    /** Where the rule is, e.g. `grants[2]`, for messages. */
    readonly where: string;
    readonly srcs: string[];
    /** Each destination host with its port spec (`*`, `443`, `80,443`, `8000-9000`). */
    readonly dsts: { host: string; ports: string }[];
}

export interface ParsedAcl {
    readonly rules: AccessRule[];
    readonly tests: { src: string; accept: string[]; deny: string[] }[];
}

/** `tag:ai-server:443` -> host `tag:ai-server`, ports `443`; `[fd7a::1]:443` keeps the brackets off. */
export function splitHostPorts(dst: string): { host: string; ports: string } {
    const i = dst.lastIndexOf(":");
    if (i < 0) return { host: dst, ports: "*" };
    return { host: dst.slice(0, i).replace(/^\[(.*)\]$/, "$1"), ports: dst.slice(i + 1) };
}

/** Grant `ip` entries: `*`, `443`, `tcp:443`, `tcp:8000-9000`; the protocol prefix is dropped. */
function grantPorts(ip: unknown): string[] {
    return listOf(ip).map((p) => {
        const s = str(p);
        const i = s.lastIndexOf(":");
        return i < 0 ? s : s.slice(i + 1);
    });
}

/** Parse the policy file; throws SyntaxError with a readable message when it is not HuJSON. */
export function parseAcl(text: string): ParsedAcl {
    const doc = parseHuJson(text);
    if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new SyntaxError("the policy file must be a JSON object");
    const d = doc as Record<string, unknown>;
    const rules: AccessRule[] = [];
    listOf(d.acls).forEach((a, i) => {
        if (str(a?.action || "accept") !== "accept") return;
        rules.push({ where: `acls[${i}]`, srcs: listOf(a?.src).map(str), dsts: listOf(a?.dst).map((x) => splitHostPorts(str(x))) });
    });
    listOf(d.grants).forEach((g, i) => {
        const ports = grantPorts(g?.ip);
        rules.push({ where: `grants[${i}]`, srcs: listOf(g?.src).map(str), dsts: listOf(g?.dst).flatMap((h) => ports.map((p) => ({ host: str(h), ports: p }))) });
    });
    const tests = listOf(d.tests).map((t) => ({ src: str(t?.src), accept: listOf(t?.accept).map(str), deny: listOf(t?.deny).map(str) }));
    return { rules, tests };
}

/** Every port a spec names, or undefined for `*` or anything unparseable (treated as "any"). */
export function portsIn(spec: string): number[] | undefined {
    const out: number[] = [];
    for (const part of spec.split(",")) {
        const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
        if (!m) return undefined;
        const lo = Number(m[1]);
        const hi = m[2] === undefined ? lo : Number(m[2]);
        if (hi < lo || hi > 65535) return undefined;
        // A range wider than the allowed set is a violation anyway; cap the expansion.
        for (let p = lo; p <= hi && out.length <= 65536; p++) out.push(p);
    }
    return out;
}
