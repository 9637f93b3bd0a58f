"""How `climate` (lispyclouds/climate) turns an OpenAPI document into a cobra command tree,
as wendy uses it: re-enacted over a parsed document, no Go involved.

From climate's cobra.go and common.go (lib.go in older versions):

- `BootstrapV3Cobra` walks the paths in document order and each path item's operations
  (`item.GetOperations()`). An operation with `x-cli-ignored: true` is skipped; one whose
  operationId has no handler in the map it is given is skipped too (a warning, "No
  handler defined, skipping"). Every other one becomes a command named by `x-cli-name`
  (the operationId when absent), with `x-cli-aliases` and `x-cli-hidden`, under a group
  command named by `x-cli-group` (at the root when absent).
- `addParams` makes one flag per entry of **`op.Parameters`: the operation's own
  parameters**. Parameters declared on the path item are never read, so a path
  parameter declared there gets no flag and its `{name}` stays in the path.
  A flag's type is the first `type` of the parameter's schema (string when the parameter
  has no schema): string, integer, number and boolean make String/Int/Float64/Bool flags;
  any other type (array, object) makes no flag ("TODO: Unhandled param"). A schema
  without a `type` panics (`schema.Type[0]`). `required: true` makes the flag required.
- `makeRequestBody` makes one string flag for the request body, named by the body's own
  `x-cli-name` ("climate-data" when absent), required when the body is. The body is
  never parsed: whatever the user passes is handed to the handler as a string.
- Two flags of one command with the same name panic in pflag ("flag redefined").
- At run time `interpolatePathCobra` replaces, for each path parameter in order, the
  regular expression `({name})+` in the path template with the flag's value
  (`regexp.ReplaceAllString`, so `$` in a value is template syntax). Query, header and
  cookie parameters are only listed in HandlerData; the handler reads their flags
  itself. The result is `HandlerData.Path`, which wendy joins to its endpoint.
- Commands with the same name in one group are all added; cobra's `findNext` returns the
  first one (in document order) whose name or alias matches, so later ones are
  unreachable. Group commands are added after the root-level ones.

libopenapi resolves local `$ref`s before climate sees parameters and bodies; so does this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.clients.golang import GoError, format_float_g, go_parse_int

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
FLAG_TYPES = ("string", "integer", "number", "boolean")
DEFAULT_BODY_FLAG = "climate-data"


class ClimatePanic(Exception):
    """A Go panic while bootstrapping: wendy dies before running any command (exit 2)."""


class ClimateError(GoError):
    """An error cobra prints as `Error: ...` before exiting 1."""


@dataclass(frozen=True)
class Flag:
    name: str
    type: str  # string | integer | number | boolean
    location: str  # path | query | header | cookie | body
    required: bool = False

    @property
    def zero(self) -> Any:
        return {"string": "", "integer": 0, "number": 0.0, "boolean": False}[self.type]


@dataclass(frozen=True)
class Command:
    group: str | None
    name: str
    operation_id: str
    method: str  # lower case, as libopenapi's GetOperations() keys them
    path: str  # the template, as in the document
    aliases: tuple[str, ...] = ()
    hidden: bool = False
    flags: tuple[Flag, ...] = ()
    body_flag: Flag | None = None
    # Parameters climate saw but made no flag for (array or object schemas).
    unhandled: tuple[str, ...] = ()

    @property
    def path_params(self) -> tuple[Flag, ...]:
        return tuple(f for f in self.flags if f.location == "path")

    def flag(self, name: str) -> Flag | None:
        for candidate in self.all_flags:
            if candidate.name == name:
                return candidate
        return None

    @property
    def all_flags(self) -> tuple[Flag, ...]:
        return self.flags + ((self.body_flag,) if self.body_flag else ())

    def matches(self, word: str) -> bool:
        return word == self.name or word in self.aliases


@dataclass
class CommandTable:
    """The command tree: `commands` in the order cobra holds them; `by_key` maps
    (group, name) to the command cobra runs for that name (the first one)."""

    commands: list[Command] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def by_key(self) -> dict[tuple[str | None, str], Command]:
        table: dict[tuple[str | None, str], Command] = {}
        for command in self.commands:
            table.setdefault((command.group, command.name), command)
        return table

    @property
    def shadowed(self) -> list[Command]:
        """Commands no invocation can reach: an earlier one of their group has their name."""
        winners = self.by_key
        return [c for c in self.commands if winners[(c.group, c.name)] is not c]

    def groups(self) -> list[str]:
        return sorted({c.group for c in self.commands if c.group})

    def find(self, words: list[str]) -> tuple[Command | None, str | None, list[str]]:
        """cobra's Find over the leading words: (command, group reached, words left)."""
        if not words:
            return None, None, []
        root = [c for c in self.commands if c.group is None]
        for command in root:  # root-level commands come before the groups
            if command.matches(words[0]):
                return command, None, words[1:]
        if words[0] not in self.groups():
            return None, None, words
        group = words[0]
        if len(words) == 1:
            return None, group, []
        for command in self.commands:
            if command.group == group and command.matches(words[1]):
                return command, group, words[2:]
        return None, group, words[1:]


