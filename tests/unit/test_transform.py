"""Pure helpers of the exchange transform (the SQL steps are tested through the flow)."""

from __future__ import annotations

from manifest_exchange.transform import doc_match_hmacs

# RFC 4231, test case 2: HMAC-SHA256 with key "Jefe".
RFC_4231_KEY = b"Jefe"
RFC_4231_DATA = "what do ya want for nothing?"
RFC_4231_HMAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_doc_match_hmacs_are_hmac_sha256_in_hex_one_per_input() -> None:
    inputs = [RFC_4231_DATA, None, "P|TWN|A12345678", "P|TWN|A12345679", RFC_4231_DATA]
    digests = doc_match_hmacs(RFC_4231_KEY, inputs)
    # Each input is hashed on its own: the copies of the keyed HMAC do not share state.
    assert digests[0] == digests[4] == RFC_4231_HMAC
    assert digests[1] is None
    assert digests[2] != digests[3]
    assert doc_match_hmacs(RFC_4231_KEY, ["P|TWN|A12345678"]) == [digests[2]]
