# bench:gateway's new-connection load generator (scripts/lib/handshake-client.c) is built from
# source with the system C compiler against OpenSSL; test/e2e/supervisor-sigkill.test.ts runs
# the bench, which builds it first.
apt_install gcc libssl-dev
