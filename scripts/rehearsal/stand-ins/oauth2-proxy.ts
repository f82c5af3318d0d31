/**
 * Entry of the oauth2-proxy stand-in image: the sandbox's stub oauth2-proxy, configured from the
 * real oauth2-proxy command line the program renders (--http-address, --email-domain,
 * --allowed-group, --authenticated-emails-file, --cookie-expire) and from ZTO_STUB_USERS (the
 * rehearsal's test users: JSON [{email, groups, sessionToken, bearerToken}]). Requests are logged
 * as JSON lines on stdout.
 */
import { readFileSync } from "node:fs";
import { startStubOauth2Proxy, type SandboxUser } from "../../sandbox/stub-oauth2-proxy";

const flags = (name: string) => process.argv.slice(2).filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
const [host, port] = (flags("http-address")[0] ?? "0.0.0.0:4180").split(":");
const emailsFile = flags("authenticated-emails-file")[0];
const domains = flags("email-domain").filter((d) => d !== "*");
const users = JSON.parse(process.env.ZTO_STUB_USERS ?? "[]") as SandboxUser[];
startStubOauth2Proxy({
    users,
    identity: {
        allowedEmailDomains: domains,
        allowedEmails: emailsFile ? readFileSync(emailsFile, "utf8").split("\n").filter(Boolean) : [],
        allowedGroups: flags("allowed-group"),
        cookieExpireHours: Number((flags("cookie-expire")[0] ?? "8h").replace(/h$/, "")) || 8,
    },
    logFile: "/dev/stdout",
    host,
    port: Number(port),
}).catch((e) => {
    process.stderr.write(`stub oauth2-proxy: ${(e as Error).message}\n`);
    process.exit(1);
});
