/**
 * tailscale.deployerTag (issue 21, item 2): the one tag an OAuth client carries owns every tag the
 * stack applies, so that client can mint the server key and the node keys; the tag itself reaches
 * nothing, and the policy's own tests prove it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { parseStackConfig } from "../../components/config";
import { parseStackFile } from "../../components/stack-file";
import { renderTailnetPolicy, type TailnetPolicyInput } from "../../components/tailnet/acl";
import { POLICIES } from "../../policies/all";
import { runProgramUnderMocks } from "../../scripts/lib/mock-program";
import { graphFromMockRun } from "../../scripts/lib/policy-eval";
import { violations } from "../policy/harness";

const BASE: TailnetPolicyInput = { serverTag: "tag:ai-server", clientTag: "tag:ai-client", gatewayPort: 443, allowedUsers: ["alice@corp.example"], tagOwners: ["autogroup:admin"] };
const DEPLOYER = "tag:zto-deployer";

describe("tailscale.deployerTag in the rendered policy", () => {
    test("without it the policy is unchanged; with it the deployer tag owns the server, client and node tags and the admins own it", () => {
        assert.deepEqual(renderTailnetPolicy(BASE).tagOwners, { "tag:ai-server": ["autogroup:admin"], "tag:ai-client": ["autogroup:admin"] });
        const p = renderTailnetPolicy({ ...BASE, deployerTag: DEPLOYER, nodes: { tag: "tag:ai-node", enclavePort: 11443 } });
        assert.deepEqual(p.tagOwners, {
            "tag:ai-server": ["autogroup:admin", DEPLOYER],
            "tag:ai-client": ["autogroup:admin", DEPLOYER],
            "tag:ai-node": ["autogroup:admin", DEPLOYER],
            [DEPLOYER]: ["autogroup:admin"],
        });
    });

    test("the deployer tag is granted nothing, and a policy test denies it every destination the other tests accept", () => {
        const p = renderTailnetPolicy({ ...BASE, deployerTag: DEPLOYER, nodes: { tag: "tag:ai-node", enclavePort: 11443 } });
        assert.ok(!p.grants.some((g) => g.src.includes(DEPLOYER) || g.dst.includes(DEPLOYER)));
        const t = p.tests.find((x) => x.src === DEPLOYER);
        assert.deepEqual(t, { src: DEPLOYER, accept: [], deny: ["tag:ai-server:443", "tag:ai-node:11443"] });
    });

    test("config: must be a tag, differ from the applied tags, and needs tailscale.enabled", () => {
        const problems = (tailscale: Record<string, unknown>, extra: Record<string, unknown> = {}) => {
            const r = parseStackConfig({ domain: "ollama.example.com", devices: [], tailscale, ...extra });
            return r.ok ? [] : r.problems.map((x) => `${x.path}: ${x.message}`);
        };
        assert.deepEqual(problems({ enabled: true, deployerTag: DEPLOYER }), []);
        assert.match(problems({ enabled: true, deployerTag: "zto-deployer" }).join("\n"), /tailscale\.deployerTag: must be a Tailscale tag/);
        assert.match(problems({ enabled: true, deployerTag: "tag:ai-server" }).join("\n"), /tailscale\.deployerTag: must differ from the tags the stack applies/);
        assert.match(problems({ deployerTag: DEPLOYER }).join("\n"), /tailscale\.deployerTag: only applies with tailscale\.enabled/);
        assert.match(problems({ enabled: true, deployerTg: DEPLOYER }).join("\n"), /deployerTg/);
    });

    test("the production stack with a managed ACL and a deployer tag passes every mandatory policy", async () => {
        const doc = parse(readFileSync("Pulumi.prod.yaml", "utf8"));
        Object.assign(doc.config["zero-trust-ollama:tailscale"], { manageAcl: true, deployerTag: DEPLOYER });
        const run = await runProgramUnderMocks(parseStackFile(stringify(doc), "prod (deployerTag)"), { stack: "prod" });
        assert.ok(run.ok, JSON.stringify(!run.ok && run.problems));
        const acl = JSON.parse(run.resources.find((r) => r.type === "tailscale:index/acl:Acl")!.inputs.acl);
        assert.deepEqual(acl.tagOwners[DEPLOYER], ["autogroup:admin"]);
        const vs = await violations(POLICIES, graphFromMockRun(run.resources));
        assert.deepEqual(vs.filter((v) => v.enforcementLevel === "mandatory"), []);
    });
});
