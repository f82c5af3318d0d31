import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PII_DETECTORS, type PiiDetector } from "../../components/filter/rules";
import { findPii, redact } from "../../filter/src/pii";

const types = (text: string, only: readonly PiiDetector[] = PII_DETECTORS) => findPii(text, only).map((m) => m.type);
const redacted = (text: string) => redact(text, findPii(text, PII_DETECTORS));

/** Per detector: texts it must find (exactly once) and look-alikes it must leave alone. */
const CASES: Record<PiiDetector, { positive: string[]; negative: string[] }> = {
    email: {
        positive: ["write to alice@example.com today", "x.y+tag@mail.example.co.uk", "<bob_smith@corp-mail.io>"],
        negative: ["@mention in chat", "user@localhost", "a@b.c", "npm i @types/node", "foo@bar", "email me at @ home"],
    },
    phone: {
        positive: ["call (555) 123-4567 now", "555-123-4567", "555.123.4567", "+1 555 123 4567", "+44 20 7946 0958", "+49 (30) 1234-5678"],
        negative: ["version 1.2.3", "2024-01-01", "10.0.0.1", "+12", "12345678", "pi is 3.14159265358979", "ISBN 978-3-16-148410-0"],
    },
    "payment-card": {
        positive: ["card 4111 1111 1111 1111 exp", "4111111111111111", "5500-0000-0000-0004", "amex 3782 822463 10005", "6011000990139424"],
        negative: ["4111 1111 1111 1112", "0000 0000 0000 0000", "1234567812345678", "order 12345678901234 shipped", "9111111111111111"],
    },
    iban: {
        positive: ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "pay to FR1420041010050500013M02606 please", "iban: NL91ABNA0417164300."],
        negative: ["DE89 3704 0044 0532 0130 01", "GB82WEST12345698765433", "AB12 is not an iban", "XX00 0000 0000 0000 0000"],
    },
    "us-ssn": {
        positive: ["ssn 123-45-6789", "SSN: 078-05-1120.", "id 234 56 7890 on file"],
        negative: ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "123-45-67890", "123-45 6789", "2024-05-1234-11"],
    },
    "aws-access-key": {
        positive: ["AKIAIOSFODNN7EXAMPLE", "key=ASIAY34FZKBOKMUTVV7A;"],
        negative: ["AKIAIOSFODNN7EXAMPL", "XAKIAIOSFODNN7EXAMPLE", "akiaiosfodnn7example"],
    },
    "aws-secret-key": {
        positive: ["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS Secret Access Key: \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\""],
        negative: ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = short"],
    },
    "github-token": {
        positive: ["token ghp_" + "A1b2".repeat(9), "gho_" + "z".repeat(36), "github_pat_" + "11ABCDEFG0".repeat(3)],
        negative: ["ghp_short", "xghp_" + "a".repeat(36), "ghx_" + "a".repeat(36)],
    },
    "slack-token": {
        positive: ["xoxb-123456789012-1234567890123-AbCdEfGhIjKl", "xoxp-1234567890-abcdef", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"],
        negative: ["xoxb-short", "xoxz-1234567890-abcdef", "https://hooks.slack.com/"],
    },
    "private-key": {
        positive: [
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nMIIEvQ (truncated paste",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOY\n-----END PGP PRIVATE KEY BLOCK-----",
        ],
        negative: ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----", "a private key is secret"],
    },
};

describe("PII detectors", () => {
    for (const [type, { positive, negative }] of Object.entries(CASES) as [PiiDetector, { positive: string[]; negative: string[] }][]) {
        test(`${type}: finds each positive example`, () => {
            for (const text of positive) assert.deepEqual(types(text, [type]), [type], JSON.stringify(text));
        });
        test(`${type}: leaves look-alikes alone`, () => {
            for (const text of negative) assert.deepEqual(types(text, [type]), [], JSON.stringify(text));
        });
    }

    test("a detector that is not enabled finds nothing", () => {
        assert.deepEqual(types("alice@example.com", ["phone"]), []);
    });
});

describe("redaction", () => {
    test("replaces each value with its typed placeholder, exactly", () => {
        assert.equal(redacted("Mail alice@example.com or call +44 20 7946 0958."), "Mail [REDACTED:email] or call [REDACTED:phone].");
        assert.equal(redacted("card 4111 1111 1111 1111, ssn 123-45-6789"), "card [REDACTED:payment-card], ssn [REDACTED:us-ssn]");
        assert.equal(redacted("IBAN DE89 3704 0044 0532 0130 00 thanks"), "IBAN [REDACTED:iban] thanks");
        assert.equal(redacted("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "aws_secret_access_key=[REDACTED:aws-secret-key]");
        assert.equal(redacted("key:\n-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\nbye"), "key:\n[REDACTED:private-key]\nbye");
        assert.equal(redacted("no personal data here"), "no personal data here");
    });

    test("overlaps resolve to one placeholder: the secret wins over the generic number", () => {
        const text = "-----BEGIN PRIVATE KEY-----\nalice@example.com 4111111111111111\n-----END PRIVATE KEY-----";
        assert.equal(redacted(text), "[REDACTED:private-key]");
        const matches = findPii("x alice@example.com y 555-123-4567 z", PII_DETECTORS);
        assert.deepEqual(matches.map((m) => m.type), ["email", "phone"]);
        for (let i = 1; i < matches.length; i++) assert.ok(matches[i]!.start >= matches[i - 1]!.end);
    });
});
