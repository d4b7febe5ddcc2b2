"""A throwaway test CA and a leaf signing certificate, made with `cryptography` (never a real key).

What C2PA (c2pa-rs, through c2pa-python) asks of a signing certificate, as in c2pa-python's
own test fixtures (tests/fixtures/es256_certs.pem: a leaf, then its intermediate and root):
X.509 v3, issued by a CA in the chain, basicConstraints CA:false, key usage
digitalSignature (critical), an extended key usage of emailProtection (or documentSigning,
timeStamping, OCSPSigning; not anyExtendedKeyUsage), subject and authority key identifiers.
The CA: basicConstraints CA:true, keyCertSign. Keys: EC P-256 (ES256).
"""

import helpers
import pytest

# The CA-making code is tests/helpers.py's (make_test_credentials), shared with the serving
# tests; the name stays importable here.
Credentials = helpers.Credentials


@pytest.fixture(scope="session")
def credentials(tmp_path_factory) -> Credentials:
    return helpers.make_test_credentials(tmp_path_factory.mktemp("c2pa-test-ca"))
