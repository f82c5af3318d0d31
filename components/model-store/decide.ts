/**
 * Is a directory encrypted at rest? Pure functions of the facts the probe (probe.py) reports:
 * the process's mount table (/proc/self/mountinfo), the block-device stack (sysfs, or recorded
 * `lsblk --json`) and the directory's fscrypt policy. Anything not recognised as encryption is
 * refused: the verdict names what was found and how to fix it.
 */

/** One line of /proc/self/mountinfo (proc(5)). */
export interface MountInfoEntry {
    readonly mountId: number;
    /** major:minor of the filesystem's device (0:N for FUSE, tmpfs, btrfs subvolumes...). */
    readonly majMin: string;
    /** Directory of the filesystem that is mounted here (a bind mount shows its source path). */
    readonly root: string;
    readonly mountPoint: string;
    readonly fsType: string;
    /** Mount source: a device (/dev/nvme0n1p2), a FUSE cipher dir, or a pseudo name. */
    readonly source: string;
}

/** One block device: its kernel name, major:minor and what it is stacked on. */
export interface BlockDevice {
    /** Kernel name: nvme0n1p2, dm-0, md127, loop0. */
    readonly kname: string;
    readonly majMin: string;
    /** Device-mapper uuid (sysfs dm/uuid): CRYPT-LUKS2-..., CRYPT-PLAIN-..., LVM-..., mpath-... */
    readonly dmUuid?: string;
    /** Device-mapper name (/dev/mapper/<dmName>). */
    readonly dmName?: string;
    /** lsblk's TYPE column (crypt, lvm, part, disk, raid1...), when recorded with lsblk. */
    readonly type?: string;
    /** Kernel names of the devices this one is built on (sysfs slaves/, lsblk parents). */
    readonly slaves: readonly string[];
}

/** The directory's fscrypt state, as the probe read it with FS_IOC_GET_ENCRYPTION_POLICY_EX. */
export interface FscryptFacts {
    readonly policy: { readonly version: number; readonly keyId: string } | null;
    readonly keyStatus: "present" | "absent" | "incompletely-removed" | "unknown" | null;
}

/** What probe.py prints for `inspect <dir>`. */
export interface ProbeFacts {
    readonly path: string;
    readonly exists: boolean;
    /** realpath of `path` (symlinks resolved), when it exists. */
    readonly resolved?: string;
    readonly isDirectory?: boolean;
    readonly mountinfo: string;
    readonly blockDevices: readonly BlockDevice[];
    readonly fscrypt?: FscryptFacts;
}

export type EncryptionKind = "dm-crypt" | "fscrypt" | "gocryptfs" | "ecryptfs";

