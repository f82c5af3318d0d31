/**
 * Changing a running gateway's config without replacing its process (enrol, revoke, any config
 * edit). Each rendered file set is one generation: a directory `<root>/generations/<id>` whose id
 * is a digest of its content, and `<root>/current` is a symlink to the generation in force. A
 * writer (the gateway's `-config-writer` container; the sandbox's reload) puts a generation's
 * files in place and then flips the link in one rename, so the gateway never sees half a config.
 * The gateway's supervisor (the container's command, and the sandbox's gateway process) polls the
 * link; when it moves, the binary checks the new config (`nginx -t`, `haproxy -c`) and only then is
 * the master asked to reload gracefully. A config that fails the check is never loaded: the old
 * one keeps serving, and the supervisor says so on stderr.
 */
import { createHash } from "node:crypto";
import type { GatewaySpec } from "./spec";

/** Directory, under the config root, holding one directory per generation. */
export const GENERATIONS_DIR = "generations";
/** Symlink, under the config root, to the generation in force. */
export const CURRENT_LINK = "current";
/** How often the supervisor looks at the link: the longest a written config waits to be checked. */
export const RELOAD_POLL_SECONDS = 1;

/** The signal that makes the master reload gracefully: nginx SIGHUP, haproxy (master-worker, -W) SIGUSR2. */
export const RELOAD_SIGNAL: Record<GatewaySpec["kind"], "HUP" | "USR2"> = { nginx: "HUP", haproxy: "USR2" };

const GENERATION_ID = /^[0-9a-f]{16}$/;

/** Content digest of a generation: every file's relative path and text, in path order. */
export function generationId(files: Readonly<Record<string, string>>): string {
    const hash = createHash("sha256");
    for (const path of Object.keys(files).sort()) hash.update(`${path}\0${files[path]}\0`);
    return hash.digest("hex").slice(0, 16);
}

/** A file of generation `id`, by its path relative to the generation. */
export function generationFile(root: string, id: string, relative: string): string {
    if (!GENERATION_ID.test(id)) throw new Error(`generation id must be 16 lowercase hex characters (got ${JSON.stringify(id)})`);
    return `${root}/${GENERATIONS_DIR}/${id}/${relative}`;
}

/** The path, through the link, at which the gateway reads a file of the generation in force. */
export function currentFile(root: string, relative: string): string {
    return `${root}/${CURRENT_LINK}/${relative}`;
}

/** One POSIX shell word holding `value` literally. */
export function shellQuote(value: string): string {
    if (/[\u0000\n\r]/.test(value)) throw new Error(`${JSON.stringify(value)} cannot be passed to the shell (NUL or line break)`);
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

const words = (argv: readonly string[]) => argv.map(shellQuote).join(" ");

/**
 * The writer's script, run once a generation's files are in `<root>/generations/<id>` (the
 * generation id is its first argument). It flips `current` to the generation with one rename,
 * then deletes every generation but the new one and the one it replaced (the gateway may still be
 * reading that one). Busybox and dash alike: ln, mv -T and readlink only.
 */
export function configWriterScript(root: string): string {
    return [
        "set -eu",
        'id="$1"',
        `cd ${shellQuote(root)}`,
        `case "$id" in *[!0-9a-f]*|"") echo "zto-config-writer: bad generation id '$id'" >&2; exit 2 ;; esac`,
        `[ -d "${GENERATIONS_DIR}/$id" ] || { echo "zto-config-writer: ${GENERATIONS_DIR}/$id is missing: its files were not written" >&2; exit 1; }`,
        `previous=$(readlink ${CURRENT_LINK} 2>/dev/null || true)`,
        `rm -f ${CURRENT_LINK}.next`,
        `ln -s "${GENERATIONS_DIR}/$id" ${CURRENT_LINK}.next`,
        `mv -T ${CURRENT_LINK}.next ${CURRENT_LINK}`,
        `for old in ${GENERATIONS_DIR}/*; do`,
        `    case "$old" in "${GENERATIONS_DIR}/$id"|"$previous") ;; *) rm -rf -- "$old" ;; esac`,
        "done",
        `echo "zto-config-writer: ${CURRENT_LINK} -> ${GENERATIONS_DIR}/$id (was \${previous:-nothing})"`,
        "",
    ].join("\n");
}

export interface SupervisedGateway {
    readonly kind: GatewaySpec["kind"];
    /** The link whose target changes when a new generation is in force. */
    readonly link: string;
    /** The binary in the foreground (its pid is the master's). */
    readonly run: readonly string[];
    /** The binary's config check: exit 0 means the config may be loaded. */
    readonly check: readonly string[];
    /** Append the binary's stdout to this file (the sandbox's haproxy access log); default inherited. */
    readonly stdoutFile?: string;
}

/**
 * The gateway's supervisor: starts the binary, forwards SIGTERM/SIGINT to it, and reloads it in
 * place (same master, same listening socket) whenever the link moves to a generation that passes
 * the binary's own check. It exits with the binary's status, so a dead gateway still stops the
 * container (and restarts it) as before. Messages go to stderr, never into the access log on stdout.
 */
export function gatewaySupervisorScript(g: SupervisedGateway): string {
    const checker = g.check[0];
    return [
        `link=${shellQuote(g.link)}`,
        'say() { echo "zto-reload: $*" >&2; }',
        `${words(g.run)}${g.stdoutFile ? ` >>${shellQuote(g.stdoutFile)}` : ""} &`,
        "master=$!",
        'trap \'kill -TERM "$master" 2>/dev/null\' TERM INT',
        // serving: the generation the master runs; seen: the link target last looked at.
        'serving=$(readlink "$link")',
        "seen=$serving",
        `say "${g.kind} master $master started on \${serving:-nothing}"`,
        'while kill -0 "$master" 2>/dev/null; do',
        // In the background, so a signal is handled at once rather than after the sleep.
        `    sleep ${RELOAD_POLL_SECONDS} & wait $!`,
        '    next=$(readlink "$link")',
        '    [ "$next" = "$seen" ] && continue',
        "    seen=$next",
        `    if problems=$(${words(g.check)} 2>&1); then`,
        `        kill -${RELOAD_SIGNAL[g.kind]} "$master"`,
        `        say "reloading ${g.kind} master $master: $serving -> $next (${checker} check passed)"`,
        "        serving=$next",
        "    else",
        `        say "REFUSED $next: ${checker} rejected it, still serving $serving: $(printf '%s' "$problems" | tr '\\n' ' ')"`,
        "    fi",
        "done",
        'wait "$master"',
        "status=$?",
        `say "${g.kind} master $master exited with status $status"`,
        'exit "$status"',
        "",
    ].join("\n");
}
