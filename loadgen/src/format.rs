//! Number formatting that matches C++ iostreams, which LoadGen's logs use.

/// Formats a double the way `std::ostream << double` does with default flags
/// (`%g`, 6 significant digits): `83.9006`, `6.90935e-09`, `1e+06`, `0`.
pub fn cpp_double(value: f64) -> String {
    cpp_double_precision(value, 6)
}

/// `%g` with the given number of significant digits (at least 1).
pub fn cpp_double_precision(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return if value.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if value.is_infinite() {
        return if value < 0.0 {
            "-inf".into()
        } else {
            "inf".into()
        };
    }
    let p = precision.max(1);
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // The decimal exponent after rounding to p significant digits decides the
    // style, exactly as C's %g does.
    let sci = format!("{:.*e}", p - 1, value);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    if exp < -4 || exp >= p as i32 {
        let mantissa = strip_fraction_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_fraction_zeros(&format!("{value:.decimals$}")).to_owned()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_printf_g() {
        // Expected strings are what glibc's printf("%g") prints.
        let cases = [
            (83.9006, "83.9006"),
            (83.90061234, "83.9006"),
            (6.909_35e-9, "6.90935e-09"),
            (1e6, "1e+06"),
            (999_999.0, "999999"),
            (999_999.5, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.5, "0.5"),
            (1.0, "1"),
            (93.0, "93"),
            (-2.5, "-2.5"),
            (123_456_789.0, "1.23457e+08"),
            (1e100, "1e+100"),
            (0.99, "0.99"),
        ];
        for (v, want) in cases {
            assert_eq!(cpp_double(v), want, "value {v}");
        }
        assert_eq!(cpp_double(f64::INFINITY), "inf");
        assert_eq!(cpp_double(0.0), "0");
    }
}
