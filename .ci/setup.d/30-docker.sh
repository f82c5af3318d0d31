# Docker engine for the engine rehearsal tests (test/e2e/engine.test.ts, which FAIL in CI without
# it): Debian's docker.io and debootstrap, dockerd started here and stopped when .ci/run ends, and
# the rehearsal images built once (rootfs cached by its version key in $ZTO_TOOLS_DIR), timed.
apt_install docker.io debootstrap iptables iproute2 util-linux
if ! docker info >/dev/null 2>&1; then
  ZTO_DOCKERD_LOG=$(mktemp -t zto-ci-dockerd.XXXXXX.log)
  mkdir -p /var/lib/docker
  dockerd --data-root /var/lib/docker </dev/null >"$ZTO_DOCKERD_LOG" 2>&1 &
  ZTO_DOCKERD_PID=$!
  # TERM lets dockerd stop its containers and its containerd; bounded, then KILL.
  on_exit "kill $ZTO_DOCKERD_PID 2>/dev/null; for _ in \$(seq 1 30); do kill -0 $ZTO_DOCKERD_PID 2>/dev/null || break; sleep 1; done; kill -9 $ZTO_DOCKERD_PID 2>/dev/null; wait $ZTO_DOCKERD_PID 2>/dev/null; rm -f $ZTO_DOCKERD_LOG"
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; kill -0 "$ZTO_DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "ci: dockerd did not start; its log:" >&2; tail -30 "$ZTO_DOCKERD_LOG" >&2; exit 1; }
fi
echo "ci: dockerd $(docker info --format '{{.ServerVersion}}') is up"
# One rehearsal of the prod-like stack builds every image the tests use (the debootstrap rootfs,
# the nginx, Ollama and oauth2-proxy stand-ins, the filter image from filter/Dockerfile) and prints
# each build's time, the rehearsal's own timings and the measured reachability matrix; the engine
# tests then find the images built. A free loopback port, never a fixed one.
ZTO_REHEARSAL_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
npm run --silent rehearse -- --stack test/fixtures/Pulumi.rehearsal.yaml --name ci-images --port "$ZTO_REHEARSAL_PORT" --matrix </dev/null
