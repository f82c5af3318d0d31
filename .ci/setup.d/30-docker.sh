# Docker engine for the engine rehearsal tests (test/e2e/engine.test.ts): Debian's docker.io and
# debootstrap, dockerd started here (stopped at the end), and the rehearsal images built once, timed.
apt_install docker.io debootstrap iproute2 util-linux
if ! docker info >/dev/null 2>&1; then
  mkdir -p /var/lib/docker
  dockerd --data-root /var/lib/docker >"${TMPDIR:-/tmp}/zto-ci-dockerd.log" 2>&1 &
  ZTO_DOCKERD_PID=$!
  on_exit "kill $ZTO_DOCKERD_PID; wait $ZTO_DOCKERD_PID 2>/dev/null"
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "ci: dockerd did not start; log:" >&2; tail -20 "${TMPDIR:-/tmp}/zto-ci-dockerd.log" >&2; exit 1; }
fi
# Builds the debootstrap rootfs (cached by content in $ZTO_TOOLS_DIR), the stand-in images and the
# filter image once; the tests then find them built. Prints each step's time.
npm run --silent rehearse -- --stack Pulumi.dev.yaml --name ci-images --port 18443 --matrix </dev/null
npm run --silent rehearse -- --stack test/fixtures/Pulumi.rehearsal.yaml --name ci-images --port 18443 --matrix </dev/null
