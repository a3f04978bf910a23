"""``[NAME=]KIND[:ARG]`` specs: one head parser for scorers and judges."""

from __future__ import annotations

import pytest

from thresher.named_spec import NamedSpec, split_named_spec

KINDS = ("loglik", "verify")


class Bad(ValueError):
    pass


@pytest.mark.parametrize("text, parts", [
    ("loglik", NamedSpec(None, "loglik", "", False)),
    (" LogLik ", NamedSpec(None, "loglik", "", False)),
    ("m=verify:math", NamedSpec("m", "verify", "math", True)),
    ("m = verify : a=b:c ", NamedSpec("m", "verify", "a=b:c", True)),
    ("verify:", NamedSpec(None, "verify", "", True)),
    ("verify:x=1", NamedSpec(None, "verify", "x=1", True)),  # '=' after the kind is the arg's
])
def test_parts(text, parts):
    assert split_named_spec(text, "scorer", KINDS, Bad) == parts


@pytest.mark.parametrize("text, message", [
    ("1m=loglik", "scorer '1m=loglik': name '1m' must be letters, digits and _"),
    ("a-b=loglik", "scorer 'a-b=loglik': name 'a-b' must be letters, digits and _"),
    ("reward:x", "unknown scorer 'reward' in 'reward:x' (expected one of loglik, verify)"),
    ("m=", "unknown scorer '' in 'm=' (expected one of loglik, verify)"),
])
def test_refused_with_one_line(text, message):
    with pytest.raises(Bad) as e:
        split_named_spec(text, "scorer", KINDS, Bad)
    assert str(e.value) == message
