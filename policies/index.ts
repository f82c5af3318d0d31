/**
 * Entry point Pulumi runs for `pulumi preview --policy-pack policies`. Constructing the pack
 * starts the analyzer's gRPC server, so nothing else imports this file; see ./all.ts.
 */
import { PolicyPack } from "@pulumi/policy";
import { PACK_NAME, POLICIES } from "./all";

new PolicyPack(PACK_NAME, { policies: POLICIES, enforcementLevel: "mandatory" });
