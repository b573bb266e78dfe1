//! Money is integer minor units with a currency; never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest price or total Kassa accepts, in minor units (one trillion):
/// far above any real basket, and small enough that a total of 1,000 lines of
/// 1,000 units can never overflow an `i64`.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000_000;

/// An active ISO 4217 currency code, such as `USD`, `EUR` or `JPY`: three
/// upper-case letters naming a currency in circulation today. Superseded
/// codes (`HRK`, `BGN`), fund codes (`BOV`, `CHE`) and the special codes for
/// metals, testing and "no currency" (`XAU`, `XTS`, `XXX`) are refused. The
/// list is the `iso_currency` crate's, kept current by its maintainers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "USD")]
pub struct Currency(String);

impl Currency {
    /// Parses a currency code exactly as ISO 4217 spells it: upper case, no
    /// surrounding whitespace.
    pub fn parse(code: &str) -> Result<Self, String> {
        match iso_currency::Currency::from_code(code) {
            Some(currency) if is_in_circulation(currency) => Ok(Self(currency.code().to_owned())),
            Some(currency) => Err(match currency.is_superseded() {
                Some(successor) => format!("{code} is no longer in use; it was replaced by {}", successor.code()),
                None => format!("{code} is not a currency in circulation (fund, metal or test code)"),
            }),
            None => Err("must be an ISO 4217 currency code in upper case, such as USD or EUR".into()),
        }
    }
}

fn is_in_circulation(currency: iso_currency::Currency) -> bool {
    currency.is_superseded().is_none() && !currency.is_fund() && !currency.is_special()
}

/// Digits after the decimal point of `code`'s amounts; 2 for an unknown
/// code (a currency stored before codes were checked).
fn minor_unit_digits(code: &str) -> u32 {
    iso_currency::Currency::from_code(code).and_then(iso_currency::Currency::exponent).map_or(2, u32::from)
}

impl AsRef<str> for Currency {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(code: String) -> Result<Self, String> {
        Self::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.0
    }
}

/// Validates a price in minor units: zero or more, at most [`MAX_AMOUNT_CENTS`].
pub fn parse_price_cents(cents: i64) -> Result<i64, String> {
    if cents < 0 {
        Err("must not be negative".into())
    } else if cents > MAX_AMOUNT_CENTS {
        Err(format!("must be at most {MAX_AMOUNT_CENTS}"))
    } else {
        Ok(cents)
    }
}

/// Formats an amount for people: `USD 1,234.50`, `JPY 1,500`,
/// `BHD 1.234`: as many decimals as the currency has minor units (ISO 4217's
/// exponent; two for an unknown code).
pub fn format_money(amount_cents: i64, currency: &str) -> String {
    let digits_after_point = minor_unit_digits(currency);
    let sign = if amount_cents < 0 { "-" } else { "" };
    let abs = amount_cents.unsigned_abs();
    let scale = 10_u64.pow(digits_after_point);
    let (whole, fraction) = (abs / scale, abs % scale);
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    if digits_after_point == 0 {
        format!("{currency} {sign}{grouped}")
    } else {
        let width = digits_after_point as usize;
        format!("{currency} {sign}{grouped}.{fraction:0width$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_active_iso_4217_codes() {
        for code in ["USD", "EUR", "JPY", "GBP", "CHF", "BHD"] {
            assert_eq!(Currency::parse(code).map(String::from), Ok(code.to_owned()));
        }
        for bad in ["XYZ", "usd ", "usd", " USD", "US", "U$D", "EURO", "", "XTS", "XXX", "XAU", "HRK", "BOV"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Currency::parse("HRK").unwrap_err().contains("replaced by EUR"));
    }

    #[test]
    fn prices_are_bounded() {
        assert_eq!(parse_price_cents(0), Ok(0));
        assert!(parse_price_cents(-1).is_err());
        assert!(parse_price_cents(MAX_AMOUNT_CENTS + 1).is_err());
    }

    #[test]
    fn money_is_formatted_with_grouping_and_two_decimals() {
        assert_eq!(format_money(123_450, "USD"), "USD 1,234.50");
        assert_eq!(format_money(5, "EUR"), "EUR 0.05");
        assert_eq!(format_money(-100_000_000, "USD"), "USD -1,000,000.00");
        assert_eq!(format_money(1500, "JPY"), "JPY 1,500");
        assert_eq!(format_money(1234, "BHD"), "BHD 1.234");
        assert_eq!(format_money(-5, "KWD"), "KWD -0.005");
        assert_eq!(format_money(1234, "XYZ"), "XYZ 12.34");
    }

    #[test]
    fn the_largest_basket_cannot_overflow() {
        assert!(MAX_AMOUNT_CENTS.checked_mul(1000 * 1000).is_some());
    }
}
