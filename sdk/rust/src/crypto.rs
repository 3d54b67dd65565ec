//! Keys, signature checks, digests and bearer tokens: the byte-level work
//! runs natively in the host.

use crate::error::{check, filled};
use crate::{abi, hostcall, Error, Items};

/// A signature algorithm; a key is bound to one when registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
#[allow(missing_docs)]
pub enum Alg {
    HS256 = abi::ALG_HS256,
    HS384 = abi::ALG_HS384,
    HS512 = abi::ALG_HS512,
    RS256 = abi::ALG_RS256,
    RS384 = abi::ALG_RS384,
    RS512 = abi::ALG_RS512,
    PS256 = abi::ALG_PS256,
    PS384 = abi::ALG_PS384,
    PS512 = abi::ALG_PS512,
    ES256 = abi::ALG_ES256,
    ES384 = abi::ALG_ES384,
    EdDSA = abi::ALG_ED_DSA,
}

/// How key material is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum KeyFormat {
    /// An HMAC secret, a 32-byte Ed25519 key or an uncompressed EC point.
    Raw = abi::KEY_RAW,
    /// DER SubjectPublicKeyInfo.
    Pkix = abi::KEY_PKIX,
    /// One JWK object.
    Jwk = abi::KEY_JWK,
}

/// A registered key's handle, the same in every instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(pub i32);

impl Key {
    /// Registers a key for alg (configure phase only); weak keys are
    /// [`Error::Invalid`].
    pub fn register(alg: Alg, format: KeyFormat, material: &[u8]) -> Result<Key, Error> {
        check(hostcall::key_register(alg as i32, format as i32, material)).map(Key)
    }

    /// Verifies sig over msg: Ok(true) when valid.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<bool, Error> {
        check(hostcall::verify(self.0, msg, sig)).map(|r| r == 1)
    }
}

/// A digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Digest {
    /// SHA-256, 32 bytes.
    Sha256 = abi::DIGEST_SHA256,
    /// SHA-384, 48 bytes.
    Sha384 = abi::DIGEST_SHA384,
    /// SHA-512, 64 bytes.
    Sha512 = abi::DIGEST_SHA512,
    /// HMAC-SHA256 under a secret of the host process, 32 bytes: what to
    /// log instead of a credential.
    Keyed = abi::DIGEST_KEYED,
}

/// Writes the digest of msg into buf (64 bytes hold any) and returns it.
pub fn digest<'a>(alg: Digest, msg: &[u8], buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
    let r = hostcall::digest(alg as i32, msg, buf);
    filled(r, buf).map(|b| &*b)
}

/// A token verdict (wasm/abi/README.md, "Bearer tokens"). A guest treats
/// any verdict but [`Verdict::VALID`] as a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict(pub u8);

impl Verdict {
    /// The token passed every check.
    pub const VALID: Verdict = Verdict(abi::TOKEN_VALID as u8);
    /// The token is not a compact JWS.
    pub const MALFORMED: Verdict = Verdict(abi::TOKEN_MALFORMED as u8);
    /// The token has a `kid` no policy key has.
    pub const UNKNOWN_KID: Verdict = Verdict(abi::TOKEN_UNKNOWN_KID as u8);
    /// The token names an `alg` no matching key is registered for.
    pub const ALG_NOT_ACCEPTED: Verdict = Verdict(abi::TOKEN_ALG_NOT_ACCEPTED as u8);
    /// The token has a signature every candidate key refused.
    pub const BAD_SIGNATURE: Verdict = Verdict(abi::TOKEN_BAD_SIGNATURE as u8);
    /// The token has a payload that is not a claims object.
    pub const MALFORMED_CLAIMS: Verdict = Verdict(abi::TOKEN_MALFORMED_CLAIMS as u8);
    /// The token has no `exp` and the policy requires one.
    pub const NO_EXPIRY: Verdict = Verdict(abi::TOKEN_NO_EXPIRY as u8);
    /// The token has expired.
    pub const EXPIRED: Verdict = Verdict(abi::TOKEN_EXPIRED as u8);
    /// The token is not valid yet (`nbf`).
    pub const NOT_YET_VALID: Verdict = Verdict(abi::TOKEN_NOT_YET_VALID as u8);
    /// The token was issued in the future (`iat`).
    pub const ISSUED_LATER: Verdict = Verdict(abi::TOKEN_ISSUED_LATER as u8);
    /// The token has another `iss`.
    pub const WRONG_ISSUER: Verdict = Verdict(abi::TOKEN_WRONG_ISSUER as u8);
    /// The token has none of the policy's audiences.
    pub const WRONG_AUDIENCE: Verdict = Verdict(abi::TOKEN_WRONG_AUDIENCE as u8);
    /// The token has a forwarded claim that is not text.
    pub const CLAIM_NOT_TEXT: Verdict = Verdict(abi::TOKEN_CLAIM_NOT_TEXT as u8);
    /// The token has a forwarded claim that is not a valid header value.
    pub const CLAIM_NOT_VALUE: Verdict = Verdict(abi::TOKEN_CLAIM_NOT_VALUE as u8);
    /// Whether the token is valid.
    pub const fn is_valid(self) -> bool {
        self.0 == abi::TOKEN_VALID as u8
    }
}

/// A registered token policy: the host verifies bearer tokens with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenVerifier(pub i32);

impl TokenVerifier {
    /// Registers policy (configure phase only), encoded in a 4 KiB stack
    /// buffer: a bigger one is [`Error::TooLarge`].
    pub fn new(policy: &crate::token::TokenPolicy) -> Result<TokenVerifier, Error> {
        let mut buf = [0u8; 4096];
        let spec = policy.encode(&mut buf).ok_or(Error::TooLarge)?;
        TokenVerifier::register(spec)
    }

    /// Registers a policy already encoded (wasm/abi/README.md, "Bearer
    /// tokens"; configure phase only).
    pub fn register(spec: &[u8]) -> Result<TokenVerifier, Error> {
        check(hostcall::token_policy(spec)).map(TokenVerifier)
    }

    /// Verifies token; for a valid one, buf receives the policy's claims
    /// (each its raw JSON value, or empty when the token lacks it) and the
    /// host sets the policy's forwards. [`Error::Short`] asks for a bigger
    /// buffer.
    pub fn verify<'a>(&self, token: &[u8], buf: &'a mut [u8]) -> Result<(Verdict, Items<'a>), Error> {
        let r = hostcall::token_verify(self.0, token, buf);
        let b = filled(r, buf)?;
        let (&v, claims) = b.split_first().ok_or(Error::Invalid)?;
        Ok((Verdict(v), Items::new(claims)))
    }
}
