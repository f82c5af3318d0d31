import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import {
    cryptBelow,
    decideModelStore,
    deviceOf,
    mountOf,
    parseLsblkJson,
    parseMountInfo,
    parseProbeOutput,
    type BlockDevice,
    type ProbeFacts,
} from "../../components/model-store/decide";
import { verifiedPathOf } from "../../components/model-store";

const FIXTURES = path.join(__dirname, "../fixtures/model-store");
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), "utf8");

/** Facts as the probe would report them on a recorded host for a directory `dir`. */
function hostFacts(host: string, dir: string, extra: Partial<ProbeFacts> = {}): ProbeFacts {
    return {
        path: dir,
        exists: true,
        resolved: dir,
        isDirectory: true,
        mountinfo: fixture(`${host}.mountinfo`),
        blockDevices: parseLsblkJson(fixture(`${host}.lsblk.json`)),
        fscrypt: { policy: null, keyStatus: null },
        ...extra,
    };
}

describe("mountinfo and lsblk parsing", () => {
    test("parses fields, optional tags and octal escapes", () => {
        const [m] = parseMountInfo("61 26 253:0 /a\\040b /srv/my\\040models rw,noatime shared:40 master:2 - xfs /dev/mapper/models_crypt rw\n");
        assert.deepEqual(m, { mountId: 61, majMin: "253:0", root: "/a b", mountPoint: "/srv/my models", fsType: "xfs", source: "/dev/mapper/models_crypt" });
    });
    test("a line that is not mountinfo is an error, never skipped", () => {
        assert.throws(() => parseMountInfo("/dev/sda1 / ext4 rw 0 0\n"), /mountinfo line 1 is not in the proc\(5\) format/);
    });
    test("lsblk tree: a RAID member device gets both parents, crypt type is kept", () => {
        const devices = parseLsblkJson(fixture("luks-raid.lsblk.json"));
        assert.deepEqual(devices.find((d) => d.kname === "md0")?.slaves, ["sdb", "sdc"]);
        assert.deepEqual(devices.find((d) => d.kname === "dm-0"), { kname: "dm-0", majMin: "253:0", type: "crypt", dmName: "models_crypt", slaves: ["md0"] });
    });
    test("lsblk JSON without blockdevices is an error", () => {
        assert.throws(() => parseLsblkJson("{}"), /no blockdevices/);
    });
    test("the longest mount point wins; an over-mount (later line) wins over an earlier one", () => {
        const mounts = parseMountInfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:2 / /srv rw - ext4 /dev/sda2 rw\n3 1 0:40 / /srv rw - tmpfs tmpfs rw\n");
        assert.equal(mountOf("/srv/ollama", mounts)?.source, "tmpfs");
        assert.equal(mountOf("/srvx", mounts)?.source, "/dev/sda1");
    });
    test("the device is found by major:minor, else by /dev/mapper name", () => {
        const devices: BlockDevice[] = [{ kname: "dm-4", majMin: "253:4", dmName: "data", dmUuid: "CRYPT-LUKS2-aa-data", slaves: [] }];
        const [btrfs] = parseMountInfo("40 1 0:52 /@models /srv/models rw - btrfs /dev/mapper/data rw,subvol=/@models\n");
        assert.equal(deviceOf(btrfs, devices)?.kname, "dm-4");
        assert.equal(cryptBelow(devices[0], devices)?.kname, "dm-4");
    });
});

