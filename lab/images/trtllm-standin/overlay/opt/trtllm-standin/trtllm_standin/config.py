# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read ``--extra_llm_api_options`` files: PyYAML when installed, else JSON or a small YAML subset."""

from __future__ import annotations

import json
import re

try:
    import yaml  # python3-yaml in the image
except ImportError:  # pragma: no cover - exercised by a unit test that hides yaml
    yaml = None


class ConfigError(Exception):
    """The file is not valid YAML/JSON; ``exc_type`` names the exception the real server shows."""

    def __init__(self, exc_type: str, message: str):
        super().__init__(message)
        self.exc_type = exc_type
        self.message = message


_INT_RE = re.compile(r"^[-+]?\d+$")
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def _scalar(text: str):
    text = text.strip()
    if not text or text in ("~", "null", "Null", "NULL"):
        return None
    if text[0] in "'\"" and text[-1] == text[0] and len(text) >= 2:
        return text[1:-1]
    if text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            pass
        inner = text[1:-1].strip()
        if text[0] == "[":
            return [_scalar(part) for part in inner.split(",")] if inner else []
        result = {}
        for part in inner.split(","):
            if part.strip():
                key, _sep, value = part.partition(":")
                result[key.strip()] = _scalar(value)
        return result
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT_RE.match(text):
        return int(text)
    if _FLOAT_RE.match(text):
        return float(text)
    return text


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if char in "'\"":
            quote = None if quote == char else (quote or char)
        elif char == "#" and quote is None and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line.rstrip()


def parse_yaml_subset(text: str):
    """Block mappings/lists of scalars by indentation, flow ``{}``/``[]`` of scalars; enough for LLM API options."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if line.strip() in ("", "---"):
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            raise ConfigError("yaml.scanner.ScannerError", f"found character '\\t' that cannot start any token (line {number})")
        lines.append((len(line) - len(line.lstrip()), line.strip(), number))
    if not lines:
        return None
    value, index = _parse_block(lines, 0, lines[0][0])
    if index != len(lines):
        raise ConfigError("yaml.parser.ParserError", f"expected '<document start>', but found something else (line {lines[index][2]})")
    return value


def _parse_block(lines, index, indent):
    if lines[index][1].startswith("- ") or lines[index][1] == "-":
        result = []
        while index < len(lines) and lines[index][0] == indent and (lines[index][1].startswith("- ") or lines[index][1] == "-"):
            item = lines[index][1][1:].strip()
            index += 1
            if item:
                result.append(_scalar(item))
            elif index < len(lines) and lines[index][0] > indent:
                value, index = _parse_block(lines, index, lines[index][0])
                result.append(value)
            else:
                result.append(None)
        return result, index
    result = {}
    while index < len(lines) and lines[index][0] == indent:
        _ind, content, number = lines[index]
        key, sep, rest = content.partition(":")
        if not sep or (rest and not rest.startswith(" ")):
            raise ConfigError("yaml.scanner.ScannerError", f"mapping values are not allowed here or a ':' is missing (line {number})")
        key = _scalar(key)
        index += 1
        if rest.strip():
            result[key] = _scalar(rest)
        elif index < len(lines) and lines[index][0] > indent:
            result[key], index = _parse_block(lines, index, lines[index][0])
        else:
            result[key] = None
    if index < len(lines) and lines[index][0] > indent:
        raise ConfigError("yaml.parser.ParserError", f"bad indentation of a mapping entry (line {lines[index][2]})")
    return result, index


def load_options_file(path: str):
    """Parse the file the way ``yaml.safe_load`` would (None for an empty file)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if yaml is not None:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"yaml.{type(exc).__module__.rsplit('.', maxsplit=1)[-1]}.{type(exc).__name__}", str(exc)) from exc
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise ConfigError("json.decoder.JSONDecodeError", str(exc)) from exc
    return parse_yaml_subset(text)
