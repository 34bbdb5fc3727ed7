"""`python3 -m pyrunc.shim`: the shim from a checkout (as containerd-shim-pyrunc-v1)."""
import sys

from pyrunc.shim.main import main

sys.exit(main(sys.argv))
