# oauth2-proxy's session store in the real sign-in tests: Debian's redis-server. The tests start
# their own instance on 127.0.0.1 (free port, generated password); the packaged service stays
# stopped, so nothing else listens.
apt_install redis-server
if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
