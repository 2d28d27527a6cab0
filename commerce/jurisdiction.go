package commerce

import (
	"context"
	"strings"
)

// StoreJurisdiction is the jurisdiction of the stores Sieve fronts (ISO
// 3166-1 alpha-2): a shopper whose phone gives no country (a username-only
// shopper, an unknown calling code, a shopper known before the registry)
// is taken to be where the store is, and a partner registered without a
// jurisdiction is taken to be there too (no transfer).
const StoreJurisdiction = "IN"

// callingCodes maps ITU-T E.164 country calling codes to the country whose
// rules bind the shopper's data: India, the EEA, and the usual third
// countries. Longest prefix wins; shared codes (+1, +7) name the largest
// country, which only matters for EEA shoppers, who have their own codes.
var callingCodes = map[string]string{
	"91": "IN",
	"30": "GR", "31": "NL", "32": "BE", "33": "FR", "34": "ES", "351": "PT", "352": "LU", "353": "IE",
	"354": "IS", "356": "MT", "357": "CY", "358": "FI", "359": "BG", "36": "HU", "370": "LT", "371": "LV",
	"372": "EE", "385": "HR", "386": "SI", "39": "IT", "40": "RO", "420": "CZ", "421": "SK", "423": "LI",
	"43": "AT", "45": "DK", "46": "SE", "47": "NO", "48": "PL", "49": "DE",
	"41": "CH", "44": "GB", "1": "US", "7": "RU", "81": "JP", "82": "KR", "86": "CN", "65": "SG",
	"971": "AE", "966": "SA", "880": "BD", "92": "PK", "94": "LK", "977": "NP", "61": "AU", "64": "NZ",
	"27": "ZA", "55": "BR", "52": "MX", "60": "MY", "62": "ID", "63": "PH", "66": "TH", "84": "VN",
}

// JurisdictionOfPhone returns the country of a phone number in digits
// with its country calling code (a WhatsApp wa_id), or "" when it has none
// the table knows.
func JurisdictionOfPhone(waID string) string {
	waID = strings.TrimPrefix(waID, "+")
	for n := 3; n >= 1; n-- {
		if len(waID) > n {
			if cc, ok := callingCodes[waID[:n]]; ok {
				return cc
			}
		}
	}
	return ""
}

// ShopperJurisdiction is the jurisdiction the policy applies to a shopper:
// the one stored from the phone, else the store's.
func ShopperJurisdiction(row SubjectRow) string {
	if row.Jurisdiction != "" {
		return row.Jurisdiction
	}
	return StoreJurisdiction
}

// identityJurisdictionStore is implemented by subject stores that keep the
// shopper's jurisdiction (PostgreSQL does), stored with a new shopper's
// sealed identity in one statement. It is optional so that a store
// without it keeps working, every shopper then being in the store's
// jurisdiction.
type identityJurisdictionStore interface {
	SetSubjectIdentityJurisdiction(ctx context.Context, id string, sealed []byte, country string) error
}
