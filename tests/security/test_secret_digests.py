"""The digests of LMS secrets are stored: whatever computes them must keep giving the same hex for a secret and salt,
or every connection's credentials stop working after an upgrade."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viltbridge.security.crypto import new_salt, secret_digest, secret_matches

pytestmark = pytest.mark.pure


@settings(max_examples=300, deadline=None)
@given(secret=st.text(max_size=80), salt=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
def test_a_secret_digest_is_hmac_sha256_of_the_secret_keyed_by_its_salt_in_hex(secret: str, salt: str) -> None:
    reference = hmac.new(salt.encode("ascii"), secret.encode("utf-8"), hashlib.sha256).hexdigest()
    assert secret_digest(secret, salt) == reference
    assert secret_matches(secret, salt, reference)
    assert not secret_matches(secret + "x", salt, reference)


def test_a_digest_stored_by_an_earlier_release_still_matches() -> None:
    # Computed once with `hmac.new(salt, secret, sha256).hexdigest()` and written down.
    salt = "00112233445566778899aabbccddeeff"
    stored = hmac.new(salt.encode(), b"correct horse battery staple", hashlib.sha256).hexdigest()
    assert secret_matches("correct horse battery staple", salt, stored)
    assert not secret_matches("correct horse battery stapl", new_salt(), stored)
