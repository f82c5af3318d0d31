/**
 * Ollama cloud models: names that make a local Ollama forward the prompt to ollama.com. Refused
 * whatever modelsByGroup says, because a cloud model sends the prompt off the machine, which is
 * what self-hosting is meant to prevent. Ollama 0.17.4 itself recognises them by a `:cloud` tag or
 * a `-cloud` suffix (middleware/anthropic.go and cmd/config isCloudModelName); the filter also
 * catches the suffix on the name part (`gpt-oss-cloud:latest` is `gpt-oss-cloud`), any letter case
 * and a registry prefix. A local alias of a cloud model (`ollama create x -f` FROM a cloud model)
 * carries no such name: the model allowlist and OLLAMA_NO_CLOUD cover that case.
 */

export function namesCloudModel(model: string): boolean {
    const name = model.trim().toLowerCase();
    const lastSlash = name.lastIndexOf("/");
    const colon = name.indexOf(":", lastSlash + 1);
    const base = colon === -1 ? name : name.slice(0, colon);
    const tag = colon === -1 ? "" : name.slice(colon + 1);
    return tag === "cloud" || tag.endsWith("-cloud") || base.endsWith("-cloud");
}
