"""Check a ``leukedge …`` command line against the real click CLI without running it.

The subcommand must exist; every option must be one of its options; an option's value must
be one of its choices where the option has a fixed set; positional arguments must not be
more than the command takes; required options must be there.  Paths are not checked (the
files of a hardware example do not exist here).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click

from leukedge.cli import main
from leukedge.cli.registry import COMMANDS

PREFIXES = {"nice", "time", "exec", "sudo", "env", "timeout"}
SHELL_OPS = {"&&", "||", "|", ";", "&", ">", ">>", "<", "2>", "2>&1", "(", ")"}
# Tokens a writer uses for "fill this in" or for an elided value; never valid in a runnable block.
PLACEHOLDER = re.compile(r"…|\.\.\.$|^<.*>$")


def _tokens(command: str) -> list[str]:
    lex = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def leukedge_invocations(command: str) -> list[list[str]]:
    """The argument lists of every ``leukedge`` call in a shell command line."""
    toks = _tokens(command)
    calls: list[list[str]] = []
    i = 0
    at_start = True  # at a command position: the line's start, or after ; && || | ( or a prefix such as nice -n 10
    while i < len(toks):
        t = toks[i]
        if t in SHELL_OPS:
            at_start = True
            i += 1
            continue
        if at_start and (
            t in PREFIXES
            or re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", t)
            or (toks[i - 1 : i] == ["-n"] and t.isdigit())
            or t == "-n"
        ):
            i += 1
            continue
        is_cli = at_start and (
            Path(t).name == "leukedge"
            or (Path(t).name.startswith("python") and toks[i + 1 : i + 3] == ["-m", "leukedge"])
        )
        at_start = False
        if is_cli:
            i += 3 if Path(t).name.startswith("python") else 1
            args = []
            while i < len(toks) and toks[i] not in SHELL_OPS and not re.fullmatch(r"\d?[<>]+.*", toks[i]):
                args.append(toks[i])
                i += 1
            calls.append(args)
        else:
            i += 1
    return calls


def _command(name: str) -> click.Command | None:
    with click.Context(main) as ctx:
        return main.get_command(ctx, name)


def check_args(args: list[str], *, synopsis: bool = False) -> list[str]:
    """Problems with one ``leukedge`` argument list (empty when it would parse)."""
    if not args or args[0] in ("--help", "-h", "--version"):
        return []
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        return [f"'leukedge {name}': no such command (commands: {', '.join(COMMANDS)})"]
    cmd = _command(name)
    if cmd is None or not any(isinstance(p, click.Option) for p in cmd.params):
        return [f"'leukedge {name}': not available in this installation, cannot check it (install all extras)"]
    if synopsis:
        return _check_synopsis(name, cmd, rest)
    opts: dict[str, click.Option] = {}
    for p in cmd.params:
        if isinstance(p, click.Option):
            for o in (*p.opts, *p.secondary_opts):
                opts[o] = p
    problems: list[str] = []
    positionals = 0
    seen: set[str] = set()
    i = 0
    if "--help" in rest or "-h" in rest:
        return []
    while i < len(rest):
        t = rest[i]
        if t.startswith("-") and t != "-":
            key, _, inline = t.partition("=")
            opt = opts.get(key)
            if opt is None:
                problems.append(f"'leukedge {name}': no option {key} (options: {', '.join(sorted(opts))})")
                i += 1
                continue
            seen.add(opt.name or "")
            if opt.is_flag or opt.count:
                i += 1
                continue
            value = inline if inline else (rest[i + 1] if i + 1 < len(rest) else None)
            if value is None:
                problems.append(f"'leukedge {name}': option {key} needs a value")
            elif isinstance(opt.type, click.Choice) and "$" not in value and value not in opt.type.choices:
                problems.append(f"'leukedge {name}': {key} {value!r} is not one of {list(opt.type.choices)}")
            i += 1 if inline else 2
            continue
        positionals += 1
        i += 1
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    if not any(a.nargs == -1 for a in arguments) and positionals > sum(a.nargs for a in arguments):
        problems.append(f"'leukedge {name}': {positionals} positional argument(s), it takes {len(arguments)}")
    for p in cmd.params:
        if isinstance(p, click.Option) and p.required and p.name not in seen and p.envvar is None:
            problems.append(f"'leukedge {name}': required option {p.opts[0]} is missing")
    needed = [a for a in arguments if a.required]
    if positionals < sum(max(a.nargs, 1) for a in needed):
        problems.append(f"'leukedge {name}': missing argument(s) {', '.join(a.name or '' for a in needed)}")
    return problems


def _check_synopsis(name: str, cmd: click.Command, rest: list[str]) -> list[str]:
    known = {o for p in cmd.params if isinstance(p, click.Option) for o in (*p.opts, *p.secondary_opts)}
    known |= {"--help", "-h"}
    named = set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", " ".join(rest)))
    return [f"'leukedge {name}' synopsis names {o}, which the command does not have" for o in sorted(named - known)]


def placeholder_tokens(args: list[str]) -> list[str]:
    return [a for a in args if PLACEHOLDER.search(a)]
