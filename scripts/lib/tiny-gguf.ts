/**
 * A tiny llama-architecture GGUF model the tests own: one transformer block, a 64-wide embedding
 * and a 320-token SentencePiece vocabulary, random (seeded) f32 weights, about 0.4 MiB. Ollama
 * loads it like any llama model, so every inference route produces real (meaningless) tokens
 * on a CPU in milliseconds.
 *
 * Generation never ends by itself: the output rows of the control and byte tokens are zero while
 * the word rows are large, so end-of-sequence never ranks among the candidates a sampler keeps
 * (greedy or top-k). Callers bound answers with num_predict / max_tokens, and a test that aborts
 * mid-stream has a generation that would otherwise run on.
 *
 * GGUF v3 layout (little endian): magic, version, tensor count, key/value count, key/values,
 * tensor infos (name, dims, type, offset), padding to the alignment, tensor data.
 */
import { writeFileSync } from "node:fs";

const ALIGNMENT = 32;
const EMBED = 64;
const FEED_FORWARD = 128;
const HEADS = 2;
const CONTEXT = 4096;

/** GGUF metadata value types. */
const enum T {
    U32 = 4,
    I32 = 5,
    F32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
}
/** GGUF tensor type f32. */
const GGML_F32 = 0;

type Value = { t: T.U32 | T.I32 | T.F32; v: number } | { t: T.BOOL; v: boolean } | { t: T.STRING; v: string } | { t: T.ARRAY; of: T.STRING | T.F32 | T.I32; v: readonly (string | number)[] };

class Out {
    private readonly parts: Buffer[] = [];
    length = 0;
    push(b: Buffer): void {
        this.parts.push(b);
        this.length += b.length;
    }
    private scalar(size: number, write: (b: Buffer) => void): void {
        const b = Buffer.alloc(size);
        write(b);
        this.push(b);
    }
    u32(n: number): void {
        this.scalar(4, (b) => b.writeUInt32LE(n));
    }
    i32(n: number): void {
        this.scalar(4, (b) => b.writeInt32LE(n));
    }
    u64(n: number): void {
        this.scalar(8, (b) => b.writeBigUInt64LE(BigInt(n)));
    }
    f32(n: number): void {
        this.scalar(4, (b) => b.writeFloatLE(n));
    }
    str(s: string): void {
        const b = Buffer.from(s, "utf8");
        this.u64(b.length);
        this.push(b);
    }
    pad(): void {
        const rest = this.length % ALIGNMENT;
        if (rest) this.push(Buffer.alloc(ALIGNMENT - rest));
    }
    bytes(): Buffer {
        return Buffer.concat(this.parts);
    }
}

function writeValue(o: Out, value: Value): void {
    o.u32(value.t);
    switch (value.t) {
        case T.U32:
            return o.u32(value.v);
        case T.I32:
            return o.i32(value.v);
        case T.F32:
            return o.f32(value.v);
        case T.BOOL:
            return o.push(Buffer.from([value.v ? 1 : 0]));
        case T.STRING:
            return o.str(value.v);
        case T.ARRAY:
            o.u32(value.of);
            o.u64(value.v.length);
            for (const e of value.v) {
                if (value.of === T.STRING) o.str(e as string);
                else if (value.of === T.F32) o.f32(e as number);
                else o.i32(e as number);
            }
            return;
        default: {
            const never: never = value;
            throw new Error(`unknown GGUF value ${JSON.stringify(never)}`);
        }
    }
}

