#!/usr/bin/env python3
"""Model-store probe: gathers the facts that decide whether a directory is encrypted at rest.

Runs on the Docker host that runs Ollama, inside a short-lived container that bind-mounts the
models path read-only (components/model-store.ts), or directly on a host in the tests. It only
reports facts as JSON; the decision is the TypeScript function decideModelStore, so every
verdict is unit-testable from recorded facts.

  probe.py inspect <dir>              print the facts about <dir>
  probe.py provision-fscrypt <dir>    make <dir> an fscrypt (v2 policy) directory whose key is
                                      the 128 hex characters (64 bytes) in $ZTO_FSCRYPT_KEY (else
                                      the first line of stdin), and add the key; a no-op when it
                                      already is one with that key and the key is present
"""
import errno
import fcntl
import hashlib
import hmac
import json
import os
import sys

# Linux UAPI (include/uapi/linux/fscrypt.h): _IOWR('f', nr, size) and _IOR('f', nr, size).
def _iowr(nr, size):
    return (3 << 30) | (size << 16) | (ord("f") << 8) | nr

FS_IOC_SET_ENCRYPTION_POLICY = (2 << 30) | (12 << 16) | (ord("f") << 8) | 19  # _IOR('f', 19, v1 policy)
FS_IOC_GET_ENCRYPTION_POLICY_EX = _iowr(22, 9)   # the UAPI declares its size as __u8[9]
FS_IOC_ADD_ENCRYPTION_KEY = _iowr(23, 80)        # struct fscrypt_add_key_arg (without the raw key)
FS_IOC_GET_ENCRYPTION_KEY_STATUS = _iowr(26, 128)

FSCRYPT_KEY_SPEC_TYPE_DESCRIPTOR = 1
FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER = 2
KEY_STATUS = {1: "absent", 2: "present", 3: "incompletely-removed"}
# AES-256-XTS contents, AES-256-CTS filenames, 32-byte padding: fscrypt's default v2 policy.
FSCRYPT_MODE_AES_256_XTS = 1
FSCRYPT_MODE_AES_256_CTS = 4
FSCRYPT_POLICY_FLAGS_PAD_32 = 0x03


def _ioctl(fd, request, buf):
    fcntl.ioctl(fd, request, buf, True)
    return buf


def fscrypt_policy(fd):
    """The directory's encryption policy as {version, keyId}, None when it has none."""
    buf = bytearray(8 + 24)
    buf[0:8] = (24).to_bytes(8, "little")
    try:
        _ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, buf)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise
    version = buf[8]
    if version == 0:  # v1: version, modes, flags, 8-byte descriptor
        return {"version": 1, "keyId": bytes(buf[12:20]).hex()}
    if version == 2:  # v2: version, modes, flags, log2 data unit size, 3 reserved, 16-byte identifier
        return {"version": 2, "keyId": bytes(buf[16:32]).hex()}
    return {"version": version, "keyId": ""}


def _key_spec(policy):
    spec = bytearray(40)
    key = bytes.fromhex(policy["keyId"])
    spec_type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER if policy["version"] == 2 else FSCRYPT_KEY_SPEC_TYPE_DESCRIPTOR
    spec[0:4] = spec_type.to_bytes(4, "little")
    spec[8 : 8 + len(key)] = key
    return spec


def fscrypt_key_status(fd, policy):
    """present | absent | incompletely-removed | unknown (v1 keys in a keyring are not visible here)."""
    buf = bytearray(128)
    buf[0:40] = _key_spec(policy)
    try:
        _ioctl(fd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, buf)
    except OSError:
        return "unknown"
    return KEY_STATUS.get(int.from_bytes(buf[64:68], "little"), "unknown")


def block_devices():
    """Every block device sysfs shows: kernel name, major:minor, device-mapper uuid/name, slaves."""
    out = []
    base = "/sys/class/block"
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        d = os.path.join(base, name)

        def read(rel):
            try:
                with open(os.path.join(d, rel)) as f:
                    return f.read().strip()
            except OSError:
                return None

        slaves_dir = os.path.join(d, "slaves")
        slaves = sorted(os.listdir(slaves_dir)) if os.path.isdir(slaves_dir) else []
        # Partitions have no slaves/ of their own: their parent disk is the directory above.
        parent = os.path.basename(os.path.dirname(os.path.realpath(d)))
        if read("partition") is not None and parent and not slaves:
            slaves = [parent]
        entry = {"kname": name, "majMin": read("dev") or "", "slaves": slaves}
        for key, rel in (("dmUuid", "dm/uuid"), ("dmName", "dm/name")):
            v = read(rel)
            if v:
                entry[key] = v
        out.append(entry)
    return out


