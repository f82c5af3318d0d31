/**
 * Headless Debian Chromium for the sign-in tests, driven by playwright-core (which never downloads
 * a browser). The device certificate goes into the browser's own NSS store ($HOME/.pki/nssdb of a
 * throwaway HOME, with the sandbox CA as trust anchor) and is picked for the gateway's origin by the
 * AutoSelectCertificateForUrls policy, exactly how a managed fleet hands a device cert to Chrome.
 */
import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { chromium, type BrowserContext } from "playwright-core";
import { tempDir } from "./harness";

export const CHROMIUM = "/usr/bin/chromium";
/** Debian's Chromium reads managed policies from here; one file per test run, removed afterwards. */
const POLICY_DIR = "/etc/chromium/policies/managed";

/** The launch flags the project allows: no network chatter besides the pages the test opens. */
export const CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
] as const;

export interface BrowserOptions {
    /** The gateway's origin (https://<domain>:<port>): the only URL the device certificate is auto-selected for. */
    readonly gatewayOrigin: string;
    /** The stack's domain, resolved to 127.0.0.1 inside the browser. */
    readonly domain: string;
    readonly ca: string;
    readonly device: { readonly cert: string; readonly key: string };
}

export interface RunningBrowser {
    readonly context: BrowserContext;
    close(): Promise<void>;
}

function run(command: string, args: readonly string[]): void {
    execFileSync(command, args, { stdio: ["ignore", "pipe", "pipe"] });
}

/** A fresh NSS database with the sandbox CA trusted for TLS servers and the device's key and certificate. */
function prepareNssDb(home: string, opts: BrowserOptions): void {
    const db = join(home, ".pki", "nssdb");
    mkdirSync(db, { recursive: true, mode: 0o700 });
    run("certutil", ["-N", "-d", `sql:${db}`, "--empty-password"]);
    run("certutil", ["-A", "-d", `sql:${db}`, "-n", "zero-trust-ollama sandbox CA", "-t", "C,,", "-i", opts.ca]);
    const p12 = join(home, "device.p12");
    const pass = randomBytes(12).toString("hex");
    run("openssl", ["pkcs12", "-export", "-in", opts.device.cert, "-inkey", opts.device.key, "-certfile", opts.ca, "-name", "sandbox device", "-passout", `pass:${pass}`, "-out", p12]);
    run("pk12util", ["-d", `sql:${db}`, "-i", p12, "-W", pass]);
    rmSync(p12);
}

/** Start Chromium with the device certificate selected for the gateway. Always close() it. */
export async function launchBrowser(opts: BrowserOptions): Promise<RunningBrowser> {
    const home = tempDir("zto-chromium-home-");
    const userDataDir = tempDir("zto-chromium-profile-");
    prepareNssDb(home, opts);
    mkdirSync(POLICY_DIR, { recursive: true });
    const policy = join(POLICY_DIR, `zero-trust-ollama-test-${process.pid}-${randomBytes(4).toString("hex")}.json`);
    writeFileSync(policy, JSON.stringify({ AutoSelectCertificateForUrls: [JSON.stringify({ pattern: opts.gatewayOrigin, filter: {} })] }));
    try {
        const context = await chromium.launchPersistentContext(userDataDir, {
            executablePath: CHROMIUM,
            headless: true,
            args: [...CHROMIUM_FLAGS, `--host-resolver-rules=MAP ${opts.domain} 127.0.0.1`],
            env: { ...process.env, HOME: home },
            timeout: 60_000,
        });
        return {
            context,
            close: async () => {
                await context.close();
                rmSync(policy, { force: true });
            },
        };
    } catch (e) {
        rmSync(policy, { force: true });
        throw e;
    }
}

/** What is missing to run the browser test, or undefined. */
export function browserPrerequisiteMissing(): string | undefined {
    if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install chromium)`;
    for (const tool of ["certutil", "pk12util"]) {
        try {
            execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
        } catch {
            return `${tool} is missing (apt-get install libnss3-tools)`;
        }
    }
    // Chromium takes managed policy only from this system folder: writing it needs root (CI runs as root).
    let dir = POLICY_DIR;
    while (!existsSync(dir)) dir = dirname(dir);
    try {
        accessSync(dir, constants.W_OK);
    } catch {
        return `${POLICY_DIR} is not writable (the AutoSelectCertificateForUrls policy goes there; run as root)`;
    }
    return undefined;
}
