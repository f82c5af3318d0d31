/**
 * The programs the tests build and run are the releases the stack deploys: the oauth2-proxy
 * binary's version is the default image's tag, in its -alpine variant (both read OAUTH2_PROXY_VERSION).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_IMAGES, OAUTH2_PROXY_VERSION } from "../../components/config";
import { TOOLS, toolPath } from "../../scripts/lib/tools";

test("oauth2-proxy: the tested binary's version is the deployed image's tag", () => {
    assert.equal(DEFAULT_IMAGES.oauth2Proxy, `quay.io/oauth2-proxy/oauth2-proxy:${TOOLS.oauth2Proxy.version}-alpine`);
    assert.equal(TOOLS.oauth2Proxy.version, OAUTH2_PROXY_VERSION);
    assert.match(toolPath("oauth2Proxy"), new RegExp(`oauth2-proxy-${OAUTH2_PROXY_VERSION.replace(/\./g, "\\.")}/oauth2-proxy$`));
});
