/**
 * Tailscale policy files are HuJSON: JSON plus comments and trailing commas. This strips both
 * (outside strings) and hands the rest to JSON.parse, so a malformed ACL is reported, not guessed.
 */
export function parseHuJson(text: string): unknown {
    let out = "";
    let i = 0;
    while (i < text.length) {
        const c = text[i];
        if (c === '"') {
            const start = i++;
            while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
            out += text.slice(start, ++i);
        } else if (c === "/" && text[i + 1] === "/") {
            while (i < text.length && text[i] !== "\n") i++;
        } else if (c === "/" && text[i + 1] === "*") {
            const end = text.indexOf("*/", i + 2);
            if (end < 0) throw new SyntaxError("unterminated /* comment");
            i = end + 2;
        } else {
            // A comma directly before a closing bracket is structural here (we are outside strings).
            if (c === "}" || c === "]") {
                let j = out.length;
                while (j > 0 && /\s/.test(out[j - 1])) j--;
                if (out[j - 1] === ",") out = out.slice(0, j - 1) + out.slice(j);
            }
            out += c;
            i++;
        }
    }
    return JSON.parse(out);
}
