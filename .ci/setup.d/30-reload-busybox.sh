# busybox: the gateway images (nginx and haproxy, alpine) run the config writer and the reload
# supervisor under busybox sh, mv, ln and readlink; test/unit/gateway-reload.test.ts runs both
# scripts under Debian's busybox as well as dash.
apt_install busybox
