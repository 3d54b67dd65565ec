# Sourced by the benchmark scripts: sets secret, a random HS256 key
# (base64url, as a JWK's k), and token, a JWT it signs for subject "bench",
# valid for a day: what the auth plugin of the benchmarked chain admits.
secret=$(python3 -c 'import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
token=$(python3 - "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
key = base64.urlsafe_b64decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 4))
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
now = int(time.time())
claims = b64(json.dumps({"sub": "bench", "iat": now, "exp": now + 86400}).encode())
sig = b64(hmac.new(key, (head + "." + claims).encode(), hashlib.sha256).digest())
print(head + "." + claims + "." + sig)
PY
)
