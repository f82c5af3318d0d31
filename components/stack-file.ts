/**
 * Reads a `Pulumi.<stack>.yaml` file the way the Pulumi CLI hands config to the program, for the
 * tools that run without the CLI (plan, sandbox, device tooling, tests). `secure:` values cannot
 * be decrypted offline: each becomes a present secret with a placeholder value.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { PROJECT, SECRET_KEYS, parsePulumiConfig, type ParseResult, type ProviderConfigView } from "./config";

/** Placeholder that stands in for a `secure:` value that cannot be decrypted offline. */
export const SECRET_PLACEHOLDER = "[secret]";

export interface StackFile {
    /** Config of this project, namespace stripped, values decoded. */
    readonly raw: Record<string, unknown>;
    /** Keys (namespace stripped) whose values were `secure:` in the file. */
    readonly secretKeys: readonly string[];
    /** Config of other namespaces (provider settings such as `tailscale:tailnet`), keys kept whole. */
    readonly otherConfig: Record<string, unknown>;
    /** Keys of `otherConfig` (kept whole) whose values were `secure:` in the file. */
    readonly secureOtherKeys: readonly string[];
}

export class StackFileError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "StackFileError";
    }
}

function isSecure(v: unknown): v is { secure: string } {
    return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { secure?: unknown }).secure === "string";
}

/**
 * A YAML syntax error as the yaml library reports it: what is wrong, "at line L, column C:" and
 * its code frame (the offending lines with a caret), kept whole so the operator sees where.
 */
export function yamlErrorMessage(source: string, e: Error): string {
    return `${source}: not valid YAML: ${e.message.trimEnd()}`;
}

/** Parse stack-file text; `source` names the file in errors. */
export function parseStackFile(text: string, source: string): StackFile {
    let doc: unknown;
    try {
        doc = parse(text);
    } catch (e) {
        throw new StackFileError(yamlErrorMessage(source, e as Error));
    }
    if (doc === null || doc === undefined) doc = {};
    if (typeof doc !== "object" || Array.isArray(doc)) throw new StackFileError(`${source}: expected a YAML mapping with a "config:" key`);
    const config = (doc as { config?: unknown }).config ?? {};
    if (typeof config !== "object" || config === null || Array.isArray(config)) throw new StackFileError(`${source}: "config" must be a mapping of key: value`);

    const raw: Record<string, unknown> = {};
    const secretKeys: string[] = [];
    const otherConfig: Record<string, unknown> = {};
    const secureOtherKeys: string[] = [];
    for (const [fullKey, value] of Object.entries(config as Record<string, unknown>)) {
        const sep = fullKey.indexOf(":");
        // Pulumi treats a key without a namespace as belonging to the project.
        const ns = sep < 0 ? PROJECT : fullKey.slice(0, sep);
        const key = sep < 0 ? fullKey : fullKey.slice(sep + 1);
        if (ns !== PROJECT) {
            otherConfig[fullKey] = isSecure(value) ? SECRET_PLACEHOLDER : value;
            if (isSecure(value)) secureOtherKeys.push(fullKey);
            continue;
        }
        if (isSecure(value)) {
            secretKeys.push(key);
            raw[key] = SECRET_PLACEHOLDER;
        } else {
            raw[key] = value;
        }
    }
    return { raw, secretKeys, otherConfig, secureOtherKeys };
}

export function readStackFile(path: string): StackFile {
    return parseStackFile(readStackFileText(path), path);
}

/** The stack file's text; a StackFileError naming the file when it cannot be read. */
export function readStackFileText(path: string): string {
    try {
        return readFileSync(path, "utf8");
    } catch (e) {
        throw new StackFileError(`${path}: cannot read stack file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
}

/** The `project:key -> string` map Pulumi's runtime would see for this file (for mocks). */
export function toPulumiConfigMap(file: StackFile): { config: Record<string, string>; secretKeys: string[] } {
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(file.raw)) config[`${PROJECT}:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    for (const [k, v] of Object.entries(file.otherConfig)) config[k] = typeof v === "string" ? v : JSON.stringify(v);
    const secretKeys = [...file.secretKeys.filter((k) => (SECRET_KEYS as readonly string[]).includes(k)).map((k) => `${PROJECT}:${k}`), ...file.secureOtherKeys];
    return { config, secretKeys };
}

/** The file's provider config as `parseStackConfig` checks it (plain-text credentials are errors). */
export function providerConfigView(file: StackFile): ProviderConfigView {
    return { keys: Object.keys(file.otherConfig), isSecret: (k) => file.secureOtherKeys.includes(k) };
}

/**
 * The file's config validated exactly as the program validates what the Pulumi CLI hands it:
 * the same `namespace:key` -> string map, through the same `parsePulumiConfig`.
 */
export function parseStackFileConfig(file: StackFile): ParseResult {
    const { config, secretKeys } = toPulumiConfigMap(file);
    return parsePulumiConfig(config, (k) => secretKeys.includes(k));
}
