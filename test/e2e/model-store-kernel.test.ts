/**
 * The model-store probe and decision against the real kernel: a loop-mounted ext4 image with the
 * encrypt feature (fscrypt), a gocryptfs FUSE mount, plain directories, a missing path and a
 * symlink out of the encrypted area; then fscrypt provisioning end to end, with the backing
 * image read to show the bytes are ciphertext. Needs root, losetup/mount, mkfs.ext4, gocryptfs
 * and /dev/fuse: a missing one fails the suite with its install hint, never skips it.
 * Everything it mounts lives in one uniquely named temp directory (zto-model-store-*); `after`
 * unmounts it and detaches its own loop device, also when a test or `before` failed half-way
 * (.ci/setup.d/40-encrypted-store.sh sweeps up after a killed run). Every command is time-bounded.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { decideModelStore, formatVerdict, parseProbeOutput, type ModelStoreVerdict } from "../../components/model-store/decide";
import { VOLUME_FIX } from "../../components/model-store/volume";

const PROBE = path.join(__dirname, "../../components/model-store/probe.py");
// Bounds, not performance targets: set-up runs a dozen commands (mkfs, two scrypt KDFs) on a loaded CI machine.
const TIMEOUT = { timeout: 180_000 };

function run(cmd: string, args: string[], input?: string): string {
    return execFileSync(cmd, args, { encoding: "utf8", timeout: 60_000, input, stdio: ["pipe", "pipe", "pipe"] });
}

/** What is missing on this machine for the suite, or undefined when everything is there. */
function missingPrerequisite(): string | undefined {
    if (process.getuid?.() !== 0) return "not root (loop mounts and fscrypt keys need root)";
    for (const bin of ["python3", "mkfs.ext4", "mount", "umount", "losetup", "findmnt", "gocryptfs", "lsattr", "fusermount3"]) {
        try {
            execFileSync("sh", ["-c", `command -v ${bin}`], { stdio: "ignore" });
        } catch {
            return `${bin} is not installed (.ci/setup.d/40-encrypted-store.sh installs it)`;
        }
    }
    if (!existsSync("/dev/fuse")) return "/dev/fuse is missing";
    if (!existsSync("/dev/loop-control")) return "/dev/loop-control is missing (no loop device support)";
    if (!existsSync("/sys/fs/ext4/features/encryption")) return "the kernel's ext4 has no encryption support (CONFIG_FS_ENCRYPTION)";
    return undefined;
}

const missing = missingPrerequisite();

function verdictOf(dir: string): ModelStoreVerdict {
    return decideModelStore(dir, parseProbeOutput(run("python3", [PROBE, "inspect", dir])));
}

function provision(dir: string, keyHex: string): { provisioned: boolean; result?: string; error?: string } {
    try {
        return JSON.parse(run("python3", [PROBE, "provision-fscrypt", dir], keyHex + "\n"));
    } catch (e) {
        return JSON.parse((e as { stdout: string }).stdout);
    }
}

