package authority

import (
	"net/mail"
	"strings"
)

// Limits on input.
const (
	maxIDBytes    = 128
	maxEmailBytes = 254
	minPassword   = 8
	maxPassword   = 1024
	// MaxList caps ListMembers and ListConversations.
	MaxList = 1000
)

// checkID accepts 1 to 128 bytes of letters, digits and . _ : @ -.
func checkID(what, id string) error {
	if id == "" || len(id) > maxIDBytes {
		return invalid("%s must be 1 to %d bytes", what, maxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '@' || c == '-'
		if !ok {
			return invalid("%s may hold only letters, digits and . _ : @ -", what)
		}
	}
	return nil
}

// normalEmail returns the lower-case address, or an error.
func normalEmail(email string) (string, error) {
	if email == "" || len(email) > maxEmailBytes {
		return "", invalid("email must be 1 to %d bytes", maxEmailBytes)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email {
		return "", invalid("email is not an address such as agent@example.com")
	}
	return strings.ToLower(email), nil
}
