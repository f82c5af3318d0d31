# The data-plane binaries the e2e tests run for real, and Debian's python3-httpx for the SDK example.
apt_install nginx haproxy openssl curl python3-httpx
# The packages' own services are never used: the tests start nginx/haproxy on loopback themselves.
for svc in nginx haproxy; do (command -v service >/dev/null && service "$svc" stop >/dev/null 2>&1) || true; done
