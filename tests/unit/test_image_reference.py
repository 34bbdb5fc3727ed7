"""Image references parse, normalize and fail as skopeo's (containers/image
v5) do: cases from its docker/reference, docker, oci and docker-archive
transport tests, and messages checked against skopeo 1.9."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings, strategies as st

from pyrunc.errors import PyruncError
from pyrunc.image import reference as R

F64 = "f" * 64
SHA256 = "sha256:" + F64
SHA512 = "sha512:" + "f" * 128

# input → (domain, path, tag, digest) of reference.Parse (no normalization).
PARSE_OK = [
    ("test_com", "", "test_com", None, None),
    ("test.com:tag", "", "test.com", "tag", None),
    ("test.com:5000", "", "test.com", "5000", None),
    ("test.com/repo:tag", "test.com", "repo", "tag", None),
    ("test:5000/repo", "test:5000", "repo", None, None),
    ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
    (f"test:5000/repo@{SHA256}", "test:5000", "repo", None, SHA256),
    (f"test:5000/repo:tag@{SHA256}", "test:5000", "repo", "tag", SHA256),
    ("lowercase:Uppercase", "", "lowercase", "Uppercase", None),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a", "a/" * 126 + "a", "tag-puts-this-over-max", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", None, None),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app",
     "test.example.com", None),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", None),
    (f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}", "xn--7o8h.com", "myimage", "xn--7o8h.com", SHA512),
    ("foo_bar.com:8080", "", "foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", "foo", "foo_bar.com", "8080", None),
    ("a__b---c.d/e", "", "a__b---c.d/e", None, None),
    ("Domain.COM/repo", "Domain.COM", "repo", None, None),
    ("localhost/x", "localhost", "x", None, None),
]

PARSE_ERR = [
    ("", "repository name must have at least one component"),
    (":justtag", "invalid reference format"),
    (f"@{SHA256}", "invalid reference format"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    (f"validname@invaliddigest:{F64}", "unsupported digest algorithm"),
    ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("a:" + "t" * 129, "invalid reference format"),
    ("a:.tag", "invalid reference format"),
    ("a___b", "invalid reference format"),
    ("a_-b", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("a/", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("repo@sha256:" + "f" * 31, "invalid reference format"),
]


@pytest.mark.parametrize("text,domain,path,tag,digest", PARSE_OK)
def test_parse_reference_ok(text, domain, path, tag, digest):
    n = R.parse_reference(text)
    assert (n.domain, n.path, n.tag, n.digest) == (domain, path, tag, digest)
    assert str(n) == text


@pytest.mark.parametrize("text,msg", PARSE_ERR)
def test_parse_reference_err(text, msg):
    with pytest.raises(PyruncError) as e:
        R.parse_reference(text)
    assert str(e.value) == msg


def test_tag_length_limit():
    assert R.parse_reference("a:" + "t" * 128).tag == "t" * 128


# docker:// → canonical form (str) and familiar form.
DOCKER_OK = [
    ("docker://busybox", "docker://docker.io/library/busybox:latest", "busybox:latest"),
    ("docker://busybox:notlatest", "docker://docker.io/library/busybox:notlatest", "busybox:notlatest"),
    (f"docker://busybox@{SHA256}", f"docker://docker.io/library/busybox@{SHA256}", f"busybox@{SHA256}"),
    ("docker://docker.io/library/busybox:latest", "docker://docker.io/library/busybox:latest",
     "busybox:latest"),
    ("docker://index.docker.io/busybox", "docker://docker.io/library/busybox:latest", "busybox:latest"),
    ("docker://docker.io/busybox", "docker://docker.io/library/busybox:latest", "busybox:latest"),
    ("docker://fedora/httpd", "docker://docker.io/fedora/httpd:latest", "fedora/httpd:latest"),
    ("docker://library/a/b", "docker://docker.io/library/a/b:latest", "library/a/b:latest"),
    ("docker://localhost/x", "docker://localhost/x:latest", "localhost/x:latest"),
    ("docker://localhost:5000/x", "docker://localhost:5000/x:latest", "localhost:5000/x:latest"),
    ("docker://quay.io/a/b:v1.2", "docker://quay.io/a/b:v1.2", "quay.io/a/b:v1.2"),
    ("docker://host:443/a", "docker://host:443/a:latest", "host:443/a:latest"),
    ("docker://LocalHost.Domain/x", "docker://LocalHost.Domain/x:latest", "LocalHost.Domain/x:latest"),
    # A first component that is neither a host nor a docker.io user stays a path.
    ("docker://localhostx/y", "docker://docker.io/localhostx/y:latest", "localhostx/y:latest"),
]


@pytest.mark.parametrize("text,canonical,familiar", DOCKER_OK)
def test_docker_ok(text, canonical, familiar):
    ref = R.parse(text)
    assert isinstance(ref, R.DockerReference)
    assert str(ref) == canonical
    assert ref.familiar() == "docker://" + familiar
    assert ref.reference == (ref.digest or ref.tag)
    assert R.parse(canonical) == ref


def test_docker_fields():
    ref = R.parse("docker://localhost:5000/ns/x:1")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "ns/x", "1", None)
    assert ref.name == "localhost:5000/ns/x"


ERRORS = [
    ("busybox", 'Invalid image name "busybox", expected colon-separated transport:reference'),
    ("dockr://busybox", 'Invalid image name "dockr://busybox", unknown transport "dockr"'),
    ("dir:/x", 'Invalid image name "dir:/x", unknown transport "dir"'),
    ("docker:busybox", "docker: image reference busybox does not start with //"),
    ("docker://UPPERCASEISINVALID", "invalid reference format: repository name must be lowercase"),
    ("docker://Foo_bar.com/x", "repository name must be lowercase"),
    ("docker://busybox:latest@" + SHA256,
     "Docker references with both a tag and digest are currently not supported"),
    ("docker://busybox@sha256:fff", "invalid reference format"),
    ("docker://busybox@md5:" + "f" * 36, "unsupported digest algorithm"),
    ("docker://busybox@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("docker://busybox@sha512:" + F64, "invalid checksum digest length"),
    ("docker://busybox:" + "t" * 129, "invalid reference format"),
    ("docker://" + F64,
     f"invalid repository name ({F64}), cannot specify 64-byte hexadecimal strings"),
    ("docker://", "invalid reference format"),
    ("docker:bad\nname", 'docker: image reference "bad\\nname" does not start with //'),
    ("docker://a/" + "b" * 260, "repository name must not be more than 255 characters"),
    ("oci:/d:a//b", "Invalid image a//b"),
    ("oci:/d:-a", "Invalid image -a"),
    ("oci:/d:@x", "Invalid source index @x: not an integer"),
    ("oci:/d:@-1", "Invalid source index @-1: must not be negative"),
    ("oci-archive:/f:a b", "Invalid image a b"),
    ("docker-archive:", "docker-archive reference  isn't of the form <path>[:<reference>]"),
    ("docker-archive:/x:Busy",
     "docker-archive parsing reference: invalid reference format: repository name must be lowercase"),
    ("docker-archive:/x:@-1", "Invalid source index @-1: must not be negative"),
    ("docker-archive:/x:@", "Invalid source index @: not an integer"),
    (f"docker-archive:/x:busybox@{SHA256}",
     f"reference does not include a tag: docker.io/library/busybox@{SHA256}"),
    (f"docker-archive:/x:busybox:1@{SHA256}",
     f"docker-archive doesn't support digest references: docker.io/library/busybox:1@{SHA256}"),
]


@pytest.mark.parametrize("text,msg", ERRORS)
def test_errors(text, msg):
    with pytest.raises(PyruncError) as e:
        R.parse(text)
    assert str(e.value) == msg


OTHER_OK = [
    ("oci:/tmp/layout", R.OCIReference("/tmp/layout", "", -1), "oci:/tmp/layout"),
    ("oci:/tmp/layout:", R.OCIReference("/tmp/layout", "", -1), "oci:/tmp/layout"),
    ("oci:layout:latest", R.OCIReference("layout", "latest", -1), "oci:layout:latest"),
    # The path ends at the first colon; the rest is the ref name (which may hold ':' and '@').
    ("oci:/a:b:c", R.OCIReference("/a", "b:c", -1), "oci:/a:b:c"),
    ("oci:/a:x@y+z/w--v", R.OCIReference("/a", "x@y+z/w--v", -1), "oci:/a:x@y+z/w--v"),
    ("oci:/a:@0", R.OCIReference("/a", "", 0), "oci:/a:@0"),
    ("oci:/a:@+7", R.OCIReference("/a", "", 7), "oci:/a:@7"),
    ("oci-archive:/x.tar", R.OCIArchiveReference("/x.tar", ""), "oci-archive:/x.tar"),
    ("oci-archive:/x.tar:Tag.1", R.OCIArchiveReference("/x.tar", "Tag.1"), "oci-archive:/x.tar:Tag.1"),
    ("docker-archive:/x.tar", R.DockerArchiveReference("/x.tar"), "docker-archive:/x.tar"),
    ("docker-archive:/x.tar:@2", R.DockerArchiveReference("/x.tar", None, 2), "docker-archive:/x.tar:@2"),
    ("docker-archive:/x.tar:busybox",
     R.DockerArchiveReference("/x.tar", R.Named("docker.io", "library/busybox", "latest")),
     "docker-archive:/x.tar:docker.io/library/busybox:latest"),
    ("docker-archive:/x.tar:example.com/a:1",
     R.DockerArchiveReference("/x.tar", R.Named("example.com", "a", "1")),
     "docker-archive:/x.tar:example.com/a:1"),
]


@pytest.mark.parametrize("text,ref,canonical", OTHER_OK)
def test_other_transports(text, ref, canonical):
    got = R.parse(text)
    assert got == ref
    assert str(got) == canonical
    assert R.parse(canonical) == got


def test_dataclasses_have_slots():
    for cls in (R.DockerReference, R.OCIReference, R.OCIArchiveReference,
                R.DockerArchiveReference, R.Named):
        assert "__slots__" in cls.__dict__
    assert not hasattr(R.parse("docker://x"), "__dict__")
    assert not hasattr(R.parse("oci:/x"), "__dict__")


# Hypothesis: names built from the grammar parse back to themselves.
_alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_sep = st.sampled_from([".", "_", "__", "-", "--"])
_component = st.builds(lambda first, rest: first + "".join(s + a for s, a in rest),
                       _alnum, st.lists(st.tuples(_sep, _alnum), max_size=2))
_path = st.lists(_component, min_size=1, max_size=3).map("/".join)
_dlabel = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?", fullmatch=True)
_domain = st.one_of(
    st.just("localhost"),
    st.builds(lambda a, b: f"{a}.{b}", _dlabel, _dlabel),
    st.builds(lambda a, p: f"{a}:{p}", _dlabel, st.integers(1, 65535)),
)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64).map("sha256:".__add__),
                    st.text("0123456789abcdef", min_size=128, max_size=128).map("sha512:".__add__))
_docker = st.builds(
    lambda d, p, suffix: "docker://" + (d + "/" if d else "") + p + suffix,
    st.one_of(st.none(), _domain), _path,
    st.one_of(st.just(""), _tag.map(":".__add__), _digest.map("@".__add__)))


@settings(max_examples=300, deadline=None)
@given(_docker)
def test_docker_roundtrip(text):
    try:
        ref = R.parse(text)
    except PyruncError as e:
        # The only refusal of a grammatical name: a 64-hex bare name.
        assert "64-byte hexadecimal" in str(e)
        return
    assert R.parse(str(ref)) == ref
    assert str(R.parse(str(ref))) == str(ref)
    assert ref.tag is not None or ref.digest is not None


_oci_alnum = st.text("abcXYZ019", min_size=1, max_size=5)
_oci_ref = st.builds(lambda a, rest: a + "".join(s + b for s, b in rest), _oci_alnum,
                     st.lists(st.tuples(st.sampled_from(list("-._:@+/") + ["--"]), _oci_alnum),
                              max_size=4))
_dir = st.from_regex(r"/?[a-z0-9._-]{1,8}(/[a-z0-9._-]{1,8}){0,2}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["oci", "oci-archive"]), _dir, st.one_of(st.just(""), _oci_ref))
def test_oci_roundtrip(transport, path, image):
    text = f"{transport}:{path}:{image}" if image else f"{transport}:{path}"
    ref = R.parse(text)
    assert str(ref) == text
    assert R.parse(str(ref)) == ref


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_a_reference_or_one_clear_error(text):
    for t in R.TRANSPORTS:
        try:
            ref = R.parse(f"{t}:{text}")
        except PyruncError as e:
            assert str(e) and "\n" not in str(e)
        else:
            assert R.parse(str(ref)) == ref


def test_no_catastrophic_backtracking():
    hostile = ["docker://" + "a-" * 5000 + "!", "docker://" + "a." * 5000 + "A",
               "docker://" + "a" * 10000 + "/" + "b_" * 5000 + "-",
               "docker://x.y/" + "a/" * 3000 + ":" + "t" * 200,
               "oci:/d:" + "a-" * 5000 + "/"]
    start = time.monotonic()
    for h in hostile:
        with pytest.raises(PyruncError):
            R.parse(h)
    assert time.monotonic() - start < 2