describe("model store on the real kernel", () => {
    let work = "";
    let image = "";
    let mnt = "";
    let loopDevice = "";
    let gocryptfsPlain = "";
    const key = randomBytes(64).toString("hex");
    const mounted: string[] = [];

    // The loop device is attached once, by this suite, and detached in `after` whatever happened.
    const mountImage = () => {
        run("mount", ["-t", "ext4", loopDevice, mnt]);
        mounted.push(mnt);
    };
    const unmount = (dir: string) => {
        run("umount", [dir]);
        mounted.splice(mounted.indexOf(dir), 1);
    };

    before(() => {
        assert.equal(missing, undefined, `the real-kernel model-store tests cannot run: ${missing}`);
        work = mkdtempSync(path.join(tmpdir(), "zto-model-store-"));
        image = path.join(work, "ext4.img");
        mnt = path.join(work, "mnt");
        mkdirSync(mnt);
        run("truncate", ["-s", "32M", image]);
        run("mkfs.ext4", ["-q", "-F", "-O", "encrypt", image]);
        loopDevice = run("losetup", ["--find", "--show", image]).trim();
        assert.match(loopDevice, /^\/dev\/loop\d+$/);
        mountImage();
        mkdirSync(path.join(mnt, "plain"));
        assert.equal(provision(path.join(mnt, "models"), key).result, "created");

        const cipher = path.join(work, "gocryptfs-cipher");
        gocryptfsPlain = path.join(work, "gocryptfs-plain");
        mkdirSync(cipher);
        mkdirSync(gocryptfsPlain);
        writeFileSync(path.join(work, "gocryptfs-pass"), randomBytes(24).toString("hex") + "\n");
        // A cheap KDF (scrypt N=2^10): the test is about the mount, not about the passphrase's strength.
        run("gocryptfs", ["-q", "-init", "-scryptn", "10", "-passfile", path.join(work, "gocryptfs-pass"), cipher]);
        mounted.push(gocryptfsPlain);
        // gocryptfs forks a daemon that would hold captured pipes open: give it no stdio.
        execFileSync("gocryptfs", ["-q", "-nosyslog", "-passfile", path.join(work, "gocryptfs-pass"), cipher, gocryptfsPlain], { stdio: "ignore", timeout: 60_000 });
    }, TIMEOUT);

    after(() => {
        if (!work) return; // before() refused a machine without the prerequisites: nothing was made
        const problems: string[] = [];
        const attempt = (cmd: string, args: string[]) => {
            try {
                run(cmd, args);
                return true;
            } catch (e) {
                problems.push(`${cmd} ${args.join(" ")}: ${(e as Error).message.split("\n")[0]}`);
                return false;
            }
        };
        for (const dir of [...mounted].reverse()) {
            if (!attempt("umount", [dir])) attempt("umount", ["-l", dir]);
        }
        if (loopDevice) attempt("losetup", ["-d", loopDevice]);
        // Only remove the directory once nothing is mounted in it: rm must never walk into a mount.
        const left = run("findmnt", ["-rn", "-o", "TARGET"]).split("\n").filter((t) => work && t.startsWith(work));
        if (work && !left.length) rmSync(work, { recursive: true, force: true });
        assert.deepEqual({ left, problems: problems.filter(() => left.length > 0) }, { left: [], problems: [] }, "everything the suite mounted is gone");
    }, TIMEOUT);

    test("an fscrypt-protected directory on the loop image, key present: passes", () => {
        const dir = path.join(mnt, "models");
        assert.match(run("lsattr", ["-d", dir]), /^\S*E\S* /, "e2fsprogs' lsattr shows the Encrypted flag too");
        const v = verdictOf(dir);
        assert.equal(v.encrypted && v.kind, "fscrypt", formatVerdict(dir, v));
        assert.match(formatVerdict(dir, v), /fscrypt v2 policy, key [0-9a-f]{32} present/);
    });

    test("the same image's unprotected directory: refused, naming the filesystem and loop device", () => {
        const dir = path.join(mnt, "plain");
        const v = verdictOf(dir);
        assert.equal(!v.encrypted && v.found, `ext4 on ${loopDevice}, not encrypted`);
    });

    test("a gocryptfs mount: passes", () => {
        const v = verdictOf(gocryptfsPlain);
        assert.equal(v.encrypted && v.kind, "gocryptfs", formatVerdict(gocryptfsPlain, v));
    });

    test("a plain directory on the host's own disk: refused", () => {
        const dir = path.join(work, "host-plain");
        mkdirSync(dir);
        const v = verdictOf(dir);
        assert.equal(v.encrypted, false);
        assert.match(!v.encrypted ? v.found : "", /, not encrypted$/);
    });

    test("a path that does not exist: refused with a clear message", () => {
        const dir = path.join(work, "no-such-dir");
        const v = verdictOf(dir);
        assert.equal(!v.encrypted && v.found, `${dir} does not exist`);
        assert.match(formatVerdict(dir, v), /Fix: create it on the encrypted volume/);
    });

    test("a symlink inside the encrypted area pointing out of it: refused", () => {
        const link = path.join(mnt, "models", "escape");
        symlinkSync(path.join(mnt, "plain"), link);
        const v = verdictOf(link);
        assert.equal(!v.encrypted && v.found, `ext4 on ${loopDevice}, not encrypted (${link} is a symlink to ${path.join(mnt, "plain")})`);
    });

    test("fscrypt provisioning end to end: write through it, ciphertext on the backing image, re-run is a no-op, locked after remount", () => {
        const dir = path.join(mnt, "provisioned");
        const marker = `zto-plaintext-marker-${randomBytes(8).toString("hex")}`;
        assert.deepEqual(provision(dir, key), { provisioned: true, result: "created" });
        assert.equal(verdictOf(dir).encrypted, true);
        writeFileSync(path.join(dir, "model.bin"), marker.repeat(64));
        writeFileSync(path.join(mnt, "plain", "control.bin"), marker.repeat(64));
        assert.equal(readFileSync(path.join(dir, "model.bin"), "utf8"), marker.repeat(64), "readable through the unlocked directory");
        assert.deepEqual(provision(dir, key), { provisioned: true, result: "unchanged" }, "a re-run with the same key changes nothing");
        const other = provision(dir, randomBytes(64).toString("hex"));
        assert.equal(other.provisioned, false);
        assert.match(other.error ?? "", /already encrypted with another key/);

        unmount(mnt);
        const raw = readFileSync(image);
        // The control copy in the unprotected directory proves the scan finds plaintext when it is there.
        const hits = raw.toString("latin1").split(marker).length - 1;
        assert.equal(hits, 64, "only the 64 copies written to the unprotected directory are plaintext on the image");
        assert.equal(raw.includes(Buffer.from("model.bin")), false, "the file name is encrypted too");

        mountImage();
        const locked = verdictOf(dir);
        assert.match(!locked.encrypted ? locked.found : "", /fscrypt-encrypted but locked \(key [0-9a-f]{32} absent\)/);
        assert.deepEqual(provision(dir, key), { provisioned: true, result: "unlocked" }, "the same key unlocks it after a remount");
        assert.equal(readFileSync(path.join(dir, "model.bin"), "utf8"), marker.repeat(64));
    });

    test("provisioning where the filesystem has no fscrypt (tmpfs): a clear refusal, and no directory left behind", () => {
        const noFscrypt = path.join(work, "tmpfs");
        mkdirSync(noFscrypt);
        run("mount", ["-t", "tmpfs", "-o", "size=4m", "zto-model-store-tmpfs", noFscrypt]);
        mounted.push(noFscrypt);
        const dir = path.join(noFscrypt, "models");
        const r = provision(dir, key);
        assert.equal(r.provisioned, false);
        assert.match(r.error ?? "", new RegExp(`the filesystem holding ${dir} has no fscrypt support .*use LUKS, or mount gocryptfs there on the host`));
        assert.equal(existsSync(dir), false, "nothing half-created");
        const v = verdictOf(noFscrypt);
        assert.equal(!v.encrypted && v.found, "tmpfs on zto-model-store-tmpfs, not encrypted");
    });

    test("a Docker volume's directory on a plain filesystem: refused, naming the volume and the data-root fix", () => {
        const dir = path.join(mnt, "plain");
        const subject = "Docker volume zto-ci-gateway-config (the gateway's config and TLS key)";
        const v = decideModelStore(subject, parseProbeOutput(run("python3", [PROBE, "inspect", dir])), VOLUME_FIX);
        assert.match(formatVerdict(subject, v), new RegExp(`^Docker volume zto-ci-gateway-config \\(the gateway's config and TLS key\\) is not encrypted at rest: ext4 on ${loopDevice}, not encrypted\\. Fix: Docker keeps named volumes under its data root`));
    });

    test("provisioning refuses a non-empty plain directory and a bad key", () => {
        const dir = path.join(mnt, "plain");
        assert.match(provision(dir, key).error ?? "", /not empty and not encrypted/);
        assert.match(provision(path.join(mnt, "short"), "abcd").error ?? "", /must be 64 bytes/);
    });
});
