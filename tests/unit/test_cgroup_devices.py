"""Device rules: runc's defaults, the v1 emulator and the v2 eBPF program.

The expected programs are runc's own test listings
(libcontainer/cgroups/ebpf/devicefilter/devicefilter_test.go, v1.1.5), in
cilium/ebpf's notation; the program bytes are disassembled into it.
"""
from __future__ import annotations

import struct

import pytest

from pyrunc.cgroups import devices as D
from pyrunc.errors import PyruncError

_NAMES = {0x61: "LdXMemW", 0x54: "And32Imm", 0x74: "RSh32Imm", 0xb4: "Mov32Imm", 0xbc: "Mov32Reg",
          0x55: "JNEImm", 0x5d: "JNEReg", 0x95: "Exit"}


def disassemble(prog: bytes) -> str:
    insts = [struct.unpack_from("<BBhi", prog, i) for i in range(0, len(prog), 8)]
    # block starts: 0 is the preamble; a block starts at every jump target and after an exit
    starts = sorted({pc + 1 + off for pc, (code, _, off, _) in enumerate(insts) if code in (0x55, 0x5d)} |
                    {pc + 1 for pc, (code, *_) in enumerate(insts) if code == 0x95 and pc + 1 < len(insts)} |
                    {6})
    label = {pc: f"block-{i}" for i, pc in enumerate(starts)}
    out = []
    for pc, (code, regs, off, imm) in enumerate(insts):
        dst, src = regs & 0xF, regs >> 4
        if pc in label:
            out.append(f"{label[pc]}:")
        name = _NAMES[code]
        if code == 0x61:
            s = f"{name} dst: r{dst} src: r{src} off: {off} imm: {imm}"
        elif code in (0x54, 0x74, 0xb4):
            s = f"{name} dst: r{dst} imm: {imm}"
        elif code == 0xbc:
            s = f"{name} dst: r{dst} src: r{src}"
        elif code == 0x55:
            s = f"{name} dst: r{dst} off: -1 imm: {imm} <{label[pc + 1 + off]}>"
        elif code == 0x5d:
            s = f"{name} dst: r{dst} off: -1 src: r{src} <{label[pc + 1 + off]}>"
        else:
            s = name
        out.append(f"{pc}: {s}")
    return "\n".join(out)


def norm(listing: str) -> str:
    return "\n".join(ln.strip() for ln in listing.splitlines() if ln.strip() and not ln.strip().startswith("//"))


PREAMBLE = """
        0: LdXMemW dst: r2 src: r1 off: 0 imm: 0
        1: And32Imm dst: r2 imm: 65535
        2: LdXMemW dst: r3 src: r1 off: 0 imm: 0
        3: RSh32Imm dst: r3 imm: 16
        4: LdXMemW dst: r4 src: r1 off: 4 imm: 0
        5: LdXMemW dst: r5 src: r1 off: 8 imm: 0
"""

