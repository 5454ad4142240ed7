//! Exact decimal numbers as Java's `BigDecimal` holds them: unscaled digits and a scale, so
//! `12.50` and `12.5` stay different and no value ever passes through a float.

use std::fmt;
use std::str::FromStr;

use super::error::UndoError;

/// Longest unscaled digit string accepted; MySQL's DECIMAL has at most 65 digits and
/// PostgreSQL's NUMERIC 131072 before the point, so this bounds hostile input only.
pub const MAX_DECIMAL_DIGITS: usize = 200_000;
/// Largest accepted |scale|; bounds the length of the plain form a decimal prints as.
pub const MAX_DECIMAL_SCALE: i64 = 200_000;

/// A decimal number `(-1)^negative × digits × 10^(-scale)`, compared like `BigDecimal.equals`
/// (value and scale).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    /// Unscaled magnitude in ASCII digits, without leading zeros ("0" for zero).
    digits: String,
    scale: i32,
}

impl Decimal {
    /// Parses a JSON number or plain decimal text (`-12.50`, `1E-10`, `7`), keeping its scale
    /// the way `new BigDecimal(text)` does.
    pub fn parse(text: &str) -> Result<Decimal, UndoError> {
        let bad = || UndoError::InvalidNumber(truncate(text));
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => {
                let exp_text = &rest[i + 1..];
                let exp_digits = exp_text.strip_prefix(['+', '-']).unwrap_or(exp_text);
                if exp_digits.is_empty()
                    || exp_digits.len() > 12
                    || !exp_digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(bad());
                }
                let exp: i64 = exp_text.parse().map_err(|_| bad())?;
                (&rest[..i], exp)
            }
            None => (rest, 0),
        };
        let (int_part, frac_part) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty())
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        if int_part.len() + frac_part.len() > MAX_DECIMAL_DIGITS {
            return Err(bad());
        }
        let scale = frac_part.len() as i64 - exponent;
        if scale.abs() > MAX_DECIMAL_SCALE {
            return Err(bad());
        }
        let all: String = int_part.chars().chain(frac_part.chars()).collect();
        let trimmed = all.trim_start_matches('0');
        let digits = if trimmed.is_empty() {
            "0".to_string()
        } else {
            trimmed.to_string()
        };
        Ok(Decimal {
            negative: negative && digits != "0",
            digits,
            // MAX_DECIMAL_SCALE fits an i32.
            scale: scale as i32,
        })
    }

    /// The scale (digits after the point; negative for `1E+3`-style values), as Java's `scale()`.
    pub fn scale(&self) -> i32 {
        self.scale
    }

    /// The unscaled magnitude's digits.
    pub fn unscaled_digits(&self) -> &str {
        &self.digits
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The JSON number Jackson reads back to an equal `BigDecimal` (value and scale): the plain
    /// form, except for negative scales, which need an exponent to survive.
    pub fn to_json_number(&self) -> String {
        if self.scale < 0 {
            let sign = if self.negative { "-" } else { "" };
            format!("{sign}{}E+{}", self.digits, -(self.scale as i64))
        } else {
            self.to_string()
        }
    }
}

/// Plain notation (`BigDecimal.toPlainString`), what SQL literals and drivers expect.
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        let scale = self.scale as i64;
        // Zero has no digits to shift: `0E+3` is plainly "0", as in Java.
        if scale <= 0 && self.digits == "0" {
            return f.write_str("0");
        }
        if scale <= 0 {
            f.write_str(&self.digits)?;
            for _ in 0..-scale {
                f.write_str("0")?;
            }
            return Ok(());
        }
        let scale = scale as usize;
        if self.digits.len() > scale {
            let (int_part, frac_part) = self.digits.split_at(self.digits.len() - scale);
            write!(f, "{int_part}.{frac_part}")
        } else {
            f.write_str("0.")?;
            for _ in 0..scale - self.digits.len() {
                f.write_str("0")?;
            }
            f.write_str(&self.digits)
        }
    }
}

impl FromStr for Decimal {
    type Err = UndoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::parse(s)
    }
}

/// Error messages quote at most this much of hostile input.
pub(crate) fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_with_a_negative_scale_prints_plainly() {
        let zero = super::Decimal::parse("0E+1").unwrap();
        assert_eq!(zero.to_string(), "0");
        assert_eq!(zero.to_json_number(), "0E+1");
        assert_eq!(zero.scale(), -1);
    }
}
