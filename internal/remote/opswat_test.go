package remote

import "testing"

func TestOPSWATErrorBody(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"error":"Could not activate"}`, "Could not activate"},
		{"error: 'Could not activate your product'\n", "Could not activate your product"},
		{"\n# comment\nerror: \"quoted\"\n", "quoted"},
		{"deployment: abc\nexpiration: 2030-01-01\nerror_budget: 3\n", ""},
		{`{"deployment":"abc"}`, ""},
		{`{"error":""}`, "(empty error message)"},
		{"", ""},
	} {
		if got := opswatError([]byte(tc.body)); got != tc.want {
			t.Errorf("opswatError(%q) = %q; want %q", tc.body, got, tc.want)
		}
	}
}
