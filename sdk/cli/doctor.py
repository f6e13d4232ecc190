"""``leukedge doctor``."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool) -> None:
    """Report what is usable on this machine (TensorFlow, ONNX Runtime, TensorRT, CUDA, cameras, OpenCV) and why not."""
    from leukedge.doctor import capabilities, interpreter, run_checks

    checks = run_checks()
    caps = capabilities(checks)
    if as_json:
        click.echo(json.dumps({"checks": [c.to_dict() for c in checks], "capabilities": caps}, indent=2))
        return
    colours = {"ok": "green", "missing": "yellow", "unusable": "red"}
    width = max(len(c.name) for c in checks)
    click.echo(f"leukedge doctor ({interpreter()})\n")
    for c in checks:
        click.echo(f"  {c.name:<{width}}  " + click.style(f"{c.status:<8}", fg=colours[c.status]) + f"  {c.detail}")
        if c.fix:
            click.echo(f"  {'':<{width}}            fix: {c.fix}")
    click.echo("\nYou can:")
    for what, yes in caps.items():
        click.echo("  " + click.style("yes" if yes else "no ", fg="green" if yes else "yellow") + f"  {what}")