/** Deterministic weights (mulberry32 + Box-Muller), so every build of the model is the same file. */
function gaussian(seed: number): () => number {
    let s = seed >>> 0;
    const uniform = () => {
        s = (s + 0x6d2b79f5) >>> 0;
        let t = s;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

const WORDS = "the a of and to in is it on for with as at by from this that model token local gateway filter light river stone cloud-free quiet green blue seven north window paper garden music silver orange winter summer bridge forest signal yellow simple random answer".split(" ");

/** SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then word pieces. */
function vocabulary(): { tokens: string[]; scores: number[]; types: number[]; firstWord: number } {
    const tokens = ["<unk>", "<s>", "</s>"];
    const types = [2, 3, 3];
    for (let b = 0; b < 256; b++) {
        tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
        types.push(6);
    }
    const firstWord = tokens.length;
    for (const w of WORDS) {
        tokens.push(`\u2581${w}`);
        types.push(1);
    }
    while (tokens.length < 320) {
        tokens.push(`\u2581w${tokens.length}`);
        types.push(1);
    }
    return { tokens, scores: tokens.map((_, i) => (i < firstWord ? 0 : -(i - firstWord))), types, firstWord };
}

export interface TinyModelOptions {
    /** Seed of the random weights (default 17). */
    readonly seed?: number;
}

/** The model as GGUF bytes. */
export function tinyGguf(opts: TinyModelOptions = {}): Buffer {
    const rand = gaussian(opts.seed ?? 17);
    const vocab = vocabulary();
    const n = vocab.tokens.length;
    const tensors: { name: string; dims: number[]; data: Float32Array }[] = [];
    const tensor = (name: string, dims: number[], fill: (i: number) => number) => {
        const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
        for (let i = 0; i < data.length; i++) data[i] = fill(i);
        tensors.push({ name, dims, data });
    };
    const ones = () => 1;
    const small = () => rand() * 0.1;
    tensor("token_embd.weight", [EMBED, n], () => rand());
    tensor("blk.0.attn_norm.weight", [EMBED], ones);
    tensor("blk.0.attn_q.weight", [EMBED, EMBED], small);
    tensor("blk.0.attn_k.weight", [EMBED, EMBED], small);
    tensor("blk.0.attn_v.weight", [EMBED, EMBED], small);
    tensor("blk.0.attn_output.weight", [EMBED, EMBED], small);
    tensor("blk.0.ffn_norm.weight", [EMBED], ones);
    tensor("blk.0.ffn_gate.weight", [EMBED, FEED_FORWARD], small);
    tensor("blk.0.ffn_up.weight", [EMBED, FEED_FORWARD], small);
    tensor("blk.0.ffn_down.weight", [FEED_FORWARD, EMBED], small);
    tensor("output_norm.weight", [EMBED], ones);
    // Row r (token r) holds elements r*EMBED .. r*EMBED+EMBED-1: zero for control and byte tokens.
    tensor("output.weight", [EMBED, n], (i) => (Math.floor(i / EMBED) < vocab.firstWord ? 0 : rand()));

    const kv: [string, Value][] = [
        ["general.architecture", { t: T.STRING, v: "llama" }],
        ["general.name", { t: T.STRING, v: "zto-tiny" }],
        ["general.alignment", { t: T.U32, v: ALIGNMENT }],
        ["llama.context_length", { t: T.U32, v: CONTEXT }],
        ["llama.embedding_length", { t: T.U32, v: EMBED }],
        ["llama.block_count", { t: T.U32, v: 1 }],
        ["llama.feed_forward_length", { t: T.U32, v: FEED_FORWARD }],
        ["llama.attention.head_count", { t: T.U32, v: HEADS }],
        ["llama.attention.head_count_kv", { t: T.U32, v: HEADS }],
        ["llama.rope.dimension_count", { t: T.U32, v: EMBED / HEADS }],
        ["llama.attention.layer_norm_rms_epsilon", { t: T.F32, v: 1e-5 }],
        ["llama.vocab_size", { t: T.U32, v: n }],
        ["tokenizer.ggml.model", { t: T.STRING, v: "llama" }],
        ["tokenizer.ggml.tokens", { t: T.ARRAY, of: T.STRING, v: vocab.tokens }],
        ["tokenizer.ggml.scores", { t: T.ARRAY, of: T.F32, v: vocab.scores }],
        ["tokenizer.ggml.token_type", { t: T.ARRAY, of: T.I32, v: vocab.types }],
        ["tokenizer.ggml.unknown_token_id", { t: T.U32, v: 0 }],
        ["tokenizer.ggml.bos_token_id", { t: T.U32, v: 1 }],
        ["tokenizer.ggml.eos_token_id", { t: T.U32, v: 2 }],
        ["tokenizer.ggml.add_bos_token", { t: T.BOOL, v: true }],
    ];

    const o = new Out();
    o.push(Buffer.from("GGUF", "ascii"));
    o.u32(3);
    o.u64(tensors.length);
    o.u64(kv.length);
    for (const [key, value] of kv) {
        o.str(key);
        writeValue(o, value);
    }
    let offset = 0;
    for (const t of tensors) {
        o.str(t.name);
        o.u32(t.dims.length);
        for (const d of t.dims) o.u64(d);
        o.u32(GGML_F32);
        o.u64(offset);
        offset += Math.ceil((t.data.length * 4) / ALIGNMENT) * ALIGNMENT;
    }
    o.pad();
    for (const t of tensors) {
        o.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
        o.pad();
    }
    return o.bytes();
}

export function writeTinyGguf(path: string, opts: TinyModelOptions = {}): void {
    writeFileSync(path, tinyGguf(opts));
}
