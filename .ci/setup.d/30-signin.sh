# The real sign-in tests: Debian's Chromium (driven by playwright-core, which never downloads a
# browser) and the NSS tools that import the device certificate into the browser's own store.
apt_install chromium libnss3-tools
