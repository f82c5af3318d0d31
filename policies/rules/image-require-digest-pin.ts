import type { ResourceValidationPolicy } from "@pulumi/policy";
import { isDigestPinned, isImageId } from "../lib/containers";
import { TYPES, forType, str } from "../lib/policy-kit";

/**
 * Advisory by default so the dev stack (tags only) previews cleanly; production makes it
 * mandatory with policy config `{"image-require-digest-pin": "mandatory"}`.
 */
export const imageRequireDigestPin: ResourceValidationPolicy = {
    name: "image-require-digest-pin",
    description:
        "Every image is pinned by digest (repo:tag@sha256:<64 hex>): RemoteImage names carry a digest and containers run either an image id or a digest-pinned reference. A tag can be moved by whoever controls the registry; a digest cannot. Advisory by default; set it to mandatory in policy config for production.",
    enforcementLevel: "advisory",
    severity: "high",
    remediationSteps: "Append @sha256:<digest> to the image (docker buildx imagetools inspect <image>) and set requirePinnedImages: true in the stack.",
    validateResource: [
        forType(TYPES.remoteImage, (props, _args, report) => {
            const ref = str(props.name);
            if (!isDigestPinned(ref)) report(`image "${ref}" is not pinned by digest; a moved tag would silently change what runs.`);
        }),
        forType(TYPES.container, (props, _args, report) => {
            const ref = str(props.image);
            if (!isImageId(ref) && !isDigestPinned(ref)) report(`container image "${ref}" is neither an image id nor pinned by digest.`);
        }),
    ],
};
