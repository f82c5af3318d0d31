/**
 * `npm run device:bundle -- --name <device> --out <dir> [--from <outputs.json> | --stack-name <stack> | --sandbox <sandbox.json>]`:
 * write everything a device needs to reach the gateway into a private directory: PEM
 * certificate and key, the CA certificate, a PKCS#12 file for browsers (its passphrase is
 * printed once and never stored), and ready-to-run curl and OpenAI-SDK examples.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BundleError, bundleFileNames, bundleInputsFrom, checkBundle, curlExample, gatewayTarget, pkcs12ExportArgs, pythonExample, stackOutputsFromSandbox } from "./lib/device-bundle";
import { NAME_PATTERN } from "../components/config";
import { fromUserCwd } from "./lib/cli";
import { UsageError, parseFlags, runCli, stackNameOf } from "./lib/device-edit";

const USAGE = `usage: npm run device:bundle -- --name <device> --out <dir> [--from <outputs.json> | --stack-name <stack> | --sandbox <sandbox.json>]

  --name        the enrolled device
  --out         directory to write the bundle to (created with mode 0700; an existing one must not
                be readable by other users)
  --from        a saved copy of \`pulumi stack output --json --show-secrets\`
  --stack-name  the Pulumi stack to read with the pulumi CLI, e.g. dev (default: the selected stack)
  --sandbox     the sandbox.json of a local \`npm run sandbox\` instead of a deployed stack

Exit codes: 0 written, 1 refused (nothing usable was written), 2 usage error.`;

const PASS_ENV = "ZTO_PKCS12_PASSPHRASE";

function readOutputs(from: string | undefined, stack: string | undefined, sandbox: string | undefined): { json: string; source: string } {
    if (sandbox !== undefined) {
        let state: string;
        try {
            state = readFileSync(sandbox, "utf8");
        } catch (e) {
            throw new BundleError(`${sandbox}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
        return { json: stackOutputsFromSandbox(state, sandbox, (p) => readFileSync(p, "utf8")), source: sandbox };
    }
    if (from !== undefined) {
        try {
            return { json: readFileSync(from, "utf8"), source: from };
        } catch (e) {
            throw new BundleError(`${from}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
    }
    const args = ["stack", "output", "--json", "--show-secrets", ...(stack ? ["--stack", stack] : [])];
    try {
        const json = execFileSync("pulumi", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
        return { json, source: `pulumi ${args.join(" ")}` };
    } catch (e) {
        const err = e as NodeJS.ErrnoException & { stderr?: string };
        if (err.code === "ENOENT") {
            throw new BundleError("the pulumi CLI is not installed or not on PATH; install it, or save the outputs elsewhere with `pulumi stack output --json --show-secrets > outputs.json` and pass --from outputs.json");
        }
        const detail = (err.stderr ?? "").trim().split("\n").slice(0, 3).join(" ") || err.message;
        throw new BundleError(`\`pulumi ${args.join(" ")}\` failed: ${detail}`);
    }
}

/** The bundle directory: new ones are created 0700; an existing one must already be private. */
function prepareOutDir(dir: string): void {
    if (!existsSync(dir)) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        chmodSync(dir, 0o700);
        return;
    }
    const st = statSync(dir);
    if (!st.isDirectory()) throw new BundleError(`--out ${dir} exists and is not a directory`);
    if (process.getuid && st.uid !== process.getuid()) throw new BundleError(`--out ${dir} belongs to another user (uid ${st.uid}); use a directory of your own`);
    if (st.mode & 0o077) {
        throw new BundleError(`--out ${dir} is accessible to other users (mode ${(st.mode & 0o777).toString(8)}); use a new directory or \`chmod 700 ${dir}\``);
    }
}

/** Write a file with exactly `mode`, replacing any previous copy (mode applies only on create). */
function writeWithMode(path: string, content: string, mode: number): void {
    if (existsSync(path)) unlinkSync(path);
    writeFileSync(path, content, { mode, flag: "wx" });
    chmodSync(path, mode);
}

