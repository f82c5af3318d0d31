/**
 * `npm run device:revoke -- --stack <Pulumi.<stack>.yaml> --name <n>`: remove a device from the
 * stack file's `devices` list. The next `pulumi up` deletes its certificate, its gateway
 * allowlist entry and its Tailscale tags; for a device with a node id it prints the
 * `tailscale.revokedDevices` entry that also withdraws its approval at the tailnet.
 */
import { fromUserCwd } from "./lib/cli";
import { UsageError, applyCommands, editStackFile, parseFlags, revokeDevice, revokedDeviceHint, runCli } from "./lib/device-edit";

const USAGE = `usage: npm run device:revoke -- --stack <Pulumi.<stack>.yaml> --name <device>

  --stack  the stack file to edit in place
  --name   the enrolled device to remove

Exit codes: 0 removed, 1 refused (the file is unchanged), 2 usage error.`;

runCli(USAGE, () => {
    const flags = parseFlags(process.argv.slice(2), { stack: { type: "string" }, name: { type: "string" }, help: { type: "boolean" } });
    if (flags.help) {
        process.stdout.write(USAGE + "\n");
        return;
    }
    const missing = (["stack", "name"] as const).filter((k) => !flags[k]);
    if (missing.length) throw new UsageError(`missing ${missing.map((k) => "--" + k).join(", ")}`);
    const file = fromUserCwd(flags.stack!);
    let tailnetHint: string | undefined;
    editStackFile(file, (text) => {
        tailnetHint = revokedDeviceHint(text, flags.name!);
        return revokeDevice(text, flags.stack!, flags.name!);
    });
    const apply = applyCommands(flags.stack!, file);
    const lines = [`removed "${flags.name}" from ${flags.stack}`, `next: ${apply.deploy}   (the device is refused at the gateway only after this runs)`];
    if (apply.sandbox) lines.push(`  or: ${apply.sandbox}`);
    if (tailnetHint) lines.push(tailnetHint);
    process.stdout.write(lines.join("\n") + "\n");
});
