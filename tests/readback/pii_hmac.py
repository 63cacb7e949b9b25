"""HMAC-SHA256 of values as cxlake's PII policy documents it, computed independently.

Usage: pii_hmac.py KEY KIND VALUES.json   (KIND: email | phone | value; prints the hex digests as JSON)
"""
import hashlib
import hmac
import json
import re
import sys

key, kind, path = sys.argv[1], sys.argv[2], sys.argv[3]


def normalize(value):
    if kind == "email":
        return value.strip().lower()
    if kind == "phone":
        return re.sub(r"[^0-9+]", "", value)
    return value.strip()


values = json.load(open(path))
print(json.dumps([hmac.new(key.encode(), normalize(v).encode(), hashlib.sha256).hexdigest() for v in values]))
