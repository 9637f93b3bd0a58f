"""Values as Bob's Go clients see them, for the re-enactments in this package.

Only what wendy and the Terraform provider use: `encoding/json` (Decoder.Decode, Unmarshal
into typed targets, Marshal, MarshalIndent, Encoder.Encode), `gopkg.in/yaml.v3` decoding
into `any`, `reflect.DeepEqual`, and `net/url`'s JoinPath and Values.Encode. The type rules
are Go's; syntax-error texts are paraphrased (Go's exact wording is not reproduced).

The difference that matters most: JSON numbers decoded into `any` are float64, YAML
integers decoded into `any` are int, and DeepEqual tells them apart (8080 != 8080.0).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus, urlsplit

import yaml


class GoError(Exception):
    """An error value a Go function would return; str() is what Go would print."""


# ---------------------------------------------------------------- encoding/json decoding


class _Number(str):
    """A JSON number literal, kept as written until its Go target type decides."""


def _reject_constant(name: str) -> Any:
    raise GoError(f"invalid character '{name[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_float=_Number, parse_int=_Number, parse_constant=_reject_constant)
_JSON_SPACE = " \t\n\r"


def _parse(text: str, start: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise GoError(f"invalid JSON: {exc.msg} (offset {exc.pos})") from None


def decode_first(data: bytes) -> Any:
    """json.NewDecoder(r).Decode(&v): the first JSON value of the stream; the rest is not
    read. An empty stream is io.EOF."""
    text = data.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    if start == len(text):
        raise GoError("EOF")
    value, _ = _parse(text, start)
    return value


def unmarshal(data: bytes) -> Any:
    """json.Unmarshal(data, &v): exactly one JSON value, whitespace around it allowed."""
    text = data.decode("utf-8", "replace")
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    if start == len(text):
        raise GoError("unexpected end of JSON input")
    value, end = _parse(text, start)
    if text[end:].strip(_JSON_SPACE):
        raise GoError("invalid character after top-level value")
    return value


# Target types, by the Go type a client decodes into.
ANY = "interface {}"
STRING = "string"
INT64 = "int64"


@dataclass(frozen=True)
class Map:
    elem: Any
    name: str = ""

    def __str__(self) -> str:
        return self.name or f"map[string]{self.elem}"


@dataclass(frozen=True)
class Slice:
    elem: Any
    name: str = ""

    def __str__(self) -> str:
        return self.name or f"[]{self.elem}"


def _kind(value: Any) -> str:
    if isinstance(value, _Number):
        return "number"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


@dataclass
class _Errors:
    first: GoError | None = None

    def type_error(self, value: Any, target: Any) -> None:
        if self.first is None:
            detail = f"number {value}" if isinstance(value, _Number) else _kind(value)
            self.first = GoError(f"json: cannot unmarshal {detail} into Go value of type {target}")


def _to_float(literal: str, errors: _Errors) -> float:
    result = float(literal)
    if math.isinf(result):
        errors.type_error(_Number(literal), "float64")
        return 0.0
    return result


def _into(value: Any, target: Any, errors: _Errors) -> Any:
    if target == ANY:
        if isinstance(value, _Number):
            return _to_float(value, errors)
        if isinstance(value, list):
            return [_into(v, ANY, errors) for v in value]
        if isinstance(value, dict):
            return {k: _into(v, ANY, errors) for k, v in value.items()}
        return value
    if value is None:  # null into a fresh target leaves its zero value
        return {STRING: "", INT64: 0}.get(target) if isinstance(target, str) else None
    if target == STRING:
        if isinstance(value, str) and not isinstance(value, _Number):
            return str(value)
        errors.type_error(value, target)
        return ""
    if target == INT64:
        if (
            isinstance(value, _Number)
            and re.fullmatch(r"-?\d+", value)
            and -(2**63) <= int(value) < 2**63
        ):
            return int(value)
        errors.type_error(value, target)
        return 0
    if isinstance(target, Map):
        if not isinstance(value, dict):
            errors.type_error(value, target)
            return None
        return {k: _into(v, target.elem, errors) for k, v in value.items()}
    if isinstance(target, Slice):
        if not isinstance(value, list):
            errors.type_error(value, target)
            return None
        return [_into(v, target.elem, errors) for v in value]
    raise TypeError(f"unknown target {target!r}")


def decode_into(value: Any, target: Any) -> Any:
    """Decodes an already parsed JSON value into a Go target type as encoding/json does: a
    value of the wrong kind leaves the zero value, decoding goes on, and the first such
    error is returned at the end (raised here, as the clients bail out on it)."""
    errors = _Errors()
    result = _into(value, target, errors)
    if errors.first is not None:
        raise errors.first
    return result


@dataclass
class Struct:
    """A Go struct decoded into in place (json.Unmarshal(data, &s) on a reused variable):
    `fields` maps Go field name -> (json key, target type); values persist between calls."""

    fields: dict[str, tuple[str, Any]]
    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for go_name, (_key, target) in self.fields.items():
            self.values.setdefault(go_name, {STRING: "", INT64: 0}.get(target))

    def unmarshal(self, data: bytes) -> None:
        value = unmarshal(data)
        if value is None:
            return
        if not isinstance(value, dict):
            raise GoError(f"json: cannot unmarshal {_kind(value)} into Go value of type struct")
        errors = _Errors()
        for key, item in value.items():
            go_name = self._field_for(key)
            if go_name is None:
                continue
            if item is None:  # null leaves a field as it was
                continue
            target = self.fields[go_name][1]
            before = errors.first
            converted = _into(item, target, errors)
            if errors.first is before:
                self.values[go_name] = converted
        if errors.first is not None:
            raise errors.first

    def _field_for(self, key: str) -> str | None:
        for go_name, (json_key, _t) in self.fields.items():
            if json_key == key:
                return go_name
        for go_name, (json_key, _t) in self.fields.items():
            if json_key.casefold() == key.casefold():
                return go_name
        return None


# ---------------------------------------------------------------- encoding/json encoding


def _go_float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        raise GoError(f"json: unsupported value: {_go_float_name(value)}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(value)  # shortest digits, as Go's 'e' with precision -1
        mantissa, _, exponent = text.partition("e")
        sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
        if sign not in "+-":
            sign, digits = "+", exponent.lstrip("0") or "0"
        return f"{mantissa}e{sign}{digits.zfill(2) if sign == '+' else digits}"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _go_float_name(value: float) -> str:
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _go_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif code < 0x20 or ch in "<>&" or ch in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:  # not valid UTF-8: Go writes the replacement char
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class InterfaceKeyedMap(dict):
    """What yaml.v3 makes of a mapping with a non-string key: map[interface{}]interface{},
    which encoding/json refuses to encode."""


def marshal(value: Any, *, indent: str | None = None, _depth: int = 0) -> str:
    """json.Marshal (indent None) or json.MarshalIndent(v, "", indent): keys sorted, <, >
    and & escaped, float64 in Go's shortest form."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, InterfaceKeyedMap):
        raise GoError("json: unsupported type: map[interface {}]interface {}")
    if isinstance(value, (list, tuple)):
        items = [marshal(v, indent=indent, _depth=_depth + 1) for v in value]
        return _wrap("[", "]", items, indent, _depth)
    if isinstance(value, dict):
        items = []
        for key in sorted(value):
            sep = ": " if indent is not None else ":"
            items.append(
                _go_string(key) + sep + marshal(value[key], indent=indent, _depth=_depth + 1)
            )
        return _wrap("{", "}", items, indent, _depth)
    raise GoError(f"json: unsupported type: {type(value).__name__}")


