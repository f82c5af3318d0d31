/**
 * The attack matrix against the real nginx (1.22 here) running the rendered config in the
 * sandbox, in front of the stub Ollama: every refusal is proven by the stub having seen nothing.
 */
import { runAttackMatrix } from "./attack-runner";

runAttackMatrix("nginx", { includeIdentity: true });
