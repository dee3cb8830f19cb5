#!/usr/bin/env python3
"""Regenerates fuzz/wycheproof_jwks.json and the seed corpora in
fuzz/corpus/<target>/ from the repository's Wycheproof vectors
(tests/vectors/wycheproof/json_web_signature_test.json) and a few tokens
signed here with the fuzz layers' HS256 secret. Deterministic; standard
library only."""
import base64, hashlib, hmac, json, os, shutil, time

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "vectors", "wycheproof", "json_web_signature_test.json")
SECRET = b"fuzz-secret-0123456789abcdef-0123"
ISSUER, AUDIENCE = "https://issuer.example", "fuzz-api"
EXP = 4102444800  # 2100-01-01: the seeds stay valid

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def hs256(header, payload):
    signing = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(payload)
    sig = hmac.new(SECRET, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)

def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

vectors = json.load(open(VECTORS))
shutil.rmtree(os.path.join(HERE, "corpus"), ignore_errors=True)

# The Wycheproof keys the verify_path layer also holds: public halves, and
# the one HS256 secret (as the library's own Wycheproof test loads them).
keys, seen = [], set()
for g in vectors["testGroups"]:
    jwk = g.get("public") or g.get("private")
    if jwk and jwk.get("kty") in ("RSA", "EC", "OKP", "oct") and json.dumps(jwk, sort_keys=True) not in seen:
        seen.add(json.dumps(jwk, sort_keys=True))
        keys.append(jwk)
# Only keys the library loads go in (ES512/P-521 and alg/kty mismatches are refused).
usable = [k for k in keys if k.get("alg") in ("HS256","HS384","HS512","RS256","RS384","RS512","PS256","PS384","PS512","ES256","ES384","EdDSA")
          and not (k.get("kty") == "oct" and len(base64.urlsafe_b64decode(k["k"] + "==")) < 32)]
json.dump({"keys": usable}, open(os.path.join(HERE, "wycheproof_jwks.json"), "w"), indent=1)

# verify_path / token_extraction: Wycheproof tokens (compact ones), a few
# of ours.
now = int(time.time())
ours = [
    hs256({"alg": "HS256", "typ": "JWT"}, json.dumps({"sub": "alice", "exp": EXP, "iss": ISSUER, "aud": AUDIENCE}).encode()),
    hs256({"alg": "HS256", "typ": "at+jwt"}, json.dumps({"sub": "a", "exp": EXP, "iat": now, "scope": "read write", "jti": "1", "iss": ISSUER, "aud": [AUDIENCE]}).encode()),
    hs256({"alg": "HS256"}, b'{"exp":1800000000.5}'),
    hs256({"alg": "none"}, b'{"exp":4102444800}'),
]
compact = [t["jws"] for g in vectors["testGroups"] for t in g["tests"] if isinstance(t["jws"], str)]
for i, tok in enumerate(ours + compact[::5]):
    write("verify_path", f"token-{i:03}", tok)
for i, tok in enumerate(ours[:2] + compact[::40]):
    # flags byte, then query, Authorization, Cookie, X-Access-Token (0xFF-separated)
    write("token_extraction", f"bearer-{i:03}", b"\x24" + b"\xff" + b"Bearer " + tok.encode())
tok = ours[0].encode()
write("token_extraction", "cookie", b"\x24\xff\xffa=1; access_token=" + tok + b"; b=2")
write("token_extraction", "cookie-quoted", b"\x24\xff\xffaccess_token=\"" + tok + b"\"")
write("token_extraction", "query", b"\x00access_token=" + tok)
write("token_extraction", "header", b"\x24\xff\xff\xff" + tok)
write("token_extraction", "two-places", b"\x24access_token=" + tok + b"\xffBearer " + tok)
write("token_extraction", "optional-basic", b"\xa4\xffBasic dXNlcjpwYXNz")

# jwks_parsing: each Wycheproof JWK alone and as a set, plus the whole set.
for i, k in enumerate(keys):
    write("jwks_parsing", f"set-{i:02}", json.dumps({"keys": [k]}))
write("jwks_parsing", "all", json.dumps({"keys": keys}))
write("jwks_parsing", "empty", '{"keys":[]}')

# claims_decoder: claim sets (valid for the configured layers, and odd).
payloads = [
    {"sub": "alice", "exp": EXP, "iss": ISSUER, "aud": AUDIENCE, "jti": "x", "iat": now, "scope": "read"},
    {"sub": "bob", "exp": EXP, "iss": ISSUER, "aud": [AUDIENCE, "b"], "jti": "y", "iat": now, "scp": ["read"], "roles": ["admin"]},
    {"exp": EXP},
    {"exp": 1800000000.5, "nbf": 0, "iat": -1},
    {"exp": "4102444800", "aud": 7, "iss": None},
    {"exp": EXP, "nested": {"exp": 1, "a": [1, 2, {"b": None}]}, "unicode": "\u00e9\u2603"},
]
for i, p in enumerate(payloads):
    write("claims_decoder", f"claims-{i}", json.dumps(p))