BUILTIN = PREAMBLE + """
block-0:
        6: JNEImm dst: r2 off: -1 imm: 1 <block-1>
        7: Mov32Reg dst: r1 src: r3
        8: And32Imm dst: r1 imm: 1
        9: JNEReg dst: r1 off: -1 src: r3 <block-1>
        10: Mov32Imm dst: r0 imm: 1
        11: Exit
block-1:
        12: JNEImm dst: r2 off: -1 imm: 2 <block-2>
        13: Mov32Reg dst: r1 src: r3
        14: And32Imm dst: r1 imm: 1
        15: JNEReg dst: r1 off: -1 src: r3 <block-2>
        16: Mov32Imm dst: r0 imm: 1
        17: Exit
block-2:
        18: JNEImm dst: r2 off: -1 imm: 2 <block-3>
        19: JNEImm dst: r4 off: -1 imm: 1 <block-3>
        20: JNEImm dst: r5 off: -1 imm: 3 <block-3>
        21: Mov32Imm dst: r0 imm: 1
        22: Exit
block-3:
        23: JNEImm dst: r2 off: -1 imm: 2 <block-4>
        24: JNEImm dst: r4 off: -1 imm: 1 <block-4>
        25: JNEImm dst: r5 off: -1 imm: 5 <block-4>
        26: Mov32Imm dst: r0 imm: 1
        27: Exit
block-4:
        28: JNEImm dst: r2 off: -1 imm: 2 <block-5>
        29: JNEImm dst: r4 off: -1 imm: 1 <block-5>
        30: JNEImm dst: r5 off: -1 imm: 7 <block-5>
        31: Mov32Imm dst: r0 imm: 1
        32: Exit
block-5:
        33: JNEImm dst: r2 off: -1 imm: 2 <block-6>
        34: JNEImm dst: r4 off: -1 imm: 1 <block-6>
        35: JNEImm dst: r5 off: -1 imm: 8 <block-6>
        36: Mov32Imm dst: r0 imm: 1
        37: Exit
block-6:
        38: JNEImm dst: r2 off: -1 imm: 2 <block-7>
        39: JNEImm dst: r4 off: -1 imm: 1 <block-7>
        40: JNEImm dst: r5 off: -1 imm: 9 <block-7>
        41: Mov32Imm dst: r0 imm: 1
        42: Exit
block-7:
        43: JNEImm dst: r2 off: -1 imm: 2 <block-8>
        44: JNEImm dst: r4 off: -1 imm: 5 <block-8>
        45: JNEImm dst: r5 off: -1 imm: 0 <block-8>
        46: Mov32Imm dst: r0 imm: 1
        47: Exit
block-8:
        48: JNEImm dst: r2 off: -1 imm: 2 <block-9>
        49: JNEImm dst: r4 off: -1 imm: 5 <block-9>
        50: JNEImm dst: r5 off: -1 imm: 2 <block-9>
        51: Mov32Imm dst: r0 imm: 1
        52: Exit
block-9:
        53: JNEImm dst: r2 off: -1 imm: 2 <block-10>
        54: JNEImm dst: r4 off: -1 imm: 10 <block-10>
        55: JNEImm dst: r5 off: -1 imm: 200 <block-10>
        56: Mov32Imm dst: r0 imm: 1
        57: Exit
block-10:
        58: JNEImm dst: r2 off: -1 imm: 2 <block-11>
        59: JNEImm dst: r4 off: -1 imm: 136 <block-11>
        60: Mov32Imm dst: r0 imm: 1
        61: Exit
block-11:
        62: Mov32Imm dst: r0 imm: 0
        63: Exit
"""


def defaults() -> list[tuple]:
    return [rule for rule, _ in D.DEFAULT_ALLOWED]


def test_program_nil():
    prog, lic = D.device_filter([])
    assert lic == "Apache"
    assert disassemble(prog) == norm(PREAMBLE + "block-0:\n6: Mov32Imm dst: r0 imm: 0\n7: Exit")


def test_program_builtin_allow_list():
    prog, _ = D.device_filter(defaults())
    assert disassemble(prog) == norm(BUILTIN)


def test_program_default_config_equals_builtin():
    # the spec's usual deny-all first rule changes nothing
    prog, _ = D.device_filter(D.spec_rules({"devices": [{"allow": False, "access": "rwm"}]}))
    assert disassemble(prog) == norm(BUILTIN)


def test_program_privileged():
    prog, _ = D.device_filter([("a", -1, -1, "rwm", True)])
    assert disassemble(prog) == norm(PREAMBLE + "block-0:\n6: Mov32Imm dst: r0 imm: 1\n7: Exit")


def test_program_privileged_except_single_device():
    prog, _ = D.device_filter([("a", -1, -1, "rwm", True), ("b", 8, 0, "rwm", False)])
    assert disassemble(prog) == norm(PREAMBLE + """
        block-0:
        6: JNEImm dst: r2 off: -1 imm: 1 <block-1>
        7: JNEImm dst: r4 off: -1 imm: 8 <block-1>
        8: JNEImm dst: r5 off: -1 imm: 0 <block-1>
        9: Mov32Imm dst: r0 imm: 0
        10: Exit
        block-1:
        11: Mov32Imm dst: r0 imm: 1
        12: Exit""")


