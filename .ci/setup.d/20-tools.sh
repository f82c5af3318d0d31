# oauth2-proxy and Ollama at the pinned versions, built from source with the Go toolchain into
# $ZTO_TOOLS_DIR (cached by version: a warm cache builds nothing). Ollama's cgo build needs the
# llama.cpp third-party headers that Go module zips leave out (scripts/lib/tools.ts).
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
apt_install libstb-dev nlohmann-json3-dev g++
npm run --silent tools:build </dev/null
