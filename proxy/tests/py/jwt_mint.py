"""Mints the JWT test matrix for tests/authz.rs with PyJWT + cryptography.

jwt_mint.py DIR ISS AUD: writes DIR/jwks.json (RSA kid "rsa", P-256 kid "ec", Ed25519 kid "ed")
and DIR/jwks2.json (a rotated RSA key, kid "rsa2"), and prints one JSON object of named tokens.
"""
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

out_dir, iss, aud = sys.argv[1], sys.argv[2], sys.argv[3]
now = int(time.time())

rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
ed_key = ed25519.Ed25519PrivateKey.generate()
other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rot_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(alg, key, kid):
    d = json.loads(alg.to_jwk(key.public_key()))
    d["kid"] = kid
    return d


with open(f"{out_dir}/jwks.json", "w") as f:
    json.dump({"keys": [jwk(RSAAlgorithm, rsa_key, "rsa"), jwk(ECAlgorithm, ec_key, "ec"),
                        jwk(OKPAlgorithm, ed_key, "ed")]}, f)
with open(f"{out_dir}/jwks2.json", "w") as f:
    json.dump({"keys": [jwk(RSAAlgorithm, rot_rsa, "rsa2")]}, f)


def claims(**over):
    c = {"iss": iss, "sub": "alice", "aud": aud, "iat": now, "exp": now + 3600,
         "groups": ["readers"]}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign(c, key=rsa_key, alg="RS256", kid="rsa"):
    return jwt.encode(c, key, algorithm=alg, headers={"kid": kid})


def unsigned(c):
    import base64
    b = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    return b({"alg": "none", "typ": "JWT"}) + "." + b(c) + "."


tokens = {
    "rs256": sign(claims()),
    "es256": sign(claims(), ec_key, "ES256", "ec"),
    "eddsa": sign(claims(), ed_key, "EdDSA", "ed"),
    "writer": sign(claims(sub="bob", groups=["writers"])),
    "within_skew": sign(claims(exp=now - 10)),
    "expired": sign(claims(exp=now - 3600)),
    "nbf_future": sign(claims(nbf=now + 3600)),
    "wrong_aud": sign(claims(aud="someone-else")),
    "no_aud": sign(claims(aud=None)),
    "wrong_iss": sign(claims(iss="https://evil.example")),
    "bad_sig": sign(claims(), other_rsa),
    "alg_none": unsigned(claims()),
    "rotated": sign(claims(), rot_rsa, "RS256", "rsa2"),
}
print(json.dumps(tokens))
