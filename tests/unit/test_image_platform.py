"""Host platform naming and the choice of an image from an OCI index or a
Docker manifest list, as containers/image (skopeo) makes them."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from pyrunc.errors import PyruncError
from pyrunc.image import platform as P

L = "linux"


@pytest.mark.parametrize("machine,arch", [
    ("x86_64", "amd64"), ("i686", "386"), ("i386", "386"), ("aarch64", "arm64"),
    ("armv7l", "arm"), ("armv6l", "arm"), ("armv5tel", "arm"), ("ppc64le", "ppc64le"),
    ("s390x", "s390x"), ("riscv64", "riscv64"), ("loongarch64", "loong64"),
])
def test_goarch(machine, arch):
    assert P.goarch(machine) == arch


@pytest.mark.parametrize("cpuinfo,variant", [
    ("processor\t: 0\nCPU architecture: 8\n", "v8"),
    ("CPU architecture: AArch64\n", "v8"),
    ("model name\t: ARMv7 Processor rev 4 (v7l)\nCPU architecture: 7\n", "v7"),
    ("model name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n", "v6"),
    ("CPU architecture: 7\n", ""),  # no model name: containers/image gives up
    ("CPU architecture: 7M\n", "v7"),
    ("CPU architecture: 6TEJ\n", "v6"),
    ("CPU architecture: 5TE\n", "v5"),
    ("CPU architecture: 4T\n", "v4"),
    ("cpu architecture: 3\n", "v3"),
    ("CPU architecture: 9\n", ""),
    ("vendor_id: GenuineIntel\n", ""),
])
def test_arm_variant(cpuinfo, variant):
    assert P.arm_variant(cpuinfo) == variant


def test_host_is_linux_and_goarch():
    h = P.host()
    assert h.os == L and h.architecture == P.goarch(os.uname().machine)
    if h.architecture not in ("arm", "arm64"):
        assert h.variant == ""
    assert P.wanted()[0] == h


@pytest.mark.parametrize("os_,arch,variant,expected", [
    (L, "amd64", None, [(L, "amd64", "")]),
    (L, "arm", "v6", [(L, "arm", "v6"), (L, "arm", "v5"), (L, "arm", "")]),
    (L, "arm", None, [(L, "arm", ""), (L, "arm", "v8"), (L, "arm", "v7"), (L, "arm", "v6"),
                      (L, "arm", "v5")]),
    (L, "arm64", None, [(L, "arm64", ""), (L, "arm64", "v8")]),
    (L, "arm64", "v8", [(L, "arm64", "v8"), (L, "arm64", "")]),
    (L, "arm64", "v9", [(L, "arm64", "v9"), (L, "arm64", "")]),
    ("freeBSD", "armel", "custom", [("freeBSD", "armel", "custom"), ("freeBSD", "armel", "")]),
])
def test_wanted(os_, arch, variant, expected):
    assert P.wanted(os_, arch, variant) == [P.Platform(*e) for e in expected]


def desc(name, arch=None, variant=None, os_=L, zstd=False, platform=True):
    d = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": name, "size": 1}
    if platform:
        d["platform"] = {"architecture": arch, "os": os_}
        if variant is not None:
            d["platform"]["variant"] = variant
    if zstd:
        d["annotations"] = {P.ZSTD_ANNOTATION: "true"}
    return d


MULTI = [
    desc("amd64", "amd64"), desc("arm-v5", "arm", "v5"), desc("arm-v6", "arm", "v6"),
    desc("arm-v7", "arm", "v7"), desc("arm64-v8", "arm64", "v8"), desc("arm64", "arm64"),
    desc("ppc64le", "ppc64le"), desc("win", "amd64", os_="windows"),
]


@pytest.mark.parametrize("kind", [P.OCI_INDEX, P.DOCKER_LIST])
@pytest.mark.parametrize("manifests,os_,arch,variant,chosen", [
    (MULTI, L, "amd64", None, "amd64"),
    (MULTI, "windows", "amd64", None, "win"),
    (MULTI, L, "arm", "v7", "arm-v7"),
    (MULTI, L, "arm", "v8", "arm-v7"),            # v8 falls back to v7
    (MULTI[:3], L, "arm", "v7", "arm-v6"),        # then v6
    (MULTI, L, "arm", None, "arm-v7"),            # no variant: "" first, then v8, v7...
    (MULTI, L, "arm64", None, "arm64"),           # the variant-less entry first
    (MULTI, L, "arm64", "v8", "arm64-v8"),        # an exact match preferred
    ([MULTI[4]], L, "arm64", None, "arm64-v8"),   # arm64 without variant takes v8
    ([MULTI[5]], L, "arm64", "v8", "arm64"),      # and v8 takes variant-less
    ([desc("a", "amd64"), desc("b", "amd64")], L, "amd64", None, "a"),  # first listed
])
def test_choose(kind, manifests, os_, arch, variant, chosen):
    assert P.choose(manifests, os_, arch, variant, kind=kind)["digest"] == chosen


def test_choose_oci_prefers_zstd_then_platform_rank():
    ms = [desc("gzip", "amd64"), desc("zstd", "amd64", zstd=True)]
    assert P.choose(ms, L, "amd64", None)["digest"] == "zstd"
    assert P.choose(ms, L, "amd64", None, prefer_gzip=True)["digest"] == "gzip"
    # The platform rank outranks compression.
    ms = [desc("v7-zstd", "arm", "v7", zstd=True), desc("v8", "arm", "v8")]
    assert P.choose(ms, L, "arm", "v8")["digest"] == "v8"
    # The Docker list knows nothing of zstd.
    ms = [desc("gzip", "amd64"), desc("zstd", "amd64", zstd=True)]
    assert P.choose(ms, L, "amd64", None, kind=P.DOCKER_LIST)["digest"] == "gzip"


def test_choose_platformless_entry():
    ms = [desc("attestation", platform=False), desc("amd64", "amd64")]
    assert P.choose(ms, L, "amd64", None)["digest"] == "amd64"
    assert P.choose(ms, L, "s390x", None)["digest"] == "attestation"
    with pytest.raises(PyruncError):
        P.choose(ms, L, "s390x", None, kind=P.DOCKER_LIST)


@pytest.mark.parametrize("kind,what", [(P.OCI_INDEX, "image index"),
                                       (P.DOCKER_LIST, "manifest list")])
def test_choose_nothing_matches(kind, what):
    with pytest.raises(PyruncError) as e:
        P.choose(MULTI, L, "s390x", None, kind=kind)
    assert str(e.value) == \
        f'no image found in {what} for architecture "s390x", variant "", OS "linux"'
    with pytest.raises(PyruncError) as e:
        P.choose(MULTI[:1] + MULTI[4:], L, "arm", "v7", kind=kind)
    assert str(e.value) == \
        f'no image found in {what} for architecture "arm", variant "v7", OS "linux"'
    with pytest.raises(PyruncError):
        P.choose([], L, "amd64", None, kind=kind)


_plat = st.builds(P.Platform, st.sampled_from([L, "windows"]),
                  st.sampled_from(["amd64", "arm", "arm64"]),
                  st.sampled_from(["", "v5", "v6", "v7", "v8"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(_plat, max_size=6), _plat)
def test_choose_returns_an_acceptable_entry_or_fails(plats, want):
    ms = [desc(str(i), p.architecture, p.variant or None, p.os) for i, p in enumerate(plats)]
    acceptable = P.wanted(want.os, want.architecture, want.variant)
    for kind in (P.OCI_INDEX, P.DOCKER_LIST):
        try:
            d = P.choose(ms, want.os, want.architecture, want.variant, kind=kind)
        except PyruncError:
            assert not any(p in acceptable for p in plats)
        else:
            got = plats[int(d["digest"])]
            # the best-ranked acceptable platform, first listed among equals
            best = min(acceptable.index(p) for p in plats if p in acceptable)
            assert acceptable.index(got) == best
            assert int(d["digest"]) == plats.index(got)
