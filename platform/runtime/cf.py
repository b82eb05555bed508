"""``request.cf`` of an incoming request: Cloudflare's ``IncomingRequestCfProperties``.

On Cloudflare the edge fills it (where the client is, which data centre answered, the TLS
session). A local server knows none of that, so, as ``wrangler dev`` does when it cannot
fetch a real one, every incoming request gets the same placeholder: the values of
Miniflare's ``fallbackCf`` (workers-sdk ``packages/miniflare/src/cf.ts``), so code that reads
``request.cf.country`` or ``request.cf["colo"]`` runs and sees what it would see there.
"""

from __future__ import annotations

import json
from typing import Any

from edgelet.runtime.jstypes import JsObject

#: the placeholder as JSON: each request gets its own copy (a Worker may change its copy)
_PLACEHOLDER = json.dumps({
    "asOrganization": "",
    "asn": 395747,
    "colo": "DFW",
    "city": "Austin",
    "region": "Texas",
    "regionCode": "TX",
    "metroCode": "635",
    "postalCode": "78701",
    "country": "US",
    "continent": "NA",
    "timezone": "America/Chicago",
    "latitude": "30.27130",
    "longitude": "-97.74260",
    "clientTcpRtt": 0,
    "httpProtocol": "HTTP/1.1",
    "requestPriority": "weight=192;exclusive=0",
    "tlsCipher": "AEAD-AES128-GCM-SHA256",
    "tlsVersion": "TLSv1.3",
    "tlsClientAuth": {
        "certPresented": "0", "certVerified": "NONE", "certRevoked": "0",
        "certIssuerDN": "", "certSubjectDN": "", "certIssuerDNRFC2253": "",
        "certSubjectDNRFC2253": "", "certIssuerDNLegacy": "", "certSubjectDNLegacy": "",
        "certSerial": "", "certIssuerSerial": "", "certSKI": "", "certIssuerSKI": "",
        "certFingerprintSHA1": "", "certFingerprintSHA256": "", "certNotBefore": "",
        "certNotAfter": "",
    },
    "edgeRequestKeepAliveStatus": 0,
    "clientTrustScore": 99,
    "botManagement": {
        "corporateProxy": False, "verifiedBot": False,
        "ja3Hash": "25b4882c2bcb50cd6b469ff28c596742", "staticResource": False,
        "detectionIds": [], "score": 99,
    },
})


def incoming_cf() -> JsObject:
    """A fresh placeholder ``cf`` (nested objects allow attribute access too:
    ``request.cf.botManagement.score``)."""
    cf: JsObject = json.loads(_PLACEHOLDER, object_hook=JsObject)
    return cf


def as_cf(value: Any) -> Any:
    """A ``cf`` given to ``Request(..., cf=...)``: None stays None, a mapping becomes an
    attribute dict (Cloudflare hands back a JS object: ``request.cf.cacheTtl``)."""
    if value is None or isinstance(value, JsObject):
        return value
    if isinstance(value, dict):
        return JsObject({k: as_cf(v) if isinstance(v, dict) else v for k, v in value.items()})
    return value
