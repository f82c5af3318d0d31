/**
 * `npm run prerequisites` (and the first step of `npm test`): check that the programs the tests
 * run for real are installed at usable versions, and say how to install each one that is not,
 * instead of failing later with `spawnSync nginx ENOENT` and sandbox time-outs.
 *
 * Exit 0: everything present; 1: something missing or too old (one line each); 2: usage error.
 */
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { TOOLS, toolPath } from "./lib/tools";

/** One program the test suite needs. */
export interface Prerequisite {
    /** What the operator installs, as they would call it. */
    readonly name: string;
    /** The command that prints the version (stdout or stderr). */
    readonly command: string;
    readonly args: readonly string[];
    /** Captures the version number from the command's output. */
    readonly version: RegExp;
    /** Oldest version the tests are known to work with. */
    readonly min: string;
    /** How to install it (Debian/Ubuntu, like `.ci/setup.d`). */
    readonly install: string;
    /** What the tests use it for ("needed for ..."). */
    readonly neededFor: string;
}

export const PREREQUISITES: readonly Prerequisite[] = [
    {
        name: "node",
        command: process.execPath,
        args: ["-p", "process.versions.node"],
        version: /^(\d+\.\d+\.\d+)/,
        min: "20.10.0",
        install: "install Node.js 20.10 or later from https://nodejs.org/en/download (or your distribution's nodejs 20 package)",
        neededFor: "running the program, tsx and node:test",
    },
    { name: "nginx", command: "nginx", args: ["-v"], version: /nginx\/(\d+\.\d+\.\d+)/, min: "1.22.0", install: "sudo apt-get install nginx", neededFor: "running the rendered nginx.conf in the e2e tests" },
    { name: "haproxy", command: "haproxy", args: ["-v"], version: /version (\d+\.\d+\.\d+)/, min: "2.6.0", install: "sudo apt-get install haproxy", neededFor: "running the rendered haproxy.cfg in the e2e tests" },
    { name: "openssl", command: "openssl", args: ["version"], version: /OpenSSL (\d+\.\d+\.\d+)/, min: "3.0.0", install: "sudo apt-get install openssl", neededFor: "the sandbox PKI and device bundles (PKCS#12)" },
    { name: "curl", command: "curl", args: ["--version"], version: /^curl (\d+\.\d+\.\d+)/, min: "7.74.0", install: "sudo apt-get install curl", neededFor: "running the device bundle's curl example as written" },
    {
        // Debian's python3 (the tests call /usr/bin/python3: a pyenv shim on PATH may lack httpx).
        name: "python3",
        command: "/usr/bin/python3",
        args: ["--version"],
        version: /Python (\d+\.\d+\.\d+)/,
        min: "3.9.0",
        install: "sudo apt-get install python3",
        neededFor: "running the device bundle's OpenAI SDK example",
    },
    {
        name: "python3-httpx",
        command: "/usr/bin/python3",
        args: ["-c", "import httpx; print(httpx.__version__)"],
        version: /^(\d+\.\d+\.\d+)/,
        min: "0.23.0",
        install: "sudo apt-get install python3-httpx",
        neededFor: "the SDK example's HTTP client (with the client certificate)",
    },
    { name: "busybox", command: "busybox", args: [], version: /BusyBox v(\d+\.\d+\.\d+)/, min: "1.30.0", install: "sudo apt-get install busybox", neededFor: "running the gateway's reload watcher under the alpine images' shell" },
    { name: "chromium", command: "/usr/bin/chromium", args: ["--version"], version: /Chromium (\d+\.\d+\.\d+)/, min: "120.0.0", install: "sudo apt-get install chromium libnss3-tools", neededFor: "the browser sign-in test (playwright-core drives Debian's Chromium)" },
    { name: "redis-server", command: "redis-server", args: ["--version"], version: /v=(\d+\.\d+\.\d+)/, min: "7.0.0", install: "sudo apt-get install redis-server", neededFor: "oauth2-proxy's session store in the real sign-in tests" },
    {
        // Probed by preprocessing the header, so a missing compiler and missing headers both show.
        name: "libssl-dev",
        command: "gcc",
        args: ["-E", "-dM", "-include", "openssl/opensslv.h", "-x", "c", "/dev/null"],
        version: /OPENSSL_VERSION_TEXT "OpenSSL (\d+\.\d+\.\d+)/,
        min: "3.0.0",
        install: "sudo apt-get install gcc libssl-dev",
        neededFor: "building bench:gateway's C handshake client, which the bench's SIGKILL test runs",
    },
    { name: "go", command: "go", args: ["version"], version: /go(\d+\.\d+(?:\.\d+)?)/, min: "1.24", install: "install Go 1.24 or later from https://go.dev/doc/install (or put /usr/local/go/bin on PATH)", neededFor: "npm run tools:build and the Ollama route fixture check" },
    // The real upstreams, built at exactly the pinned releases (scripts/lib/tools.ts).
    { name: "oauth2-proxy", command: toolPath("oauth2Proxy"), args: ["--version"], version: /oauth2-proxy v(\d+\.\d+\.\d+)/, min: TOOLS.oauth2Proxy.version.replace(/^v/, ""), install: "npm run tools:build", neededFor: "the sign-in tests against the real oauth2-proxy" },
    { name: "ollama", command: toolPath("ollama"), args: ["--version"], version: /client version is (\d+\.\d+\.\d+)/, min: TOOLS.ollama.version.replace(/^v/, ""), install: "npm run tools:build", neededFor: "the e2e tests against the real Ollama" },
];