def resolve_ref(spec: dict, node: Any) -> Any:
    """Follows local `$ref`s (`#/a/b`) until a node without one."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
            raise ClimatePanic(f"cannot resolve reference {ref!r}")
        seen.add(ref)
        target: Any = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise ClimatePanic(f"cannot resolve reference {ref!r}")
            target = target[part]
        node = target
    return node


def check_document(spec: Any) -> dict:
    """What libopenapi's LoadV3 refuses before climate sees anything."""
    if not isinstance(spec, dict):
        raise GoError("Cannot create v3 model: the document is not a mapping")
    version = str(spec.get("openapi", ""))
    if not version.startswith("3."):
        raise GoError(f"Cannot create v3 model: unsupported spec version {version!r}")
    if not isinstance(spec.get("paths"), dict):
        raise GoError("Cannot create v3 model: no paths")
    return spec


def _extensions(node: dict) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in node.items():
        if key == "x-cli-hidden" or key == "x-cli-ignored":
            if not isinstance(value, bool):
                raise ClimatePanic(f"interface conversion: {key} is not bool: {value!r}")
        elif key in ("x-cli-group", "x-cli-name"):
            if not isinstance(value, str):
                raise ClimatePanic(f"interface conversion: {key} is not string: {value!r}")
        elif key == "x-cli-aliases":
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                raise ClimatePanic(f"interface conversion: {key} is not []string: {value!r}")
        else:
            continue
        found[key] = value
    return found


def _param_type(spec: dict, param: dict, operation_id: str) -> str:
    schema = param.get("schema")
    if schema is None:
        return "string"  # "No type set for param, defaulting to string"
    schema = resolve_ref(spec, schema)
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, list):
        if not kind:
            raise ClimatePanic(
                f"index out of range [0] with length 0 ({operation_id}: "
                f"parameter {param.get('name')!r} has an empty type)"
            )
        kind = kind[0]
    if kind is None:
        raise ClimatePanic(
            f"index out of range [0] with length 0 ({operation_id}: "
            f"parameter {param.get('name')!r} has a schema without a type)"
        )
    return str(kind)


def _command(spec: dict, path: str, method: str, op: dict, exts: dict) -> Command:
    operation_id = str(op.get("operationId", ""))
    flags: list[Flag] = []
    unhandled: list[str] = []
    names: set[str] = set()
    for raw in op.get("parameters") or []:  # the operation's own: never the path item's
        param = resolve_ref(spec, raw)
        kind = _param_type(spec, param, operation_id)
        if kind not in FLAG_TYPES:
            unhandled.append(param["name"])
            continue
        name = param["name"]
        if name in names:
            raise ClimatePanic(f"flag redefined: {name} ({operation_id})")
        names.add(name)
        flags.append(Flag(name, kind, param.get("in", ""), bool(param.get("required"))))
    body_flag = None
    if op.get("requestBody") is not None:
        body = resolve_ref(spec, op["requestBody"])
        name = _extensions(body).get("x-cli-name") or DEFAULT_BODY_FLAG
        if name in names:
            raise ClimatePanic(f"flag redefined: {name} ({operation_id})")
        body_flag = Flag(name, "string", "body", bool(body.get("required")))
    return Command(
        group=exts.get("x-cli-group") or None,
        name=exts.get("x-cli-name") or operation_id,
        operation_id=operation_id,
        method=method,
        path=path,
        aliases=tuple(exts.get("x-cli-aliases") or ()),
        hidden=bool(exts.get("x-cli-hidden")),
        flags=tuple(flags),
        body_flag=body_flag,
        unhandled=tuple(unhandled),
    )


