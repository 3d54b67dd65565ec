package wire

import "testing"

// TestReserved: every spelling that a gateway maps to the same HTTP_*
// variable as a forwarded value is reserved; ordinary names, with '_' or
// not, are not.
func TestReserved(t *testing.T) {
	for _, name := range []string{
		"Wedge-Value-Identity-Sub", "wedge-value-identity-sub", "WEDGE-VALUE-X",
		"Wedge_Value_Identity_Sub", "wedge_value_identity_sub", "WEDGE_VALUE_IDENTITY_SUB",
		"Wedge-Value_Identity-Sub", "Wedge_value-identity_sub", "wEdGe_VaLuE_iDeNtItY_sUb",
		"Wedge.Value.Identity.Sub", "Wedge~Value~x", "Wedge-Value-", "Wedge_Value_",
		"Proxy", "proxy", "PROXY",
	} {
		if !Reserved(name) || !Reserved([]byte(name)) {
			t.Errorf("%q not reserved", name)
		}
	}
	for _, name := range []string{
		"", "X_Forwarded_For", "Content_Type", "Wedge-Pin", "Wedge-Valu", "Wedge-Values",
		"WedgeValue-X", "Wedge-Value", "X-Wedge-Value-Identity-Sub", "_Wedge_Value_X",
		"Wedge-Cache-Control", "Proxy-Authorization", "Proxy_", "Proxies", "Authorization",
	} {
		if Reserved(name) {
			t.Errorf("%q reserved", name)
		}
	}
}
