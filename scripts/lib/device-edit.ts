/**
 * Enrol and revoke devices by editing `Pulumi.<stack>.yaml` in place. The yaml Document API
 * locates the `devices` list and the exact source range of every entry; the edit is then
 * spliced into the original text, so every byte outside the added or removed entry (comments,
 * blank lines, quoting, key order) stays as the operator wrote it. The result is validated with
 * the program's own config schema before anything is written, and written atomically.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative as relativePath, resolve as resolvePath } from "node:path";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { Document, isMap, isScalar, isSeq, parse, parseDocument, type Pair, type YAMLMap, type YAMLSeq } from "yaml";
import { PROJECT, type ConfigProblem } from "../../components/config";
import { StackFileError, parseStackFile, parseStackFileConfig, yamlErrorMessage, type StackFile } from "../../components/stack-file";

/** A refused edit: the message says what is wrong and how to fix it. The file is untouched. */
export class DeviceEditError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "DeviceEditError";
    }
}

/** The device entry `device:add` writes. Optional fields are omitted from the YAML when unset. */
export interface NewDevice {
    readonly name: string;
    readonly owner: string;
    readonly groups?: readonly string[];
    readonly tailscaleDeviceId?: string;
    readonly apiKey?: boolean;
}

/** Which command-line flag sets each device field, for error hints. */
const FLAG_OF_FIELD: Record<string, string> = {
    name: "--name",
    owner: "--owner",
    groups: "--groups",
    tailscaleDeviceId: "--tailscale-id",
    apiKey: "--api-key",
};

const DEVICES_KEYS = [`${PROJECT}:devices`, "devices"];

interface DevicesLocation {
    readonly config: YAMLMap;
    /** The `devices` pair, absent when the stack file has no devices key yet. */
    readonly pair?: Pair;
    readonly seq?: YAMLSeq;
}

function locate(text: string, source: string): DevicesLocation {
    const doc = parseDocument(text);
    if (doc.errors.length) throw new DeviceEditError(yamlErrorMessage(source, doc.errors[0]));
    const root = doc.contents;
    if (!isMap(root)) throw new DeviceEditError(`${source}: expected a YAML mapping with a "config:" key`);
    const config = root.get("config", true);
    if (!isMap(config) || config.flow) throw new DeviceEditError(`${source}: "config" must be a block mapping of key: value`);
    const pair = config.items.find((p) => isScalar(p.key) && DEVICES_KEYS.includes(String(p.key.value)));
    if (!pair) return { config };
    if (pair.value === null || !isSeq(pair.value)) {
        throw new DeviceEditError(`${source}: ${PROJECT}:devices must be a list (write "[]" for none)`);
    }
    return { config, pair, seq: pair.value };
}

/** End-of-line sequence used by the file, so inserted lines match it. */
const eolOf = (text: string) => (text.includes("\r\n") ? "\r\n" : "\n");

/** Index of the end of the line containing `pos` (the position of its line break, or text end). */
function lineEndAt(text: string, pos: number): number {
    const nl = text.indexOf("\n", pos);
    if (nl < 0) return text.length;
    return text[nl - 1] === "\r" ? nl - 1 : nl;
}

const lineStartAt = (text: string, pos: number) => text.lastIndexOf("\n", pos - 1) + 1;

/** Position of the last non-whitespace character in [from, to). */
function lastContentBefore(text: string, from: number, to: number): number {
    let i = to - 1;
    while (i > from && /\s/.test(text[i])) i--;
    return i;
}

/** Column of a block-sequence item's dash: the item node starts after "- ". */
function dashOf(text: string, itemStart: number): number {
    let i = itemStart - 1;
    while (i >= 0 && (text[i] === " " || text[i] === "\t")) i--;
    if (text[i] !== "-") throw new DeviceEditError("unexpected layout of the devices list: every entry must start with \"- \" on its own line");
    return i;
}

function rangeOf(node: { range?: [number, number, number] | null }): [number, number, number] {
    if (!node.range) throw new DeviceEditError("internal: YAML node without a source range");
    return node.range;
}