export type ModelStoreVerdict =
    | { readonly encrypted: true; readonly kind: EncryptionKind; readonly detail: string }
    | { readonly encrypted: false; readonly found: string; readonly fix: string };

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescapeOctal(s: string): string {
    return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo; a line that does not have the documented shape is an error. */
export function parseMountInfo(text: string): MountInfoEntry[] {
    return text
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((line, i) => {
            const fields = line.split(" ");
            const sep = fields.indexOf("-", 6);
            if (fields.length < 10 || sep < 0 || fields.length < sep + 3 || !/^\d+:\d+$/.test(fields[2])) {
                throw new Error(`mountinfo line ${i + 1} is not in the proc(5) format: ${JSON.stringify(line)}`);
            }
            return {
                mountId: Number(fields[0]),
                majMin: fields[2],
                root: unescapeOctal(fields[3]),
                mountPoint: unescapeOctal(fields[4]),
                fsType: fields[sep + 1],
                source: unescapeOctal(fields[sep + 2]),
            };
        });
}

interface LsblkNode {
    kname?: unknown;
    name?: unknown;
    "maj:min"?: unknown;
    type?: unknown;
    children?: unknown;
}

/**
 * Block devices from `lsblk --json -o NAME,KNAME,MAJ:MIN,TYPE` (the tree form): a child is
 * stacked on its parent, so a device listed under two parents (RAID, LVM over two PVs) gets both.
 */
export function parseLsblkJson(text: string): BlockDevice[] {
    const doc = JSON.parse(text) as { blockdevices?: unknown };
    if (!Array.isArray(doc.blockdevices)) throw new Error("lsblk JSON has no blockdevices array");
    const byName = new Map<string, { kname: string; majMin: string; type?: string; dmName?: string; slaves: string[] }>();
    const visit = (node: LsblkNode, parent: string | undefined) => {
        if (typeof node.kname !== "string" || typeof node["maj:min"] !== "string") throw new Error(`lsblk entry without kname and maj:min: ${JSON.stringify(node)}`);
        const entry = byName.get(node.kname) ?? { kname: node.kname, majMin: node["maj:min"], slaves: [] };
        if (typeof node.type === "string") entry.type = node.type;
        if (node.kname.startsWith("dm-") && typeof node.name === "string") entry.dmName = node.name;
        if (parent && !entry.slaves.includes(parent)) entry.slaves.push(parent);
        byName.set(node.kname, entry);
        for (const child of Array.isArray(node.children) ? (node.children as LsblkNode[]) : []) visit(child, node.kname);
    };
    for (const d of doc.blockdevices as LsblkNode[]) visit(d, undefined);
    return [...byName.values()];
}

function within(inner: string, outer: string): boolean {
    return outer === "/" ? inner.startsWith("/") : inner === outer || inner.startsWith(outer + "/");
}

/** The mount a path lives on: the longest mount point above it; the later entry wins (over-mounts). */
export function mountOf(path: string, mounts: readonly MountInfoEntry[]): MountInfoEntry | undefined {
    let best: MountInfoEntry | undefined;
    for (const m of mounts) if (within(path, m.mountPoint) && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
    return best;
}

function isCrypt(d: BlockDevice): boolean {
    return d.dmUuid?.startsWith("CRYPT-") === true || d.type === "crypt";
}

/** The device a mount sits on: by major:minor, else by its /dev/<name> or /dev/mapper/<name> source. */
export function deviceOf(mount: MountInfoEntry, devices: readonly BlockDevice[]): BlockDevice | undefined {
    const byNumber = devices.find((d) => d.majMin === mount.majMin);
    if (byNumber) return byNumber;
    const mapper = /^\/dev\/mapper\/(.+)$/.exec(mount.source);
    if (mapper) return devices.find((d) => d.dmName === mapper[1]);
    const plain = /^\/dev\/([^/]+)$/.exec(mount.source);
    return plain ? devices.find((d) => d.kname === plain[1]) : undefined;
}

/** The dm-crypt device anywhere below `top` in the stack (LVM on LUKS, LUKS on RAID...). */
export function cryptBelow(top: BlockDevice, devices: readonly BlockDevice[]): BlockDevice | undefined {
    const byName = new Map(devices.map((d) => [d.kname, d]));
    const seen = new Set<string>();
    const stack = [top];
    while (stack.length) {
        const d = stack.pop()!;
        if (seen.has(d.kname)) continue;
        seen.add(d.kname);
        if (isCrypt(d)) return d;
        for (const s of d.slaves) {
            const below = byName.get(s);
            if (below) stack.push(below);
        }
    }
    return undefined;
}

function describeCrypt(d: BlockDevice): string {
    const kind = /^CRYPT-([A-Z0-9]+)-/.exec(d.dmUuid ?? "")?.[1] ?? "dm-crypt";
    return `${kind === "PLAIN" ? "plain dm-crypt" : kind === "dm-crypt" ? kind : `${kind} dm-crypt`} device ${d.dmName ? `/dev/mapper/${d.dmName}` : d.kname}`;
}

const LUKS_FIX =
    "put it on an encrypted volume: a LUKS (dm-crypt) filesystem mounted before `pulumi up` (docs/model-store.md), " +
    "or set ollama.modelStore: { provision: fscrypt } (or gocryptfs, where the filesystem has no fscrypt) to have the program create an encrypted directory there, " +
    "or (development stacks only) ollama.allowUnencryptedModels: true";

/**
 * The verdict for one directory. `subject` names it in messages: the operator's path (the probe
 * may see it under another name, e.g. the check container's bind-mount target) or a Docker volume.
 * `unencryptedFix` is the advice when it is on a plain filesystem (default: the model store's).
 */
export function decideModelStore(subject: string, facts: ProbeFacts, unencryptedFix = LUKS_FIX): ModelStoreVerdict {
    const refuse = (found: string, fix = unencryptedFix): ModelStoreVerdict => ({ encrypted: false, found, fix });
    if (!facts.exists || facts.resolved === undefined) return refuse(`${subject} does not exist`, `create it on the encrypted volume (or mount the volume), then re-run; ${unencryptedFix}`);
    if (!facts.isDirectory) return refuse(`${subject} is not a directory`, "point ollama.modelsPath at a directory on the encrypted volume");
    const via = facts.resolved !== facts.path ? ` (${subject} is a symlink to ${facts.resolved})` : "";

    const mounts = parseMountInfo(facts.mountinfo);
    // Docker bind-mounts recursively: a filesystem mounted below the store would take Ollama's files.
    const below = mounts.find((m) => m.mountPoint !== facts.resolved && within(m.mountPoint, facts.resolved!) && facts.resolved !== "/");
    if (below) return refuse(`${below.fsType} on ${below.source} is mounted inside the store at ${below.mountPoint}${via}`, "unmount it or move it out of the store; every file Ollama writes must land on the encrypted filesystem");

    const fscrypt = facts.fscrypt;
    if (fscrypt?.policy) {
        if (fscrypt.keyStatus === "present") return { encrypted: true, kind: "fscrypt", detail: `fscrypt v${fscrypt.policy.version} policy, key ${fscrypt.policy.keyId} present${via}` };
        return refuse(
            `${subject} is fscrypt-encrypted but locked (key ${fscrypt.policy.keyId} ${fscrypt.keyStatus ?? "unknown"})${via}`,
            "unlock it before `pulumi up` (docs/model-store.md: unlocking after a reboot); a locked directory cannot take model files",
        );
    }

    const mount = mountOf(facts.resolved, mounts);
    if (!mount) return refuse(`no mount holds ${facts.resolved}${via}`);
    if (mount.fsType === "fuse.gocryptfs") return { encrypted: true, kind: "gocryptfs", detail: `gocryptfs mount of ${mount.source} at ${mount.mountPoint}${via}` };
    if (mount.fsType === "ecryptfs") return { encrypted: true, kind: "ecryptfs", detail: `eCryptfs mount of ${mount.source} at ${mount.mountPoint}${via}` };
    const device = deviceOf(mount, facts.blockDevices);
    const crypt = device && cryptBelow(device, facts.blockDevices);
    if (crypt) return { encrypted: true, kind: "dm-crypt", detail: `${mount.fsType} on ${mount.source}, ${crypt === device ? "a" : "stacked on a"} ${describeCrypt(crypt)}${via}` };
    return refuse(`${mount.fsType} on ${mount.source}, not encrypted${via}`);
}

/** One line for logs and errors about `subject` ("model store /srv/m", "Docker volume v"). */
export function formatVerdict(subject: string, v: ModelStoreVerdict): string {
    return v.encrypted ? `${subject} is encrypted at rest: ${v.detail}` : `${subject} is not encrypted at rest: ${v.found}. Fix: ${v.fix}.`;
}

/** Parses the probe's JSON output; anything that is not the probe's shape is an error, never a pass. */
export function parseProbeOutput(text: string): ProbeFacts {
    const lines = text.split("\n").filter((l) => l.trim().startsWith("{"));
    if (lines.length !== 1) throw new Error(`the model-store probe printed no single JSON line: ${JSON.stringify(text.slice(0, 300))}`);
    const f = JSON.parse(lines[0]) as Partial<ProbeFacts> & { probe?: unknown };
    if (f.probe !== 1 || typeof f.path !== "string" || typeof f.exists !== "boolean" || typeof f.mountinfo !== "string" || !Array.isArray(f.blockDevices)) {
        throw new Error(`the model-store probe's output is not probe format 1: ${JSON.stringify(lines[0].slice(0, 300))}`);
    }
    return f as ProbeFacts;
}
