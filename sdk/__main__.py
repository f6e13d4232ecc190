from leukedge.cli import main

main(prog_name="leukedge")
