package abi

// The names of the request values an auth plugin sets, with ValueForward,
// for the identity it verified. Later plugins read them (a rate limit per
// user keys on "value:identity-sub"), the cache takes IdentityMethod as
// proof that a request was authenticated after its credentials were
// stripped (RFC 9111 §3.5), and the application behind the origin receives
// them as Wedge-Value-<Name> fields. The host gives them no meaning of its
// own: they are a convention between plugins and applications, spelled
// here once so that every side agrees.
const (
	IdentityMethod = "identity-method" // how the request was authenticated: "jwt" or "api-key"
	IdentitySub    = "identity-sub"    // a JWT's sub claim
	IdentityIss    = "identity-iss"    // a JWT's iss claim
	IdentityScope  = "identity-scope"  // a JWT's scope claim, or its scp array joined with spaces
	IdentityKey    = "identity-key"    // the configured name of the API key
)
