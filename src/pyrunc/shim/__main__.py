"""`python3 -m pyrunc.shim`: the shim from a checkout (as containerd-shim-pyrunc-v1)."""
import sys

from pyrunc.shim.main import run_and_exit

run_and_exit(sys.argv)