def operations(spec: dict):
    """(path, method, operation) in document order, as libopenapi yields them."""
    for path, item in spec["paths"].items():
        item = resolve_ref(spec, item)
        if not isinstance(item, dict):
            continue
        for method, op in item.items():
            if method in METHODS and isinstance(op, dict):
                yield path, method, op


def commands(spec: dict, bound: set[str] | frozenset[str] | None = None) -> CommandTable:
    """The commands climate makes of `spec` for a handler map binding the operationIds in
    `bound` (None: every operation has a handler)."""
    check_document(spec)
    table = CommandTable()
    grouped: list[Command] = []
    for path, method, op in operations(spec):
        exts = _extensions(op)
        if exts.get("x-cli-ignored"):
            continue
        command = _command(spec, path, method, op, exts)  # flags are made before the check
        if bound is not None and command.operation_id not in bound:
            table.warnings.append(f"No handler defined, skipping id={command.operation_id}")
            continue
        if command.group:
            grouped.append(command)
        else:
            table.commands.append(command)
    table.commands.extend(grouped)  # group commands are added to the root after the loop
    return table


# ---------------------------------------------------------------- at run time


def _parse_value(flag: Flag, text: str) -> Any:
    if flag.type == "string":
        return text
    if flag.type == "integer":
        value = go_parse_int(text)
        if value is None:
            raise ClimateError(
                f'invalid argument "{text}" for "--{flag.name}" flag: '
                f'strconv.ParseInt: parsing "{text}": invalid syntax'
            )
        return value
    if flag.type == "number":
        try:
            return float(text)
        except ValueError:
            raise ClimateError(
                f'invalid argument "{text}" for "--{flag.name}" flag: '
                f'strconv.ParseFloat: parsing "{text}": invalid syntax'
            ) from None
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ClimateError(
        f'invalid argument "{text}" for "--{flag.name}" flag: '
        f'strconv.ParseBool: parsing "{text}": invalid syntax'
    )


def parse_flags(command: Command, argv: list[str]) -> tuple[dict[str, Any], set[str]]:
    """pflag over the words after the command: (every flag's value, zero when not given;
    the names given). Long flags only (climate declares no shorthands)."""
    values = {f.name: f.zero for f in command.all_flags}
    given: set[str] = set()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            break
        if not arg.startswith("--"):
            continue  # a positional argument: cobra accepts and climate ignores them
        name, eq, inline = arg[2:].partition("=")
        flag = command.flag(name)
        if flag is None:
            raise ClimateError(f"unknown flag: --{name}")
        if eq:
            text = inline
        elif flag.type == "boolean":
            text = "true"
        elif args:
            text = args.pop(0)
        else:
            raise ClimateError(f"flag needs an argument: --{name}")
        values[name] = _parse_value(flag, text)
        given.add(name)
    missing = sorted(f.name for f in command.all_flags if f.required and f.name not in given)
    if missing:
        raise ClimateError('required flag(s) "' + '", "'.join(missing) + '" not set')
    return values, given


def _go_expand(template: str, match: re.Match) -> str:
    """regexp's Expand of a replacement template: $$, $1, ${1}, $name (unknown: "")."""
    out = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        rest = template[i + 1 :]
        if rest.startswith("$"):
            out.append("$")
            i += 2
            continue
        named = re.match(r"\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)", rest)
        if not named:
            out.append("$")
            i += 1
            continue
        name = named.group(1) or named.group(2)
        if name.isdigit():
            index = int(name)
            if index <= (match.re.groups or 0) and match.group(index) is not None:
                out.append(match.group(index))
        i += 1 + named.end()
    return "".join(out)


def _flag_text(flag: Flag, value: Any) -> str:
    if flag.type == "integer":
        return str(int(value))
    if flag.type == "number":
        return format_float_g(float(value))
    if flag.type == "boolean":
        return "true" if value else "false"
    return str(value)


def invoke(command: Command, values: dict[str, Any]) -> str:
    """HandlerData.Path: the template with each path parameter's `({name})+` replaced by
    its flag's value (its zero value when the flag was not given)."""
    path = command.path
    for flag in command.path_params:
        try:
            pattern = re.compile(f"({{{flag.name}}})+")
        except re.error as exc:
            raise ClimateError(f"error parsing regexp: {exc}") from None
        text = _flag_text(flag, values.get(flag.name, flag.zero))
        path = pattern.sub(lambda m, t=text: _go_expand(t, m), path)
    return path
