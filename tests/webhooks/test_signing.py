"""kit/signing.py: Standard Webhooks signatures."""

from __future__ import annotations

import base64

import pytest

from mercato.kit import signing

# The example of the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_specification_example() -> None:
    assert signing.sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_generated_secrets_are_prefixed_and_carry_at_least_24_random_bytes() -> None:
    first, second = signing.generate_secret(), signing.generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) >= 24


def test_verify_accepts_any_of_the_secrets_in_use_and_refuses_others() -> None:
    old, new, stranger = (signing.generate_secret() for _ in range(3))
    headers = signing.headers([new, old], "msg_1", b"{}", timestamp=1_700_000_000)
    assert len(headers["webhook-signature"].split(" ")) == 2
    signing.verify([old], headers, b"{}", now=1_700_000_010)
    signing.verify([new], headers, b"{}", now=1_700_000_010)
    with pytest.raises(signing.InvalidSignature):
        signing.verify([stranger], headers, b"{}", now=1_700_000_010)
    with pytest.raises(signing.InvalidSignature):
        signing.verify([new], headers, b'{"tampered": 1}', now=1_700_000_010)


def test_verify_refuses_old_timestamps() -> None:
    secret = signing.generate_secret()
    headers = signing.headers([secret], "msg_1", b"{}", timestamp=1_700_000_000)
    with pytest.raises(signing.InvalidSignature):
        signing.verify([secret], headers, b"{}", now=1_700_000_000 + 3600)