def inspect(path):
    facts = {"probe": 1, "path": path, "exists": os.path.lexists(path)}
    with open("/proc/self/mountinfo") as f:
        facts["mountinfo"] = f.read()
    facts["blockDevices"] = block_devices()
    if not os.path.exists(path):
        return facts
    facts["resolved"] = os.path.realpath(path)
    facts["isDirectory"] = os.path.isdir(path)
    st = os.stat(path)
    facts["device"] = "%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev))
    if facts["isDirectory"]:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            policy = fscrypt_policy(fd)
            facts["fscrypt"] = {"policy": policy, "keyStatus": fscrypt_key_status(fd, policy) if policy else None}
        finally:
            os.close(fd)
    return facts


def key_identifier(raw):
    """The v2 key identifier the kernel derives: HKDF-SHA512(key, zero salt, "fscrypt\\0" 0x01), 16 bytes."""
    prk = hmac.new(bytes(64), raw, hashlib.sha512).digest()
    return hmac.new(prk, b"fscrypt\x00\x01\x01", hashlib.sha512).digest()[:16].hex()


def add_key(fd, raw):
    """FS_IOC_ADD_ENCRYPTION_KEY (v2); returns the identifier the kernel reports."""
    buf = bytearray(80 + len(raw))
    buf[0:4] = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER.to_bytes(4, "little")
    buf[40:44] = len(raw).to_bytes(4, "little")
    buf[80:] = raw
    _ioctl(fd, FS_IOC_ADD_ENCRYPTION_KEY, buf)
    identifier = bytes(buf[8:24]).hex()
    buf[80:] = bytes(len(raw))
    return identifier


def set_policy_v2(fd, identifier):
    policy = bytearray(24)
    policy[0:4] = bytes([2, FSCRYPT_MODE_AES_256_XTS, FSCRYPT_MODE_AES_256_CTS, FSCRYPT_POLICY_FLAGS_PAD_32])
    policy[8:24] = bytes.fromhex(identifier)
    # FS_IOC_SET_ENCRYPTION_POLICY takes the v2 struct too; the request number keeps the v1 size.
    _ioctl(fd, FS_IOC_SET_ENCRYPTION_POLICY, policy)


def provision_fscrypt(path, key_hex):
    """Returns "created", "unchanged" or "unlocked"; raises with a clear message on anything else,
    and then leaves no directory behind that it created itself."""
    raw = bytes.fromhex(key_hex)
    if len(raw) != 64:
        raise ValueError("the fscrypt key must be 64 bytes (128 hex characters)")
    created = not os.path.lexists(path)
    os.makedirs(path, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        identifier = key_identifier(raw)
        policy = fscrypt_policy(fd)
        if policy is not None and not (policy["version"] == 2 and policy["keyId"] == identifier):
            raise ValueError("%s is already encrypted with another key (identifier %s); refusing to touch it" % (path, policy["keyId"]))
        if policy is None and os.listdir(path):
            raise ValueError("%s is not empty and not encrypted: fscrypt encrypts only an empty directory; move its contents away first" % path)
        # Adding a key that is already present is allowed (the kernel counts it once per user).
        was_present = policy is not None and fscrypt_key_status(fd, policy) == "present"
        try:
            if add_key(fd, raw) != identifier:
                raise ValueError("the kernel derived another key identifier than expected; refusing to continue")
            if policy is None:
                set_policy_v2(fd, identifier)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOTTY):
                raise
            raise ValueError(
                "the filesystem holding %s has no fscrypt support (ext4 needs the encrypt feature: `tune2fs -O encrypt <device>` "
                "on an unmounted filesystem, and a kernel with CONFIG_FS_ENCRYPTION); use LUKS, or mount gocryptfs there on the host "
                "(docs/model-store.md)" % path
            )
        return "created" if policy is None else "unchanged" if was_present else "unlocked"
    except BaseException:
        if created:
            os.close(fd)
            fd = -1
            os.rmdir(path)
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def main(argv):
    if len(argv) == 3 and argv[1] == "inspect":
        json.dump(inspect(argv[2]), sys.stdout)
        sys.stdout.write("\n")
        return 0
    if len(argv) == 3 and argv[1] == "provision-fscrypt":
        key_hex = os.environ.get("ZTO_FSCRYPT_KEY") or sys.stdin.readline().strip()
        try:
            result = provision_fscrypt(argv[2], key_hex)
        except (OSError, ValueError) as e:
            json.dump({"provisioned": False, "error": str(e)}, sys.stdout)
            sys.stdout.write("\n")
            return 1
        json.dump({"provisioned": True, "result": result}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
