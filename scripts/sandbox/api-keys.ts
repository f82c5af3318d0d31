/**
 * Sandbox stand-in for `DeviceApiKeys`: one key per device with `apiKey: true`, kept in the state
 * dir (`devices/<name>.apikey`, mode 0600) and reused on the next run, like the device certs.
 */
import { randomInt } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StackConfig } from "../../components/config";
import { API_KEY_LENGTH, API_KEY_PATTERN } from "../../components/identity/api-keys";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A key shaped like the program's RandomPassword keys (uniform over the alphabet). */
export function newApiKey(): string {
    return Array.from({ length: API_KEY_LENGTH }, () => ALPHABET[randomInt(ALPHABET.length)]).join("");
}

/** Device name -> API key for every apiKey device; existing keys in the state dir are kept. */
export function ensureSandboxApiKeys(stateDir: string, cfg: StackConfig): Record<string, string> {
    const dir = join(stateDir, "devices");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const keys: Record<string, string> = {};
    for (const d of cfg.devices.filter((x) => x.apiKey)) {
        const file = join(dir, `${d.name}.apikey`);
        const existing = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
        keys[d.name] = API_KEY_PATTERN.test(existing) ? existing : newApiKey();
        if (keys[d.name] !== existing) writeFileSync(file, keys[d.name] + "\n", { mode: 0o600 });
    }
    return keys;
}
