/**
 * Entry of the Ollama stand-in image: the project's stub Ollama on OLLAMA_HOST (as the real
 * server reads it), every received request logged as one JSON line on stdout (`docker logs`).
 */
import { startStubOllama } from "../../sandbox/stub-ollama";

const [host, port] = (process.env.OLLAMA_HOST ?? "127.0.0.1:11434").split(":");
startStubOllama({ logFile: "/dev/stdout", host, port: Number(port), tokenIntervalMs: 5 }).catch((e) => {
    process.stderr.write(`stub ollama: ${(e as Error).message}\n`);
    process.exit(1);
});