/** The device entry as plain data, optional fields omitted when unset. */
function entryOf(device: NewDevice): Record<string, unknown> {
    const entry: Record<string, unknown> = { name: device.name, owner: device.owner };
    if (device.groups && device.groups.length) entry.groups = [...device.groups];
    if (device.tailscaleDeviceId !== undefined) entry.tailscaleDeviceId = device.tailscaleDeviceId;
    if (device.apiKey) entry.apiKey = true;
    return entry;
}

/** The YAML lines of one device entry, at `indent` spaces, groups as a flow list like the examples. */
function renderEntry(device: NewDevice, indent: number, eol: string): string {
    const doc = new Document([entryOf(device)]);
    const groups = doc.getIn([0, "groups"], true);
    if (isSeq(groups)) groups.flow = true;
    const pad = " ".repeat(indent);
    return doc
        .toString({ lineWidth: 0, flowCollectionPadding: false })
        .trimEnd()
        .split("\n")
        .map((l) => pad + l)
        .join(eol);
}

function devicesOf(text: string): unknown[] {
    const config = (parse(text) as { config?: Record<string, unknown> }).config ?? {};
    for (const k of DEVICES_KEYS) if (k in config) return (config[k] as unknown[]) ?? [];
    return [];
}

/**
 * What to add to `tailscale.revokedDevices` so the tailnet withdraws a removed device's approval
 * (the provider's delete of its authorization changes nothing there), or undefined when the
 * device has no node id. A hint to print: the edit itself touches only `devices`.
 */
export function revokedDeviceHint(text: string, name: string): string | undefined {
    const device = devicesOf(text).find((d) => (d as { name?: unknown })?.name === name) as { tailscaleDeviceId?: unknown } | undefined;
    if (typeof device?.tailscaleDeviceId !== "string") return undefined;
    return [
        `tailnet: removing "${name}" deletes its tags, but the provider's delete of its authorisation leaves it approved at the tailnet.`,
        `  To withdraw the approval, add it to ${PROJECT}:tailscale.revokedDevices before pulumi up:`,
        `    revokedDevices:`,
        `      - name: ${name}`,
        `        tailscaleDeviceId: ${device.tailscaleDeviceId}`,
    ].join("\n");
}

function deviceNames(text: string): string[] {
    return devicesOf(text).map((d) => String((d as { name?: unknown })?.name));
}

/** Config with the devices key removed: must be identical before and after an edit. */
function configWithoutDevices(text: string): Record<string, unknown> {
    const config = { ...((parse(text) as { config?: Record<string, unknown> }).config ?? {}) };
    for (const k of DEVICES_KEYS) delete config[k];
    return config;
}

/** A config problem with the flag that fixes it, when the problem is in the edited entry. */
function withFlagHint(p: ConfigProblem, editedIndex: number | undefined): string {
    const m = /^zero-trust-ollama:devices\[(\d+)\]\.(\w+)$/.exec(p.path);
    const hint = m && Number(m[1]) === editedIndex && FLAG_OF_FIELD[m[2]] ? ` (set with ${FLAG_OF_FIELD[m[2]]})` : "";
    return `  - ${p.path}: ${p.message}${hint}`;
}

/**
 * Validate the edited text exactly as the program would read it, and check that the splice
 * changed the devices list as intended and nothing else.
 */
function checkResult(before: string, after: string, source: string, expectedDevices: unknown[], editedIndex: number | undefined): void {
    let file: StackFile;
    try {
        file = parseStackFile(after, source);
    } catch (e) {
        throw new DeviceEditError(e instanceof StackFileError ? e.message : String(e));
    }
    const parsed = parseStackFileConfig(file);
    if (!parsed.ok) {
        const lines = parsed.problems.map((p) => withFlagHint(p, editedIndex));
        throw new DeviceEditError(`${source}: the edit would make the stack config invalid, nothing was written:\n${lines.join("\n")}`);
    }
    if (!isDeepStrictEqual(devicesOf(after), expectedDevices) || !isDeepStrictEqual(configWithoutDevices(after), configWithoutDevices(before))) {
        throw new DeviceEditError(`${source}: internal: the edit did not produce the expected devices list; nothing was written`);
    }
}