def _wrap(open_: str, close: str, items: list[str], indent: str | None, depth: int) -> str:
    if not items:
        return open_ + close
    if indent is None:
        return open_ + ",".join(items) + close
    inner = "\n" + indent * (depth + 1)
    return open_ + inner + ("," + inner).join(items) + "\n" + indent * depth + close


def encode(value: Any) -> str:
    """json.NewEncoder(w).Encode(v): Marshal plus a newline."""
    return marshal(value) + "\n"


# ---------------------------------------------------------------- gopkg.in/yaml.v3


class _GoYamlLoader(yaml.SafeLoader):
    """yaml.v3's resolution of plain scalars decoded into `any`: only true/false (three
    spellings) are booleans, never yes/no/on/off; timestamps stay strings; integers are
    Go's strconv.ParseInt(s, 0, 64) after removing underscores (so 0777 is octal)."""


_GO_NUMBER = "tag:bob-clients:go-number"
_GO_BOOL = "tag:bob-clients:go-bool"
_GO_SPECIAL_FLOAT = "tag:bob-clients:go-special-float"
_DROPPED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:value",
}
_GoYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GoYamlLoader.add_implicit_resolver(
    _GO_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_GoYamlLoader.add_implicit_resolver(
    _GO_SPECIAL_FLOAT, re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+.")
)
_GoYamlLoader.add_implicit_resolver(
    _GO_NUMBER, re.compile(r"^[-+.0-9].*$", re.S), list("-+.0123456789")
)
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def go_parse_int(text: str, bits: int = 64, *, signed: bool = True) -> int | None:
    """strconv.ParseInt(text, 0, bits) (or ParseUint): None where Go returns an error."""
    sign = 1
    body = text
    if signed and body[:1] in "+-" and body:
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    base = 10
    lowered = body[:2].lower()
    if lowered in ("0x", "0o", "0b"):
        base = {"0x": 16, "0o": 8, "0b": 2}[lowered]
        body = body[2:]
    elif len(body) > 1 and body[0] == "0":
        base = 8
        body = body[1:]
    digits = "0123456789abcdef"[:base]
    if not body or any(c.lower() not in digits for c in body):
        return None
    value = sign * int(body, base)
    if signed:
        return value if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else None
    return value if 0 <= value < 2**bits else None


def _go_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    plain = node.value.replace("_", "")
    for signed in (True, False):
        as_int = go_parse_int(plain, signed=signed)
        if as_int is not None:
            return as_int
    if _YAML_FLOAT.match(plain):
        return float(plain)
    return node.value


def _go_special_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = node.value.lower()
    return math.nan if "nan" in text else (-math.inf if text.startswith("-") else math.inf)


def _go_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    pairs = [
        (loader.construct_object(k, deep=True), loader.construct_object(v, deep=True))
        for k, v in node.value
    ]
    target: dict = dict() if all(isinstance(k, str) for k, _ in pairs) else InterfaceKeyedMap()
    for key, value in pairs:
        target[key] = value
    return target


_GoYamlLoader.add_constructor(_GO_NUMBER, _go_number)
_GoYamlLoader.add_constructor(_GO_SPECIAL_FLOAT, _go_special_float)
_GoYamlLoader.add_constructor(_GO_BOOL, lambda loader, node: node.value.lower() == "true")
_GoYamlLoader.add_constructor("tag:yaml.org,2002:map", _go_mapping)


def yaml_decode_first(text: str) -> Any:
    """yaml.NewDecoder(r).Decode(&v) into `any`: the first document only."""
    for document in yaml.load_all(text, Loader=_GoYamlLoader):  # noqa: S506 - safe loader
        return document
    raise GoError("EOF")


# ---------------------------------------------------------------- reflect.DeepEqual


def deep_equal(a: Any, b: Any) -> bool:
    """reflect.DeepEqual on decoded values: int and float64 differ, a nil map differs from
    an empty one, map[string]any differs from map[interface{}]any."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where deep_equal(a, b) fails, for reports (not something the clients print)."""
    if type(a) is not type(b):
        return [f"{path or '.'}: {a!r} ({_go_type(a)}) vs {b!r} ({_go_type(b)})"]
    if isinstance(a, dict):
        found = []
        for key in sorted(a.keys() | b.keys(), key=str):
            where = f"{path}.{key}"
            if key not in a:
                found.append(f"{where}: missing vs {b[key]!r}")
            elif key not in b:
                found.append(f"{where}: {a[key]!r} vs missing")
            else:
                found.extend(differences(a[key], b[key], where))
        return found
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path or '.'}: {len(a)} items vs {len(b)} items ({a!r} vs {b!r})"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path or '.'}: {a!r} vs {b!r}"]


