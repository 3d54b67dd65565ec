//! The token checks (token.go): token_policy in configure, token_verify in
//! the request phase with HS256 tokens the kit signs against the host clock.

use wedge::token::{TokenKey, TokenPolicy};
use wedge::{abi, base64, hostcall};

use crate::*;

/// TokenVerdictName of the verdicts the kit expects.
fn verdict_name(v: i32) -> String {
    match v {
        abi::TOKEN_VALID => "TokenValid".into(),
        abi::TOKEN_MALFORMED => "TokenMalformed".into(),
        abi::TOKEN_BAD_SIGNATURE => "TokenBadSignature".into(),
        abi::TOKEN_NO_EXPIRY => "TokenNoExpiry".into(),
        abi::TOKEN_EXPIRED => "TokenExpired".into(),
        _ => format!("TokenVerdict({})", v),
    }
}

impl Kit {
    /// The kit's HS256 key (raw format), for the token checks.
    fn hs256_key(&self) -> Option<&RegKey> {
        self.keys.iter().find(|k| k.name.starts_with("HS256/") && k.format == abi::KEY_RAW)
    }

    /// Registers the kit's token policy: the HS256 key, exp required, sub
    /// asked back.
    pub(crate) fn configure_tokens(&mut self) {
        self.policy = -1;
        let handle = match self.hs256_key() {
            Some(k) => k.handle,
            None => return self.check("token_policy", "config has a raw HS256 key", false, format_args!("")),
        };
        let keys = [TokenKey { key: handle, kid: b"" }];
        let pol = TokenPolicy { keys: &keys, require_expiry: true, claims: &[b"sub"], ..TokenPolicy::default() };
        let mut buf = vec![0; pol.encoded_len()];
        let spec = pol.encode(&mut buf).unwrap_or_default();
        let policy = hostcall::token_policy(spec);
        self.policy = policy;
        self.check("token_policy", "registers a policy", policy >= 0, format_args!("got {}", policy));
        self.eq("token_policy", "the same spec again gets the same handle", hostcall::token_policy(spec), policy);
        let r = hostcall::token_policy(&spec[..spec.len().saturating_sub(1)]);
        self.errno("token_policy", "truncated spec", r, abi::ERR_INVALID);
        let unknown = [TokenKey { key: 999, kid: b"" }];
        let mut buf = [0u8; 64];
        let spec = TokenPolicy { keys: &unknown, ..TokenPolicy::default() }.encode(&mut buf).unwrap_or_default();
        self.errno("token_policy", "unknown key handle", hostcall::token_policy(spec), abi::ERR_NOT_FOUND);
    }

    /// Checks token_verify in the request phase.
    pub(crate) fn tokens(&mut self) {
        let mut buf = [0u8; 64];
        let empty = TokenPolicy::default().encode(&mut buf).unwrap_or_default();
        self.errno("token_policy", "in request", hostcall::token_policy(empty), abi::ERR_PHASE);
        self.errno("token_verify", "unknown policy", hostcall::token_verify(999, b"a.b.c", &mut []), abi::ERR_NOT_FOUND);
        let key = match self.hs256_key() {
            Some(k) if self.policy >= 0 => k.key.clone(),
            _ => return self.check("token_verify", "has a policy", false, format_args!("")),
        };
        let now = hostcall::time_now() / 1_000_000_000;
        let sign = |payload: &str| -> Vec<u8> {
            let mut tok = enc(br#"{"alg":"HS256"}"#);
            tok.push(b'.');
            tok.extend(enc(payload.as_bytes()));
            let mac = sha256::hmac(&key, &tok);
            tok.push(b'.');
            tok.extend(enc(&mac));
            tok
        };
        let policy = self.policy;
        let verify = |tok: &[u8]| read(64, |buf| hostcall::token_verify(policy, tok, buf));
        let good = sign(&format!(r#"{{"sub":"alice","exp":{}}}"#, now + 600));
        let want = "\0\"alice\"\0";
        self.eq("token_verify", "probe returns the full length", hostcall::token_verify(policy, &good, &mut []), want.len() as i32);
        let (got, _) = verify(&good);
        self.eq_bytes("token_verify", "valid token: TokenValid and the sub claim", &got, want);
        let (got, _) = verify(&good);
        self.eq_bytes("token_verify", "valid again, from the cache", &got, want);
        // Swap a signature character for another base64url letter: flipping a
        // bit could make it '-' or '_' into an invalid character (Malformed),
        // depending on the signed time.
        let mut bad = good.clone();
        let i = bad.len() - 2;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        for (what, tok, v) in [
            ("tampered signature", bad, abi::TOKEN_BAD_SIGNATURE),
            ("expired", sign(&format!(r#"{{"sub":"alice","exp":{}}}"#, now - 10)), abi::TOKEN_EXPIRED),
            ("no exp", sign(r#"{"sub":"alice"}"#), abi::TOKEN_NO_EXPIRY),
            ("two segments", b"a.b".to_vec(), abi::TOKEN_MALFORMED),
        ] {
            let (got, n) = verify(&tok);
            let what = format!("{} -> {}", what, verdict_name(v));
            self.check("token_verify", &what, n == 1 && got.first() == Some(&(v as u8)), format_args!("got {}", q(&got)));
        }
    }
}

/// base64url without padding, as JWS segments are.
fn enc(b: &[u8]) -> Vec<u8> {
    let mut out = vec![0; base64::encoded_len(b.len())];
    let n = base64::encode_url(b, &mut out).map_or(0, |e| e.len());
    out.truncate(n);
    out
}