/** Returns the stack file text with `device` appended to the devices list. */
export function addDevice(text: string, source: string, device: NewDevice): string {
    const loc = locate(text, source);
    const existing = deviceNames(text);
    const dup = existing.indexOf(device.name);
    if (dup >= 0) {
        throw new DeviceEditError(`${source}: device "${device.name}" is already enrolled (devices[${dup}]); choose another --name, or revoke it first`);
    }
    const eol = eolOf(text);
    let out: string;
    if (loc.seq && loc.seq.items.length && !loc.seq.flow) {
        // Append after the last entry, at the same indentation as the first entry.
        const first = rangeOf(loc.seq.items[0] as YAMLMap);
        const dash = dashOf(text, first[0]);
        const indent = dash - lineStartAt(text, dash);
        const last = rangeOf(loc.seq.items[loc.seq.items.length - 1] as YAMLMap);
        const at = lineEndAt(text, lastContentBefore(text, last[0], last[1]));
        out = text.slice(0, at) + eol + renderEntry(device, indent, eol) + text.slice(at);
    } else if (loc.seq && loc.pair) {
        if (loc.seq.items.length) throw new DeviceEditError(`${source}: ${PROJECT}:devices is written as a flow list ([...]); rewrite it as a block list ("- name: ...") to edit it with this tool`);
        // `devices: []` becomes a block list under the key.
        const key = rangeOf(loc.pair.key as { range?: [number, number, number] });
        const indent = key[0] - lineStartAt(text, key[0]) + 2;
        const seq = rangeOf(loc.seq);
        const colon = text.indexOf(":", key[1]);
        out = text.slice(0, colon + 1) + eol + renderEntry(device, indent, eol) + text.slice(seq[1]);
    } else {
        // No devices key yet: add one after the last key of the config mapping.
        const keyNode = loc.config.items[0]?.key as { range?: [number, number, number] } | undefined;
        if (!keyNode) throw new DeviceEditError(`${source}: "config" is empty; add ${PROJECT}:domain first`);
        const keyRange = rangeOf(keyNode);
        const indent = keyRange[0] - lineStartAt(text, keyRange[0]);
        const cfg = rangeOf(loc.config);
        const at = lineEndAt(text, lastContentBefore(text, cfg[0], cfg[1]));
        const header = `${" ".repeat(indent)}${PROJECT}:devices:`;
        out = text.slice(0, at) + eol + header + eol + renderEntry(device, indent + 2, eol) + text.slice(at);
    }
    checkResult(text, out, source, [...devicesOf(text), entryOf(device)], existing.length);
    return out;
}

/** Returns the stack file text without the device named `name`. */
export function revokeDevice(text: string, source: string, name: string): string {
    const loc = locate(text, source);
    const names = deviceNames(text);
    const index = names.indexOf(name);
    if (index < 0 || !loc.seq || !loc.pair) {
        const enrolled = names.length ? `enrolled: ${names.join(", ")}` : "no device is enrolled";
        throw new DeviceEditError(`${source}: no device named "${name}" (${enrolled})`);
    }
    if (loc.seq.flow) throw new DeviceEditError(`${source}: ${PROJECT}:devices is written as a flow list ([...]); rewrite it as a block list ("- name: ...") to edit it with this tool`);
    const item = rangeOf(loc.seq.items[index] as YAMLMap);
    const eol = eolOf(text);
    let start = lineStartAt(text, dashOf(text, item[0]));
    let end = lineEndAt(text, lastContentBefore(text, item[0], item[1]));
    // Remove the entry's lines with the line break that ends them, or, when the entry ends the
    // file without one, with the line break before it.
    if (text.startsWith(eol, end)) end += eol.length;
    else if (start >= eol.length && text.slice(start - eol.length, start) === eol) start -= eol.length;
    let out = text.slice(0, start) + text.slice(end);
    if (loc.seq.items.length === 1) {
        // The list is now empty: an empty value would read as null, so write `[]` after the key.
        const colon = text.indexOf(":", rangeOf(loc.pair.key as { range?: [number, number, number] })[1]);
        out = out.slice(0, colon + 1) + " []" + out.slice(colon + 1);
    }
    const expected = devicesOf(text).filter((_, i) => i !== index);
    checkResult(text, out, source, expected, undefined);
    return out;
}