def _go_type(value: Any) -> str:
    return {
        bool: "bool",
        int: "int",
        float: "float64",
        str: "string",
        type(None): "nil",
        list: "[]interface {}",
        dict: "map[string]interface {}",
        InterfaceKeyedMap: "map[interface {}]interface {}",
    }.get(type(value), "?")


# ---------------------------------------------------------------- fmt, strings, strconv


def sprint_map(mapping: dict[str, str]) -> str:
    """fmt.Sprint of a map[string]string: keys sorted."""
    return "map[" + " ".join(f"{k}:{mapping[k]}" for k in sorted(mapping)) + "]"


def trim_space(text: str) -> str:
    """strings.TrimSpace: Unicode white space (unicode.IsSpace) at both ends."""

    def space(ch: str) -> bool:
        return ch in "\t\n\v\f\r \x85\xa0" or unicodedata.category(ch) in ("Zs", "Zl", "Zp")

    start, end = 0, len(text)
    while start < end and space(text[start]):
        start += 1
    while end > start and space(text[end - 1]):
        end -= 1
    return text[start:end]


def format_float_g(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64): shortest digits; %e when the decimal exponent
    is below -4 or at least 6 (so 1e6 is "1e+06")."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1, value) < 0 else ""
    if value == 0:
        return sign + "0"
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    point = len(digit_tuple) + exponent  # digits are 0.d1d2... x 10^point
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    decimals = max(len(digits) - point, 0)
    return sign + format(Decimal(repr(abs(value))), f".{decimals}f")


