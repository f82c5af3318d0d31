/**
 * Ollama release numbers read from image references. No Pulumi imports: the tools build script
 * derives the Ollama version it builds from the stack's default pin through this module.
 */

/** A release number major.minor.patch, compared field by field. */
export type OllamaVersion = readonly [number, number, number];

/**
 * The first release whose server reads `OLLAMA_NO_CLOUD` (envconfig/config.go gained it in
 * v0.16.2; v0.16.1 has no such setting, so on older servers the variable is silently ignored).
 */
export const NO_CLOUD_SINCE: OllamaVersion = [0, 16, 2];

/**
 * The release an Ollama image reference names by its tag (`ollama/ollama:0.17.4`,
 * `…:0.17.4-rocm@sha256:…`, `…:v0.17.4`); undefined when the tag is not a release number
 * (`latest`, no tag, digest only).
 */
export function ollamaImageVersion(ref: string): OllamaVersion | undefined {
    const m = /:v?(\d+)\.(\d+)\.(\d+)(?:-[A-Za-z0-9.-]+)?(?:@sha256:[a-f0-9]{64})?$/.exec(ref);
    return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

export function compareVersions(a: OllamaVersion, b: OllamaVersion): number {
    return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}
