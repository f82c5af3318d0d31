# oauth2-proxy and Ollama at the pinned versions, built from source with the Go toolchain into
# $ZTO_TOOLS_DIR (cached by version: a warm cache builds nothing).
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
npm run --silent tools:build </dev/null