runCli(USAGE, () => {
    const flags = parseFlags(process.argv.slice(2), {
        name: { type: "string" },
        out: { type: "string" },
        from: { type: "string" },
        stack: { type: "string" },
        "stack-name": { type: "string" },
        sandbox: { type: "string" },
        help: { type: "boolean" },
    });
    if (flags.help) {
        process.stdout.write(USAGE + "\n");
        return;
    }
    // --stack is a stack file in every other command; a stack name has its own flag.
    if (flags.stack !== undefined) throw new UsageError(`--stack takes a stack file in the other commands; here give the Pulumi stack's name: --stack-name ${stackNameOf(flags.stack)}`);
    const missing = (["name", "out"] as const).filter((k) => !flags[k]);
    if (missing.length) throw new UsageError(`missing ${missing.map((k) => "--" + k).join(", ")}`);
    const sources = (["from", "stack-name", "sandbox"] as const).filter((k) => flags[k] !== undefined);
    if (sources.length > 1) throw new UsageError(`give only one of ${sources.map((k) => "--" + k).join(", ")}`);
    const device = flags.name!;
    // The name becomes file names in --out: only the config's device-name syntax is accepted.
    if (!NAME_PATTERN.test(device)) throw new UsageError(`--name must be a device name matching ${NAME_PATTERN.source} (got ${JSON.stringify(device)})`);
    const out = fromUserCwd(flags.out!);

    // Everything is checked before the first byte is written.
    const userPath = (p: string | undefined) => (p === undefined ? undefined : fromUserCwd(p));
    const { json, source } = readOutputs(userPath(flags.from), flags["stack-name"], userPath(flags.sandbox));
    const inputs = bundleInputsFrom(json, source, device);
    const { notAfter } = checkBundle(inputs, device);
    const target = gatewayTarget(inputs.gatewayUrl);

    prepareOutDir(out);
    const f = bundleFileNames(device);
    const path = (name: string) => join(out, name);
    writeWithMode(path(f.key), inputs.keyPem, 0o600);
    writeWithMode(path(f.cert), inputs.certPem, 0o644);
    writeWithMode(path(f.ca), inputs.caCertPem, 0o644);
    if (inputs.apiKey) writeWithMode(path(f.apiKey), inputs.apiKey + "\n", 0o600);
    writeWithMode(path(f.curl), curlExample(device, inputs), 0o755);
    writeWithMode(path(f.python), pythonExample(device, inputs), 0o644);

    // The passphrase reaches openssl through its environment, never argv or a file.
    const passphrase = randomBytes(18).toString("base64url");
    if (existsSync(path(f.pkcs12))) unlinkSync(path(f.pkcs12));
    try {
        execFileSync("openssl", pkcs12ExportArgs({ cert: path(f.cert), key: path(f.key), ca: path(f.ca), out: path(f.pkcs12) }, `${device} (zero-trust-ollama)`, PASS_ENV), {
            env: { ...process.env, [PASS_ENV]: passphrase },
            stdio: ["ignore", "ignore", "pipe"],
        });
    } catch (e) {
        const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
        const why = err.code === "ENOENT" ? "openssl is not installed or not on PATH" : (err.stderr?.toString().trim().split("\n")[0] ?? err.message);
        throw new BundleError(`PKCS#12 export failed (${why}); the PEM files in ${out} are usable on their own`);
    }
    chmodSync(path(f.pkcs12), 0o600);

    const lines = [
        `bundle for "${device}" written to ${out} (certificate valid until ${notAfter.toISOString()})`,
        `  ${f.cert}, ${f.key} (0600), ${f.ca}${inputs.apiKey ? `, ${f.apiKey} (0600)` : ""}`,
        `  ${f.pkcs12} (0600) for browsers and key stores; its passphrase, shown only now and stored nowhere:`,
        "",
        `    ${passphrase}`,
        "",
        `  ${f.curl}: GET ${inputs.gatewayUrl.replace(/\/+$/, "")}/api/version with this certificate`,
        `  ${f.python}: the OpenAI SDK (pip install openai httpx)`,
    ];
    if (target.isName) lines.push(`  if ${target.host} does not resolve on this machine (loopback gateway), add to curl: --resolve ${target.host}:${target.port}:127.0.0.1`);
    lines.push("Hand the files over on an encrypted channel; delete the directory once the device has imported them.");
    process.stdout.write(lines.join("\n") + "\n");
});
