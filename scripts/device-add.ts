/**
 * `npm run device:add -- --stack <Pulumi.<stack>.yaml> --name <n> --owner <email> [--groups a,b]
 * [--tailscale-id <id>] [--api-key]`: enrol a device by appending it to the stack file's
 * `devices` list. The file is edited in place (comments and layout kept) and only when the
 * result passes the program's config validation.
 */
import { fromUserCwd } from "./lib/cli";
import { UsageError, addDevice, applyCommands, editStackFile, parseFlags, runCli, stackNameOf } from "./lib/device-edit";

const USAGE = `usage: npm run device:add -- --stack <Pulumi.<stack>.yaml> --name <device> --owner <email> [--groups a,b] [--tailscale-id <node id>] [--api-key]

  --stack         the stack file to edit in place
  --name          device name, ^[a-z0-9][a-z0-9-]{0,62}$, unique in the stack
  --owner         the owner's email address
  --groups        comma-separated groups (used when identity.provider is none)
  --tailscale-id  the device's Tailscale node id (required when tailscale.enabled is true)
  --api-key       also issue a per-device API key

Exit codes: 0 enrolled, 1 refused (the file is unchanged), 2 usage error.`;

runCli(USAGE, () => {
    const flags = parseFlags(process.argv.slice(2), {
        stack: { type: "string" },
        name: { type: "string" },
        owner: { type: "string" },
        groups: { type: "string" },
        "tailscale-id": { type: "string" },
        "api-key": { type: "boolean" },
        help: { type: "boolean" },
    });
    if (flags.help) {
        process.stdout.write(USAGE + "\n");
        return;
    }
    const missing = (["stack", "name", "owner"] as const).filter((k) => !flags[k]);
    if (missing.length) throw new UsageError(`missing ${missing.map((k) => "--" + k).join(", ")}`);
    const groups = flags.groups === undefined ? undefined : flags.groups.split(",").map((g) => g.trim()).filter(Boolean);
    const device = { name: flags.name!, owner: flags.owner!, groups, tailscaleDeviceId: flags["tailscale-id"], apiKey: flags["api-key"] };
    const file = fromUserCwd(flags.stack!);
    editStackFile(file, (text) => addDevice(text, flags.stack!, device));
    const apply = applyCommands(flags.stack!, file);
    const out = `--name ${device.name} --out ./${device.name}-bundle`;
    const lines = [`enrolled "${device.name}" (owner ${device.owner}) in ${flags.stack}`, `next: ${apply.deploy}   (issues the device certificate and adds it to the gateway allowlist)`];
    if (apply.sandbox) lines.push(`  or: ${apply.sandbox}`);
    lines.push(`then: npm run device:bundle -- --stack-name ${stackNameOf(file)} ${out}`);
    if (apply.sandbox) lines.push(`  or: npm run device:bundle -- --sandbox <its state dir>/sandbox.json ${out}`);
    process.stdout.write(lines.join("\n") + "\n");
});
