"""A tiny InfluxDB line-protocol parser for the tests (escapes as InfluxDB 1.x reads them)."""

from __future__ import annotations


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes and not escaped by a backslash; escapes kept."""
    parts, start, quoted, i = [], 0, False, 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ',= "\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _value(text: str) -> float | int | str | bool:
    if text.startswith('"'):
        assert text.endswith('"') and len(text) >= 2, text
        return _unescape(text[1:-1])
    if text.endswith("i"):
        return int(text[:-1])
    if text in ("t", "true", "f", "false"):
        return text.startswith("t")
    return float(text)


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, float | int | str | bool], int]:
    """``(measurement, tags, fields, timestamp)`` of one line."""
    head, fields_text, ts = _split(line, " ")
    measurement, *tag_parts = _split(head, ",")
    tags = {}
    for part in tag_parts:
        key, value = _split(part, "=")
        tags[_unescape(key)] = _unescape(value)
    fields = {}
    for part in _split(fields_text, ","):
        key, value = part.split("=", 1) if "\\" not in part else _key_value(part)
        fields[_unescape(key)] = _value(value)
    return _unescape(measurement), tags, fields, int(ts)


def _key_value(part: str) -> tuple[str, str]:
    i = 0
    while i < len(part):
        if part[i] == "\\":
            i += 2
            continue
        if part[i] == "=":
            return part[:i], part[i + 1 :]
        i += 1
    raise ValueError(part)