/** True when dotted version `a` >= `b`. */
export function versionAtLeast(a: string, b: string): boolean {
    const x = a.split(".").map(Number);
    const y = b.split(".").map(Number);
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
        const d = (x[i] ?? 0) - (y[i] ?? 0);
        if (d !== 0) return d > 0;
    }
    return true;
}

export interface ProbeOutput {
    /** False when the command could not be run at all (not installed). */
    readonly ran: boolean;
    readonly status: number | null;
    readonly output: string;
}

export type Finding = { ok: true; name: string; version: string } | { ok: false; name: string; line: string };

/** What one prerequisite's probe shows: its version, or the one line that says what to do. */
export function judge(p: Prerequisite, probe: ProbeOutput): Finding {
    const fix = `install: ${p.install} (needed for ${p.neededFor})`;
    if (!probe.ran) return { ok: false, name: p.name, line: `missing: ${p.name} (${p.command} not found); ${fix}` };
    const version = p.version.exec(probe.output.trim())?.[1];
    if (probe.status !== 0 || !version) return { ok: false, name: p.name, line: `missing: ${p.name} (\`${[p.command, ...p.args].join(" ")}\` failed: ${probe.output.trim().split("\n").pop() || `exit ${probe.status}`}); ${fix}` };
    if (!versionAtLeast(version, p.min)) return { ok: false, name: p.name, line: `too old: ${p.name} ${version} (need ${p.min} or later); ${fix}` };
    return { ok: true, name: p.name, version };
}

function probe(p: Prerequisite): ProbeOutput {
    const r = spawnSync(p.command, [...p.args], { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "pipe"] });
    if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") return { ran: false, status: null, output: "" };
    return { ran: true, status: r.status, output: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

export function checkPrerequisites(table: readonly Prerequisite[] = PREREQUISITES, run: (p: Prerequisite) => ProbeOutput = probe): Finding[] {
    return table.map((p) => judge(p, run(p)));
}

const USAGE = `usage: npm run prerequisites
  Checks the programs the test suite runs for real (${PREREQUISITES.map((p) => p.name).join(", ")})
  and prints one line per missing or too old one with how to install it.
  Exit codes: 0 all present, 1 something missing, 2 usage error.`;

function main(argv: string[]): number {
    let help: boolean | undefined;
    try {
        ({ help } = parseArgs({ args: argv, options: { help: { type: "boolean" } }, strict: true, allowPositionals: false }).values);
    } catch (e) {
        process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
        return 2;
    }
    if (help) {
        process.stdout.write(USAGE + "\n");
        return 0;
    }
    const findings = checkPrerequisites();
    const missing = findings.filter((f): f is Extract<Finding, { ok: false }> => !f.ok);
    if (missing.length) {
        for (const m of missing) process.stderr.write(`prerequisites: ${m.line}\n`);
        process.stderr.write(`prerequisites: ${missing.length} of ${findings.length} missing; .ci/setup.d/ installs them all on Debian\n`);
        return 1;
    }
    process.stdout.write(`prerequisites: ${findings.map((f) => (f.ok ? `${f.name} ${f.version}` : f.name)).join(", ")}\n`);
    return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
