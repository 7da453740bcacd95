"""Hostile corpora, one per kind of value. Every route that takes such a value runs its corpus
(tests/integration/test_hostile_values.py), and the pure parsers run them too (tests/unit/test_values.py).
Grow a corpus when a new way to break a parser is found; every route that takes the value is then covered.
"""

from __future__ import annotations

HOSTILE_DATETIMES: list[object] = [
    "0001-01-01T00:00:00Z",  # stored as "1-01-01T…" before: every reader of the record then failed
    "0001-01-01T00:00:00+01:00",  # out of range once converted to UTC (OverflowError)
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T00:00:00Z",  # a day below datetime's limit: nothing could be added to it
    "0999-12-31T23:59:59Z",  # three-digit years were stored without four digits
    "1899-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-11-30T24:00:00Z",
    "2026-11-30T23:59:60Z",  # leap seconds are not representable
    "2026-11-30T10:00:00+24:00",
    "2026-11-30T10:00:00+05:60",
    "2026-11-30T10:00Z",  # no seconds
    "2026-11-30T10:00:00",  # no offset
    "2026-11-30",
    "2026-W48-1T10:00:00Z",  # ISO week dates are not RFC 3339
    "2026-11-30 10:00:00Z",
    "２０２６-11-30T10:00:00Z",  # full-width digits
    "2026-11-30T10:00:00.1234567890Z",
    " 2026-11-30T10:00:00Z",
    "2026-11-30T10:00:00Z\n",
    "+2026-11-30T10:00:00Z",
    "",
    "now",
    12345,
    None,
    True,
    ["2026-11-30T10:00:00Z"],
]

VALID_DATETIMES: dict[str, str] = {
    "2026-11-30T10:00:00Z": "2026-11-30T10:00:00.000Z",
    "2026-11-30t10:00:00.5z": "2026-11-30T10:00:00.500Z",
    "2026-11-30T10:00:00.123456789+01:30": "2026-11-30T08:30:00.123Z",
    "1900-01-01T00:00:00Z": "1900-01-01T00:00:00.000Z",
    "1900-01-01T01:00:00+01:00": "1900-01-01T00:00:00.000Z",
    "9999-12-30T23:59:59.999Z": "9999-12-30T23:59:59.999Z",
}

HOSTILE_NUMBERS: list[object] = [
    1e-300,  # underflows DynamoDB's 1e-130
    -1e-131,
    1.2345678901234567e300,
    1e126,
    10**126,
    int("9" * 39),  # 39 significant digits
    int("1" * 401),
]
"""Numbers JSON can carry that DynamoDB cannot store; bodies with NaN or Infinity are not JSON at all."""

VALID_NUMBERS: list[object] = [0, -0.0, 1e-130, -1e-130, 9.99e125, int("9" * 38), 10**125, 0.1, 123456789]

HOSTILE_QUERY_WHOLE_NUMBERS: list[str] = [
    "³",
    "²³⁴⁵",
    "٣",
    "３",
    "",
    " 5",
    "5 ",
    "+5",
    "-1",
    "0x10",
    "1e3",
    "1_0",
    "5.0",
]
"""Query-string values that str.isdigit() or int() half-accept."""

HOSTILE_SCHEDULES: list[object] = [
    "rate(3000000 days)",
    "rate(3661 days)",
    "rate(99999999999999 minutes)",
    "rate(99999999999999999999999999999999999999 hours)",
    "rate(0 minutes)",
    "rate(³ minutes)",
    "cron(0 0 31 2 ? *)",  # February 31st never comes
    "cron(0 0 29 2 ? 2100)",  # 2100 is not a leap year
    "cron(0 0 30 2 ? 2024-2199)",
    "cron(0 0 ? 2 6#5 2027)",  # no fifth Friday in February 2027
    "cron(0 0 1 1 ? 1999)",  # only in the past
    "cron(0 0 1 1 ? 2200)",
    "cron(³ 0 1 1 ? *)",
    "cron(0 0 ? * 2#٣ *)",
    "",
    None,
    7,
]

LINE_BREAKING_CHARACTERS: list[str] = ["\u2028", "\u2029", "\u0085", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e"]
"""Characters str.splitlines() breaks lines on, that CSV and JSON Lines treat as data."""

HOSTILE_SEARCH_TEXT: list[str] = [
    "*",  # no wildcards: a search is a prefix, never a pattern
    "%",
    ".*",
    "\\",
    "a\x00b",  # NUL
    "\x1b[31m",  # a terminal escape
    "\u202eevil",  # right-to-left override
    "\ufeff",  # a byte-order mark alone
    "a" * 200,  # the longest accepted
    "é" * 200,  # 200 characters, 400 bytes
    "😀" * 50,
    '{"any": []}',  # criteria syntax is text here
    "<img src=x onerror=alert(1)>",
    "' OR 1=1 --",
    "TENANT#",  # storage key syntax
    "ctc_00000000000000000000000000",
]
"""Search text (``q``): each is searched as the literal start of a value, and finds nothing here."""

INVALID_SEARCH_TEXT: list[str] = ["", " ", "\t\n", "a" * 201, "é" * 201]
"""Refused with a 422 naming ``q``: empty once trimmed, or longer than 200 characters."""

HOSTILE_URLS: list[object] = [
    "",
    " ",
    "hooks.example.com/in",  # no scheme
    "ftp://hooks.example.com/in",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "gopher://127.0.0.1:6379/_INFO",
    "http://10.0.0.5/in",  # private
    "https://192.168.1.1/in",
    "https://172.16.0.1/in",
    "https://169.254.169.254/latest/meta-data/",  # the instance metadata service
    "https://[fd00:ec2::254]/latest/",
    "https://[fe80::1]/in",  # link-local
    "https://0.0.0.0/in",
    "https://224.0.0.1/in",  # multicast
    "https://user:secret@hooks.example.com/in",  # credentials in the URL
    "https://hooks.example.com:99999/in",
    "https://hooks.example.com:0/in",
    "https://hooks.example.com/in#fragment",
    "https:///in",  # no host
    "https://" + "a" * 2_100 + ".example.com/",  # longer than 2,048
    "https://hooks.example.com/\x00",
    7,
    None,
    ["https://hooks.example.com/in"],
]
"""Webhook URLs refused with a 422 naming ``url`` (on every stage: the local one allows loopback only)."""

HOSTILE_DURATIONS: list[object] = [
    "", "P", "PT", "P1DT", "P1Y", "P1M", "PT1.5H", "-PT1H", "pt1h", "1h", "60d", "P99999999D",
    "PT" + "9" * 40 + "S", "P1D\n", " P1D", 3600, 1.5, None, True, ["PT1H"], {"hours": 1},
]  # fmt: skip
"""ISO 8601 durations refused with a 422 naming the field (or out of the field's bounds)."""

HOSTILE_TIME_ZONES: list[object] = [
    "", " ", "Europe/Paris ", "europe/paris", "Europe/Nowhere", "Mars/Olympus_Mons", "+05:00", "GMT+5", "CEST",
    "../../etc/passwd", "/etc/localtime", "Europe/../Europe/Paris", "Europe/Paris\x00", "Europe\\Paris",
    "Europe/Paris/", "A" * 300, "Ｅｕｒｏｐｅ/Paris", 7, True, ["UTC"], {"zone": "UTC"},
]  # fmt: skip
"""Refused with a 422 naming the field: only IANA names as the time zone database spells them."""