describe("decideModelStore on recorded hosts", () => {
    test("LUKS2 under LVM (Debian encrypted LVM): encrypted, through the stack", () => {
        const v = decideModelStore("/srv/encrypted/ollama", hostFacts("luks-lvm", "/srv/encrypted/ollama"));
        assert.deepEqual(v, { encrypted: true, kind: "dm-crypt", detail: "ext4 on /dev/mapper/vg0-models, stacked on a dm-crypt device /dev/mapper/nvme0n1p3_crypt" });
    });
    test("the same host's /boot is a plain partition: refused, naming the filesystem and device", () => {
        const v = decideModelStore("/boot/models", hostFacts("luks-lvm", "/boot/models"));
        assert.equal(v.encrypted, false);
        assert.equal(!v.encrypted && v.found, "ext4 on /dev/nvme0n1p2, not encrypted");
    });
    test("xfs on LUKS on md RAID1: encrypted", () => {
        const v = decideModelStore("/srv/encrypted/ollama/models", hostFacts("luks-raid", "/srv/encrypted/ollama/models"));
        assert.equal(v.encrypted && v.kind, "dm-crypt");
        assert.match(v.encrypted ? v.detail : "", /^xfs on \/dev\/mapper\/models_crypt, a dm-crypt device/);
    });
    test("a sysfs-recorded LUKS2 device (dm/uuid CRYPT-LUKS2-...) names its LUKS version", () => {
        const facts: ProbeFacts = {
            ...hostFacts("luks-raid", "/srv/encrypted/ollama"),
            blockDevices: [{ kname: "dm-0", majMin: "253:0", dmName: "models_crypt", dmUuid: "CRYPT-LUKS2-0f3b6a1e2d4c4b8a9e7f6d5c4b3a2918-models_crypt", slaves: ["md0"] }],
        };
        const v = decideModelStore("/srv/encrypted/ollama", facts);
        assert.match(v.encrypted ? v.detail : "", /a LUKS2 dm-crypt device \/dev\/mapper\/models_crypt/);
    });
    test("no encryption anywhere: the root disk is refused with the fix", () => {
        const v = decideModelStore("/srv/encrypted/ollama", hostFacts("plain-nvme", "/srv/encrypted/ollama"));
        assert.equal(v.encrypted, false);
        assert.equal(!v.encrypted && v.found, "ext4 on /dev/nvme0n1p2, not encrypted");
        assert.match(!v.encrypted ? v.fix : "", /LUKS.*ollama\.modelStore: \{ provision: fscrypt \}.*ollama\.allowUnencryptedModels: true/);
    });
    test("tmpfs is refused", () => {
        const v = decideModelStore("/srv/scratch", hostFacts("plain-nvme", "/srv/scratch"));
        assert.equal(!v.encrypted && v.found, "tmpfs on tmpfs, not encrypted");
    });
    test("a plain filesystem mounted inside an encrypted store is refused", () => {
        const v = decideModelStore("/srv/encrypted", hostFacts("luks-raid", "/srv/encrypted"));
        assert.equal(!v.encrypted && v.found, "xfs on /dev/mapper/models_crypt is mounted inside the store at /srv/encrypted/ollama");
        const inside = decideModelStore("/srv/encrypted", { ...hostFacts("luks-lvm", "/srv/encrypted"), mountinfo: fixture("luks-lvm.mountinfo") + "90 35 0:50 / /srv/encrypted/blobs rw - tmpfs tmpfs rw\n" });
        assert.equal(!inside.encrypted && inside.found, "tmpfs on tmpfs is mounted inside the store at /srv/encrypted/blobs");
    });
    test("gocryptfs and eCryptfs mounts are encrypted; another FUSE filesystem is not", () => {
        const on = (line: string) => ({ ...hostFacts("plain-nvme", "/srv/m"), mountinfo: fixture("plain-nvme.mountinfo") + line });
        assert.equal(decideModelStore("/srv/m", on("70 29 0:60 / /srv/m rw,nosuid,nodev - fuse.gocryptfs /srv/.m-cipher rw,user_id=0,group_id=0\n")).encrypted, true);
        assert.equal(decideModelStore("/srv/m", on("70 29 0:61 / /srv/m rw - ecryptfs /srv/.m-lower rw,ecryptfs_sig=0123456789abcdef,ecryptfs_cipher=aes\n")).encrypted, true);
        const sshfs = decideModelStore("/srv/m", on("70 29 0:62 / /srv/m rw - fuse.sshfs nas:/models rw\n"));
        assert.equal(!sshfs.encrypted && sshfs.found, "fuse.sshfs on nas:/models, not encrypted");
    });
    test("fscrypt: a policy with its key present passes on any filesystem; a locked one is refused", () => {
        const policy = { version: 2, keyId: "785a1ad3c078b89d25f55f36c0dd3227" };
        assert.equal(decideModelStore("/srv/m", hostFacts("plain-nvme", "/srv/m", { fscrypt: { policy, keyStatus: "present" } })).encrypted, true);
        const locked = decideModelStore("/srv/m", hostFacts("plain-nvme", "/srv/m", { fscrypt: { policy, keyStatus: "absent" } }));
        assert.match(!locked.encrypted ? locked.found : "", /fscrypt-encrypted but locked \(key 785a1ad3c078b89d25f55f36c0dd3227 absent\)/);
        assert.equal(decideModelStore("/srv/m", hostFacts("plain-nvme", "/srv/m", { fscrypt: { policy, keyStatus: "unknown" } })).encrypted, false);
    });
    test("a path that does not exist, or is a file, is refused", () => {
        const missing = decideModelStore("/srv/nope", { path: "/srv/nope", exists: false, mountinfo: "", blockDevices: [] });
        assert.equal(!missing.encrypted && missing.found, "/srv/nope does not exist");
        const file = decideModelStore("/srv/f", hostFacts("luks-lvm", "/srv/encrypted/f", { isDirectory: false }));
        assert.equal(!file.encrypted && file.found, "/srv/f is not a directory");
    });
    test("a symlink out of the encrypted area is judged by its target and says so", () => {
        const v = decideModelStore("/srv/encrypted/ollama", hostFacts("luks-lvm", "/srv/encrypted/ollama", { resolved: "/boot/models" }));
        assert.equal(!v.encrypted && v.found, "ext4 on /dev/nvme0n1p2, not encrypted (/srv/encrypted/ollama is a symlink to /boot/models)");
    });
});

describe("probe output and the deploy-time error", () => {
    test("output that is not the probe's JSON is an error, never a pass", () => {
        assert.throws(() => parseProbeOutput(""), /no single JSON line/);
        assert.throws(() => parseProbeOutput('{"probe": 2}'), /not probe format 1/);
        assert.throws(() => verifiedPathOf("/srv/m", undefined), /model store \/srv\/m could not be checked, so Ollama is not created/);
    });
    test("a refusal is a RunError naming the path, what was found and the fix", () => {
        const logs = JSON.stringify({ probe: 1, ...hostFacts("plain-nvme", "/store"), mountinfo: "29 1 259:2 /srv/m /store ro - ext4 /dev/nvme0n1p2 rw\n" });
        assert.throws(
            () => verifiedPathOf("/srv/m", logs),
            (e: Error) => pulumi.RunError.isInstance(e) && /^model store \/srv\/m is not encrypted at rest: ext4 on \/dev\/nvme0n1p2, not encrypted\. Fix: .*LUKS.* Ollama is not created\.$/.test(e.message),
        );
    });
});
