//! Money is integer minor units with a currency; never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest price or total Kassa accepts, in minor units (one trillion):
/// far above any real basket, and small enough that a total of 1,000 lines of
/// 1,000 units can never overflow an `i64`.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000_000;

/// An ISO 4217-shaped currency code: three upper-case ASCII letters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "USD")]
pub struct Currency(String);

impl Currency {
    /// Parses a currency code; lower case is accepted and normalised.
    pub fn parse(code: &str) -> Result<Self, String> {
        let code = code.trim().to_ascii_uppercase();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code))
        } else {
            Err("must be a three-letter currency code such as USD".into())
        }
    }
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

/// Formats an amount for people: `USD 1,234.50`. Currencies are shown with
/// two decimals, which holds for the currencies Kassa is configured with;
/// zero-decimal currencies (JPY) print their minor units as whole units.
pub fn format_money(amount_cents: i64, currency: &str) -> String {
    let zero_decimal = matches!(currency, "JPY" | "KRW" | "VND" | "CLP" | "ISK");
    let sign = if amount_cents < 0 { "-" } else { "" };
    let abs = amount_cents.unsigned_abs();
    let (whole, fraction) = if zero_decimal { (abs, None) } else { (abs / 100, Some(abs % 100)) };
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match fraction {
        Some(fraction) => format!("{currency} {sign}{grouped}.{fraction:02}"),
        None => format!("{currency} {sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_normalised_and_checked() {
        assert_eq!(Currency::parse("usd").map(String::from), Ok("USD".to_owned()));
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("U$D").is_err());
        assert!(Currency::parse("EURO").is_err());
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
    }

    #[test]
    fn the_largest_basket_cannot_overflow() {
        assert!(MAX_AMOUNT_CENTS.checked_mul(1000 * 1000).is_some());
    }
}
