import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readJsonLines } from "../../scripts/sandbox/json-log";
import { splitSyslogStream, startStubSyslog, type SyslogEntry } from "../../scripts/sandbox/stub-syslog";

const dir = mkdtempSync(join(tmpdir(), "zto-syslog-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function eventually<T>(probe: () => T[], count: number): Promise<T[]> {
    const deadline = Date.now() + 2000;
    while (probe().length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return probe();
}

test("splitSyslogStream handles octet counting, newline framing and partial frames", () => {
    const a = "<190>1 2026-01-01T00:00:00Z h app - - - é first";
    const counted = `${Buffer.byteLength(a)} ${a}`;
    const whole = splitSyslogStream(Buffer.from(`${counted}<14>second\n<14>thi`));
    assert.deepEqual(whole.records, [a, "<14>second"]);
    assert.equal(whole.rest.toString(), "<14>thi");
    const partial = splitSyslogStream(Buffer.from(counted).subarray(0, 20));
    assert.deepEqual(partial.records, []);
    assert.equal(partial.rest.length, 20);
});

test("UDP and TCP stand-ins record every message as a JSON line", async () => {
    const udpLog = join(dir, "udp.jsonl");
    const udp = await startStubSyslog("udp", udpLog);
    assert.match(udp.address, /^udp:\/\/127\.0\.0\.1:\d+$/);
    const sender = createSocket("udp4");
    const port = Number(udp.address.split(":").at(-1));
    for (const m of ["<190>one", "<190>two\n"]) await new Promise<void>((r) => sender.send(m, port, "127.0.0.1", () => r()));
    sender.close();
    assert.deepEqual((await eventually(() => readJsonLines<SyslogEntry>(udpLog), 2)).map((e) => e.message), ["<190>one", "<190>two"]);
    await udp.close();

    const tcpLog = join(dir, "tcp.jsonl");
    const tcp = await startStubSyslog("tcp", tcpLog);
    const s = connect({ host: "127.0.0.1", port: Number(tcp.address.split(":").at(-1)) });
    s.write("<14>a\n<14>");
    s.write("b\n11 <14>counted");
    assert.deepEqual((await eventually(() => readJsonLines<SyslogEntry>(tcpLog), 3)).map((e) => e.message), ["<14>a", "<14>b", "<14>counted"]);
    await tcp.close(); // an open sender must not keep close() waiting
    s.destroy();
});