def test_program_weird():
    # 8/1 is allowed, 8/2 is not: cgroup v1 behaviour (the "a" rule resets)
    prog, _ = D.device_filter([("b", 8, 1, "rwm", False), ("a", -1, -1, "rwm", True), ("b", 8, 2, "rwm", False)])
    assert disassemble(prog) == norm(PREAMBLE + """
        block-0:
        6: JNEImm dst: r2 off: -1 imm: 1 <block-1>
        7: JNEImm dst: r4 off: -1 imm: 8 <block-1>
        8: JNEImm dst: r5 off: -1 imm: 2 <block-1>
        9: Mov32Imm dst: r0 imm: 0
        10: Exit
        block-1:
        11: Mov32Imm dst: r0 imm: 1
        12: Exit""")


# -- spec rules --------------------------------------------------------------------------------

def test_spec_rules_order_and_defaults():
    rules = D.spec_rules({"devices": [{"allow": False, "access": "rwm"},
                                      {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]})
    assert rules[:2] == [("a", -1, -1, "rwm", False), ("c", 10, 229, "rw", True)]
    assert rules[2:] == defaults()


def test_spec_rules_dedupe_by_linux_devices():
    rules = D.spec_rules({}, [{"path": "/dev/null"}, {"path": "/dev/tty"}, {"path": "/dev/other"}])
    assert ("c", 1, 3, "rwm", True) not in rules and ("c", 5, 0, "rwm", True) not in rules
    assert ("c", 1, 5, "rwm", True) in rules and len(rules) == len(defaults()) - 2


def test_spec_rules_normalises_access():
    assert D.spec_rules({"devices": [{"allow": True, "type": "b", "access": "mwr"}]})[0] == ("b", -1, -1, "rwm", True)


# -- emulator ----------------------------------------------------------------------------------

def test_emulator_from_list_and_back():
    e = D.Emulator.from_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n")
    assert not e.is_blacklist()
    assert e.rules == {("c", 1, 3): 7, ("c", 136, -1): 3, ("b", -1, -1): 4}
    assert D.Emulator.from_list("a *:* rwm\n").is_blacklist()


def test_emulator_transition_minimal():
    cur = D.Emulator.from_list("c 1:3 rwm\nc 1:5 rw\n")
    target = D.Emulator.from_rules([("a", -1, -1, "rwm", False), ("c", 1, 3, "rwm", True), ("c", 1, 5, "rwm", True),
                                    ("c", 1, 9, "r", True)])
    assert [D.cgroup_string(r) + (" +" if r[4] else " -") for r in cur.transition(target)] == \
        ["c 1:5 m +", "c 1:9 r +"]
    target2 = D.Emulator.from_rules([("a", -1, -1, "rwm", False)])
    assert [(D.cgroup_string(r), r[4]) for r in cur.transition(target2)] == [("c 1:3 rwm", False), ("c 1:5 rw", False)]


def test_emulator_partial_permission_removal():
    e = D.Emulator.from_rules([("a", -1, -1, "rwm", False), ("c", 1, 3, "rwm", True), ("c", 1, 3, "w", False)])
    assert e.rules == {("c", 1, 3): D._perm_set("rm")}


def test_emulator_refuses_hole_punching():
    with pytest.raises(PyruncError, match=r"unable to remove 'allow' exception: .*cannot punch hole"):
        D.Emulator.from_rules([("a", -1, -1, "rwm", False), ("c", -1, -1, "rwm", True), ("c", 1, 3, "r", False)])
    with pytest.raises(PyruncError, match=r"unable to remove 'deny' exception"):
        D.Emulator.from_rules([("a", -1, -1, "rwm", True), ("b", 8, -1, "w", False), ("b", 8, 1, "w", True)])


def test_malformed_devices_list():
    with pytest.raises(PyruncError, match="malformed"):
        D.Emulator.from_list("c 1:3\n")


# -- v1: re-applying and changing rules on a live cgroup (update.bats "minimal transition") --

def _devices_cgroup(tmp_path, emu: D.Emulator):
    """A v1 devices cgroup with the kernel's semantics (test_cgroup_resources'
    fake), in the state `emu` describes."""
    import sys
    here = str(__import__("pathlib").Path(__file__).parent)
    if here not in sys.path:
        sys.path.insert(0, here)  # --import-mode=importlib puts no test dir there
    from test_cgroup_resources import FakeFS, render_list
    fs = FakeFS(tmp_path)
    d = fs.make("devices", "ctr", {"devices.allow": "", "devices.deny": "", "devices.list": render_list(emu)})
    return fs, d


def _writes(fs):
    return fs.files("devices")


def _state(d):
    return D.Emulator.from_list(open(d + "/devices.list").read())


@pytest.fixture
def no_userns(monkeypatch):
    monkeypatch.setattr(D, "running_in_userns", lambda: False)


CONFIG_RULES = [("a", -1, -1, "rwm", False), ("c", 1, 11, "rw", False)] + defaults()


def test_v1_reapplying_the_same_rules_writes_nothing(tmp_path, no_userns):
    fs, d = _devices_cgroup(tmp_path, D.Emulator.from_rules(CONFIG_RULES))
    for _ in range(3):
        D.set_v1(d, CONFIG_RULES, fs.write)
    assert _writes(fs) == []


def test_v1_changing_rules_never_denies_everything(tmp_path, no_userns):
    """A white-list stays one: only the rules that differ are written, never
    "a *:* rwm" in devices.deny (the container would lose /dev/null)."""
    fs, d = _devices_cgroup(tmp_path, D.Emulator.from_rules(CONFIG_RULES))
    target = [("a", -1, -1, "rwm", False), ("c", 1, 11, "r", True)] + \
        [r for r in defaults() if r[:3] != ("c", 10, 200)]  # no /dev/net/tun any more
    D.set_v1(d, target, fs.write)
    assert _writes(fs) == [("devices.deny", "c 10:200 rwm"), ("devices.allow", "c 1:11 r")]
    assert _state(d) == D.Emulator.from_rules(target)


def test_v1_first_apply_from_allow_all(tmp_path, no_userns):
    """A new cgroup allows everything: the one disruptive write is the first
    (before the container runs anything), then the allows."""
    fs, d = _devices_cgroup(tmp_path, D.Emulator(True))
    D.set_v1(d, CONFIG_RULES, fs.write)
    assert _writes(fs)[0] == ("devices.deny", "a *:* rwm")
    assert all(name == "devices.allow" for name, _ in _writes(fs)[1:])
    assert len(_writes(fs)) == 1 + len(defaults())


def test_v1_plan_made_ahead_writes_the_same(tmp_path, no_userns):
    """plan_v1 reads the list and computes the transition before any write
    (a create: while the init mounts); set_v1 with it then only writes and
    checks, the same writes as without a plan."""
    fs, d = _devices_cgroup(tmp_path, D.Emulator(True))
    plan = D.plan_v1(d, CONFIG_RULES)
    assert _writes(fs) == []
    D.set_v1(d, CONFIG_RULES, fs.write, plan)
    planned = _writes(fs)
    fs2, d2 = _devices_cgroup(tmp_path / "again", D.Emulator(True))
    D.set_v1(d2, CONFIG_RULES, fs2.write)
    assert planned == _writes(fs2) and planned[0] == ("devices.deny", "a *:* rwm")
    assert _state(d) == D.Emulator.from_rules(CONFIG_RULES)


def test_v1_plan_in_a_user_namespace_is_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "running_in_userns", lambda: True)
    fs, d = _devices_cgroup(tmp_path, D.Emulator(True))
    assert D.plan_v1(d, CONFIG_RULES) == ()
    D.set_v1(d, CONFIG_RULES, fs.write, ())
    assert _writes(fs) == []


def test_v1_black_list_target(tmp_path, no_userns):
    fs, d = _devices_cgroup(tmp_path, D.Emulator.from_rules(CONFIG_RULES))
    D.set_v1(d, [("a", -1, -1, "rwm", True), ("b", 8, 0, "w", False)], fs.write)
    assert _writes(fs) == [("devices.allow", "a *:* rwm"), ("devices.deny", "b 8:0 w")]
