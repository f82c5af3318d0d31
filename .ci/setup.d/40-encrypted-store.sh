# The model-store tests (test/e2e/model-store-kernel.test.ts) run the probe against the real
# kernel: a loop-mounted ext4 image with fscrypt, a gocryptfs FUSE mount. They create and remove
# their own images and mounts; this step installs the programs and checks the kernel features.
apt_install e2fsprogs fscrypt gocryptfs fuse3 util-linux mount python3
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
for need in /dev/loop-control /dev/fuse /sys/fs/ext4/features/encryption; do
  [ -e "$need" ] || echo "40-encrypted-store: $need is missing; the model-store kernel tests will fail (CI=true: they never skip)" >&2
done
# A test process killed mid-run leaves its mounts behind: unmount whatever is left under its temp dirs.
zto_model_store_cleanup() {
  local m l
  for m in $(findmnt -rn -o TARGET | grep '/zto-model-store-' | sort -r); do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  # ...and the loop devices the suite attached to its images.
  for l in $(losetup -l -n -O NAME,BACK-FILE 2>/dev/null | awk '$2 ~ /\/zto-model-store-/ {print $1}'); do losetup -d "$l" || true; done
}
zto_model_store_cleanup  # leftovers of an earlier run on a reused machine
on_exit zto_model_store_cleanup
