/**
 * `npm run usage`: the table from a real ledger (written by the filter's own store), the CLI's
 * refusals, and the HTML report rendered in headless Debian Chromium with every network request
 * refused, proving it is self-contained. The screenshot is kept in test-artifacts/usage/.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { BudgetStore } from "../../filter/src/budget/store";
import { usageLines, usageTable } from "../../scripts/lib/usage-report";
import { CHROMIUM, CHROMIUM_FLAGS } from "./browser";

const REPO_ROOT = join(__dirname, "..", "..");
const ARTIFACTS = join(REPO_ROOT, "test-artifacts", "usage");
const dir = mkdtempSync(join(tmpdir(), "zto-usage-"));
const storeFile = join(dir, "budgets.db");
const run = promisify(execFile);
const usage = (args: string[]) => run(process.execPath, ["--import", "tsx", join(REPO_ROOT, "scripts", "usage.ts"), ...args], { cwd: REPO_ROOT });

before(() => {
    const store = BudgetStore.open(storeFile);
    const day = (d: number, h: number) => Date.UTC(2026, 10, d, h);
    const rows = [
        { subject: "user:alice@example.com", groups: ["ml-eng"], model: "llama3.2:3b", startedAt: day(2, 9), reserved: 500, input: 20, output: 80 },
        { subject: "user:alice@example.com", groups: ["ml-eng"], model: "qwen2.5:7b", startedAt: day(2, 10), reserved: 900, input: 100, output: 300 },
        { subject: "user:bob@example.com", groups: [], model: "llama3.2:3b", startedAt: day(3, 11), reserved: 400, input: 10, output: 40 },
        { subject: "user:<script>bob</script>", groups: ["x"], model: "llama3.2:3b", startedAt: day(3, 12), reserved: 300, input: undefined, output: undefined },
    ];
    for (const r of rows) {
        const { id } = store.reserve({ subject: r.subject, groups: r.groups, model: r.model, endpoint: "chat", startedAt: r.startedAt, reserved: r.reserved });
        if (r.input !== undefined) store.settle(id, r.input, r.output, r.input + r.output!);
    }
    store.close();
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("npm run usage", () => {
    test("prints tokens per day, user, group and model; open requests count their reservation", async () => {
        const { stdout } = await usage(["--store", storeFile]);
        const lines = stdout.trimEnd().split("\n");
        assert.match(lines[0]!, /^day\s+user\s+group\s+model\s+requests\s+input\s+output\s+charged$/);
        assert.match(stdout, /2026-11-02\s+user:alice@example\.com\s+ml-eng\s+llama3\.2:3b\s+1\s+20\s+80\s+100\n/);
        assert.match(stdout, /2026-11-03\s+user:bob@example\.com\s+-\s+llama3\.2:3b\s+1\s+10\s+40\s+50\n/);
        assert.match(stdout, /2026-11-03\s+user:<script>bob<\/script>\s+x\s+llama3\.2:3b\s+1\s+0\s+0\s+300\n/);
        assert.equal(lines.length, 5);
        const since = await usage(["--store", storeFile, "--since", "2026-11-03"]);
        assert.equal(since.stdout.trimEnd().split("\n").length, 3);
    });

    test("bad input exits 2 naming it; a missing store is an error, not an empty report", async () => {
        for (const [args, says] of [
            [["--store", join(dir, "nope.db")], /budget store .*nope\.db is missing/],
            [["--store", storeFile, "--since", "yesterday"], /--since must be a day/],
            [[], /--store is required/],
            [["--store", storeFile, "--bogus"], /bogus/],
        ] as const) {
            await assert.rejects(usage([...args]), (e: { code?: number; stderr?: string }) => {
                assert.equal(e.code, 2);
                assert.match(e.stderr!, says);
                assert.ok(!/\n\s+at /.test(e.stderr!), "no stack trace");
                return true;
            });
        }
    });

    test("the HTML report renders in headless Chromium with no network request at all", async () => {
        assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is required (Debian package chromium)`);
        const html = join(dir, "report.html");
        await usage(["--store", storeFile, "--html", html]);
        const text = readFileSync(html, "utf8");
        assert.ok(!/https?:\/\//.test(text.replaceAll(`xmlns="http://www.w3.org/2000/svg"`, "")), "no URL to fetch");
        assert.ok(!text.includes("<script>bob"), "user names are escaped");
        const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS] });
        try {
            const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
            const requests: string[] = [];
            await page.route("**/*", (route) => {
                const url = route.request().url();
                if (url.startsWith("file://")) return route.continue();
                requests.push(url);
                return route.abort();
            });
            await page.goto(`file://${html}`);
            assert.equal(await page.title(), "Token usage");
            const charts = await page.$$eval("svg", (svgs) => svgs.map((s) => ({ label: s.getAttribute("aria-label"), bars: s.querySelectorAll("rect").length, width: s.getBoundingClientRect().width })));
            assert.deepEqual(charts.map((c) => [c.label, c.bars]), [["Charged tokens per user", 3], ["Charged tokens per model", 2]]);
            assert.ok(charts.every((c) => c.width > 100), "the charts have a size on screen");
            // The largest user's bar is the widest.
            const widths = await page.$$eval("svg:first-of-type rect", (rects) => rects.map((r) => Number(r.getAttribute("width"))));
            assert.equal(widths[0], Math.max(...widths));
            assert.equal(await page.locator("tbody tr").count(), 4);
            mkdirSync(ARTIFACTS, { recursive: true });
            const shot = join(ARTIFACTS, "usage-report.png");
            await page.screenshot({ path: shot, fullPage: true });
            assert.ok(statSync(shot).size > 1000);
            assert.deepEqual(requests, [], "the report fetched nothing");
        } finally {
            await browser.close();
        }
    });

    test("the table is a pure function of the rows", () => {
        assert.equal(usageTable(usageLines([])), "day  user  group  model  requests  input  output  charged\n");
    });
});