write("claims_decoder", "duplicate", '{"exp":4102444800,"exp":4102444800}')
write("claims_decoder", "escaped-name", '{"\\u0065xp":4102444800,"sub":"\\ud83d\\ude00"}')
write("claims_decoder", "array", "[1,2]")
for i, t in enumerate([t for t in compact if t.count(".") == 2][:30:3]):
    payload = t.split(".")[1]
    write("claims_decoder", f"wycheproof-{i}", base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

# differential: flags, exp/nbf/iat offsets, iss, aud, tamper position and
# character, then a JSON object merged over the claims.
write("differential", "valid", bytes([1, 60, 0, 0, 1, 1, 3, 5]))
write("differential", "all", bytes([7, 100, 0xF0, 0xF0, 1, 2, 9, 60]) + b'{"sub":"x","scope":"a b"}')
write("differential", "expired", bytes([1, 0xC0, 0, 0, 1, 1, 0, 0]))
write("differential", "override", bytes([1, 60, 0, 0, 1, 1, 20, 1]) + b'{"exp":"soon","iss":["https://issuer.example"]}')
write("differential", "float", bytes([0, 0, 0, 0, 1, 1, 40, 2]) + b'{"exp":4102444800.5}')

# remote_documents: a flags byte (bit 0 OIDC, bit 1 a third refresh, bits 3-4
# max_redirects, bit 5 issuer with a path, bit 6 a 300-byte body cap), then
# per response six fields split at 0xFF: control bytes (status selector,
# content-length/chunking/error bits, two spare), content-type,
# cache-control, etag, location, body. Discovery documents name the right
# issuer and a jwks_uri on the same host, so the fuzzer reaches the JWK set.
pub = [k for k in keys if k.get("kty") != "oct"]
sym = [k for k in keys if k.get("kty") == "oct"]
def jwks(ks):
    return json.dumps({"keys": ks}).encode()
def discovery(issuer, uri):
    return json.dumps({"issuer": issuer, "jwks_uri": uri, "id_token_signing_alg_values_supported": ["RS256"]}).encode()
def resp(ctl=b"\x00", ct=b"application/json", cc=b"", etag=b"", loc=b"", body=b""):
    return [ctl, ct, cc, etag, loc, body]
def remote(name, flags, *responses):
    fields = [f for r in responses for f in r]
    write("remote_documents", name, bytes([flags]) + b"\xff".join(fields))
O = "http://127.0.0.1:1"
mixed = jwks(pub[:2] + sym[:1])
remote("jwks-etag-304", 0, resp(b"\x00\x01", cc=b"public, max-age=600", etag=b'"v1"', body=mixed),
       resp(b"\x03", ct=b"", cc=b"max-age=60", etag=b'"v1"'))
remote("jwks-redirect", 0x08, resp(b"\x04\x00\x01", ct=b"text/html", loc=b"/v2/jwks"),
       resp(b"\x00\x0c", ct=b"application/jwk-set+json; charset=utf-8", etag=b'W/"x"', body=jwks(pub[1:3])),
       resp(b"\x00\x08", cc=b"no-cache", body=jwks(pub[:1])))
remote("jwks-304-first", 0x02, resp(b"\x03", etag=b'"v1"'), resp(b"\x00", etag=b'"v1"', body=mixed),
       resp(b"\x03", loc=b"/elsewhere"))
remote("jwks-errors", 0x42, resp(b"\x06\x00\x02"), resp(b"\x00", ct=b"text/html", body=mixed),
       resp(b"\x00\x01", body=mixed), resp(b"\x00\x24", body=jwks(pub[:1])), resp(b"\x00\x02\x00\x00\x10\x00", body=b"{}"))
remote("jwks-symmetric-only", 0, resp(body=jwks(sym)), resp(body=jwks(sym + pub[:1])))
remote("oidc", 0x01, resp(body=discovery(O, O + "/jwks")), resp(b"\x00\x01", etag=b'"e"', cc=b"max-age=3600", body=mixed),
       resp(b"\x03", etag=b'"e"'))
remote("oidc-path", 0x23, resp(body=discovery(O + "/r/", O + "/r/protocol/certs")), resp(body=jwks(pub[:1])),
       resp(b"\x05\x00\x01"), resp(body=discovery(O + "/r/", O + "/r/certs2")), resp(body=jwks(pub[2:4])))
remote("oidc-redirects", 0x19, resp(b"\x04\x00\x03", loc=O.encode() + b"/.well-known/openid-configuration2"),
       resp(body=discovery(O, "https://keys.example/jwks")), resp(b"\x04\x00\x04", loc=b"https://keys.example/v2"),
       resp(body=jwks(pub[:2])), resp(b"\x03"))
remote("oidc-wrong-issuer", 0x03, resp(body=discovery(O + "/", O + "/jwks")), resp(body=discovery(O, "http://10.0.0.1/jwks")),
       resp(body=discovery(O, O + "/jwks")), resp(body=mixed))