# ---------------------------------------------------------------- net/url


_PATH_VALID_ENCODED = set("!$&'()*+,;=:@[]%")


def _should_escape_path(ch: str) -> bool:
    if ch.isascii() and (ch.isalnum()):
        return False
    if ch in "-_.~":
        return False
    if ch in "$&+,/:;=@":
        return False
    return True  # '?' and everything else


def _escape_path(path: str) -> str:
    out = []
    for byte in path.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        out.append(f"%{byte:02X}" if byte >= 0x80 or _should_escape_path(ch) else ch)
    return "".join(out)


def _unescape(text: str) -> str:
    raw = bytearray()
    i = 0
    data = text.encode("utf-8", "surrogateescape")
    while i < len(data):
        if data[i] == ord("%"):
            pair = data[i + 1 : i + 3].decode("ascii", "replace")
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise GoError(f'invalid URL escape "{data[i : i + 3].decode(errors="replace")}"')
            raw.append(int(pair, 16))
            i += 3
        else:
            raw.append(data[i])
            i += 1
    return raw.decode("utf-8", "surrogateescape")


def _valid_encoded(text: str) -> bool:
    return all(ch in _PATH_VALID_ENCODED or not _should_escape_path(ch) for ch in text)


def _clean(path: str) -> str:
    """path.Clean."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = ("/" if rooted else "") + "/".join(parts)
    return cleaned or ("/" if rooted else ".")


def _path_join(*elems: str) -> str:
    """path.Join: non-empty elements joined, then cleaned; "" when all are empty."""
    joined = "/".join(e for e in elems if e)
    return _clean(joined) if joined else ""


def join_path(base: str, *elems: str) -> str:
    """url.JoinPath(base, elems...): the path cleaned of ./ and ../ and double slashes,
    then escaped as URL.String() does, so "{group}" goes out as "%7Bgroup%7D"."""
    parts = urlsplit(base)
    first = parts.path
    if not first.startswith("/"):
        joined = _path_join("/" + first, *elems)[1:]
    else:
        joined = _path_join(first, *elems)
    if elems and elems[-1].endswith("/") and not joined.endswith("/"):
        joined += "/"
    unescaped = _unescape(joined)
    raw = "" if joined == _escape_path(unescaped) else joined
    if raw and _valid_encoded(raw) and _unescape(raw) == unescaped:
        escaped = raw
    else:
        escaped = _escape_path(unescaped)
    result = f"{parts.scheme}://{parts.netloc}"
    if escaped and not escaped.startswith("/") and parts.netloc:
        result += "/"
    result += escaped
    if parts.query:
        result += "?" + parts.query
    return result


def values_encode(values: dict[str, str]) -> str:
    """url.Values.Encode: keys sorted, each part query-escaped (space as +)."""
    return "&".join(
        f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(values.items())
    )
