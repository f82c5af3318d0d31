/**
 * `npm run device:revoke -- --stack <Pulumi.<stack>.yaml> --name <n>`: remove a device from the
 * stack file's `devices` list. The next `pulumi up` deletes its certificate, its gateway
 * allowlist entry and its Tailscale tags.
 */
import { UsageError, editStackFile, fromUserCwd, parseFlags, revokeDevice, runCli, stackNameOf } from "./lib/device-edit";

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
    editStackFile(fromUserCwd(flags.stack!), (text) => revokeDevice(text, flags.stack!, flags.name!));
    process.stdout.write(
        `removed "${flags.name}" from ${flags.stack}\n` +
            `next: pulumi up --stack ${stackNameOf(flags.stack!)}   (the device is refused at the gateway only after this runs)\n`,
    );
});
