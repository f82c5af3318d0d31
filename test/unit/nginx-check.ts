/** `nginx -t` for renderer tests: checks rendered config text with the real binary. */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Runs `nginx -t` on `conf` inside `dir`; returns nginx's complaint, or "" when the config is valid. */
export function nginxSyntaxProblems(conf: string, dir: string): string {
    const file = join(dir, `t-${Math.random().toString(36).slice(2)}.conf`);
    mkdirSync(join(dir, "run"), { recursive: true });
    writeFileSync(file, conf);
    try {
        execFileSync("nginx", ["-t", "-q", "-c", file, "-p", join(dir, "run") + "/", "-e", join(dir, "error.log")], { stdio: ["ignore", "pipe", "pipe"] });
        return "";
    } catch (e) {
        return String((e as { stderr?: Buffer }).stderr ?? e);
    }
}