/** Stack name from a `Pulumi.<stack>.yaml` path, for the hints the commands print. */
export function stackNameOf(path: string): string {
    const m = /^Pulumi\.(.+)\.ya?ml$/.exec(basename(path));
    return m ? m[1] : "<stack>";
}

/** The project directory: where Pulumi.yaml is, and where `pulumi` looks for `Pulumi.<stack>.yaml`. */
const PROJECT_DIR = resolvePath(__dirname, "..", "..");

/**
 * The commands that apply an edit of the stack file `typed` (as the user wrote it; `resolved` is
 * its absolute path). Pulumi reads `Pulumi.<stack>.yaml` from the project directory only; a file
 * elsewhere (a sandbox copy in `.sandbox/`) needs `--config-file`, or is run by the sandbox.
 */
export function applyCommands(typed: string, resolved: string): { deploy: string; sandbox?: string } {
    const stack = stackNameOf(resolved);
    if (dirname(resolved) === PROJECT_DIR && stack !== "<stack>") return { deploy: `pulumi up --stack ${stack}` };
    // pulumi runs in the project directory: from elsewhere, say so with --cwd and an absolute path.
    const userCwd = process.env.INIT_CWD ?? process.cwd();
    const deploy =
        userCwd === PROJECT_DIR
            ? `pulumi up --stack ${stack} --config-file ${relativePath(PROJECT_DIR, resolved)}`
            : `pulumi --cwd ${relativePath(userCwd, PROJECT_DIR) || "."} up --stack ${stack} --config-file ${resolved}`;
    return {
        deploy,
        sandbox: `npm run sandbox -- --stack ${typed} --state <its state dir>   (a running sandbox reads the stack file only at start: stop and start it)`,
    };
}

/**
 * Read, transform and write a stack file. The new text goes to a temporary file in the same
 * directory (same mode as the original) and replaces the original by rename, only after the
 * transform and its validation succeeded; on any error the original is untouched.
 */
export function editStackFile(path: string, transform: (text: string) => string): void {
    let before: string;
    let mode: number;
    try {
        before = readFileSync(path, "utf8");
        mode = statSync(path).mode & 0o777;
    } catch (e) {
        throw new DeviceEditError(`${path}: cannot read stack file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const after = transform(before);
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
    try {
        writeFileSync(tmp, after, { mode, flag: "wx" });
        // Refuse to overwrite a concurrent edit made while we were validating.
        if (readFileSync(path, "utf8") !== before) throw new DeviceEditError(`${path}: the file changed while it was being edited; nothing was written, run the command again`);
        renameSync(tmp, path);
    } catch (e) {
        try {
            unlinkSync(tmp);
        } catch {
            // the temporary file was never created or was already renamed
        }
        if (e instanceof DeviceEditError) throw e;
        throw new DeviceEditError(`${path}: cannot write stack file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); it is unchanged`);
    }
}

/** Wrong or missing command-line arguments (exit code 2). */
export class UsageError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "UsageError";
    }
}

/**
 * Parse `argv` strictly (unknown flags and stray positionals are usage errors) with node's
 * parseArgs, rephrasing its errors for an operator.
 */
export function parseFlags<T extends Record<string, { type: "string" | "boolean" }>>(argv: string[], options: T): { [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string } {
    try {
        return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as { [K in keyof T]?: T[K]["type"] extends "boolean" ? boolean : string };
    } catch (e) {
        throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ""));
    }
}

/**
 * Run a command's main function: a refused edit or bad input prints its message (never a stack
 * trace) and exits 1, a usage error prints the usage and exits 2.
 */
export function runCli(usage: string, main: () => Promise<void> | void): void {
    Promise.resolve()
        .then(main)
        .catch((e: unknown) => {
            if (e instanceof UsageError) {
                process.stderr.write(`error: ${e.message}\n\n${usage}\n`);
                process.exitCode = 2;
                return;
            }
            process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
            process.exitCode = 1;
        });
}
