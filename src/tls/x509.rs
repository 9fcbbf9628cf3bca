//! The two fields of an X.509 certificate the proxy reads itself: the end of its validity
//! (the expiry metric) and its subject (passed upstream for a verified client).
//!
//! rustls verifies certificates but does not expose these, and no X.509 parser is in the
//! tree; both sit at fixed places in `TBSCertificate` (RFC 5280 §4.1), so a short DER walk
//! reads them. Anything unexpected is `None`, never a panic: the input comes from files and
//! from clients.

// Parses bytes from clients: no indexing that can panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::fmt::Write;

/// One DER element: its tag, its contents, and the bytes after it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > std::mem::size_of::<usize>() {
            return None;
        }
        let bytes = rest.get(..count)?;
        let length = bytes
            .iter()
            .fold(0usize, |length, &b| (length << 8) | usize::from(b));
        (length, rest.get(count..)?)
    };
    Some((tag, rest.get(..length)?, rest.get(length..)?))
}

const SEQUENCE: u8 = 0x30;

/// The `TBSCertificate` fields from `validity` on.
fn from_validity(certificate: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, certificate, _) = element(certificate)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let (tag, _, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        // [0] version, then the serial number.
        rest = element(rest)?.2;
    }
    let (_signature, _, rest) = element(rest)?;
    let (_issuer, _, rest) = element(rest)?;
    Some(rest)
}

/// The certificate's notAfter, in seconds since the Unix epoch.
pub fn not_after(certificate: &[u8]) -> Option<i64> {
    let (SEQUENCE, validity, _) = element(from_validity(certificate)?)? else {
        return None;
    };
    let (_not_before, _, rest) = element(validity)?;
    let (tag, time, _) = element(rest)?;
    let time = std::str::from_utf8(time).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        // UTCTime: YYMMDDHHMMSSZ, years 1950-2049 (RFC 5280 §4.1.2.5.1).
        0x17 => {
            let year: i64 = time.get(..2)?.parse().ok()?;
            (
                if year >= 50 { 1900 + year } else { 2000 + year },
                time.get(2..)?,
            )
        }
        // GeneralizedTime: YYYYMMDDHHMMSSZ.
        0x18 => (time.get(..4)?.parse().ok()?, time.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |at: usize| -> Option<i64> { rest.get(at..at + 2)?.parse().ok() };
    let (month, day) = (field(0)?, field(2)?);
    let seconds = field(4)? * 3600 + field(6)? * 60 + field(8)?;
    Some(days_from_civil(year, month, day) * 86_400 + seconds)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The certificate's subject as an RFC 4514 string (`CN=client,O=Example`: the last
/// relative name first), with the common attribute names and others as dotted OIDs.
pub fn subject(certificate: &[u8]) -> Option<String> {
    let (_validity, _, rest) = element(from_validity(certificate)?)?;
    let (SEQUENCE, mut names, _) = element(rest)? else {
        return None;
    };
    let mut relative_names = Vec::new();
    while !names.is_empty() {
        let (_set, mut attributes, rest) = element(names)?;
        names = rest;
        let mut rendered = String::new();
        while !attributes.is_empty() {
            let (SEQUENCE, attribute, rest) = element(attributes)? else {
                return None;
            };
            attributes = rest;
            let (0x06, oid, value) = element(attribute)? else {
                return None;
            };
            let (tag, value, _) = element(value)?;
            if !rendered.is_empty() {
                rendered.push('+');
            }
            rendered.push_str(&attribute_name(oid));
            rendered.push('=');
            match tag {
                // UTF8String, PrintableString, TeletexString, IA5String.
                0x0c | 0x13 | 0x14 | 0x16 => escape(&String::from_utf8_lossy(value), &mut rendered),
                _ => {
                    rendered.push('#');
                    for byte in value {
                        let _ = write!(rendered, "{byte:02x}");
                    }
                }
            }
        }
        relative_names.push(rendered);
    }
    relative_names.reverse();
    Some(relative_names.join(","))
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".to_string(),
        [0x55, 0x04, 0x06] => "C".to_string(),
        [0x55, 0x04, 0x07] => "L".to_string(),
        [0x55, 0x04, 0x08] => "ST".to_string(),
        [0x55, 0x04, 0x0a] => "O".to_string(),
        [0x55, 0x04, 0x0b] => "OU".to_string(),
        _ => dotted(oid),
    }
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for &byte in oid {
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let mut text = String::new();
    if let Some((&first, rest)) = arcs.split_first() {
        let (a, b) = if first < 80 {
            (first / 40, first % 40)
        } else {
            (2, first - 80)
        };
        let _ = write!(text, "{a}.{b}");
        for arc in rest {
            let _ = write!(text, ".{arc}");
        }
    }
    text
}

/// RFC 4514 §2.4 escaping.
fn escape(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (index == 0 && matches!(c, ' ' | '#'))
            || (index == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(
        configure: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> rustls_pki_types::CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        configure(&mut params);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn not_after_reads_utc_and_generalized_times() {
        // 2049 is still UTCTime; 2050 on is GeneralizedTime (RFC 5280).
        for (year, expected) in [
            (2030, 1_924_905_600),
            (2049, 2_524_521_600),
            (2051, 2_587_593_600),
        ] {
            let der = certificate(|params| params.not_after = rcgen::date_time_ymd(year, 12, 31));
            assert_eq!(not_after(&der), Some(expected), "{year}");
        }
    }

    #[test]
    fn subject_is_rendered_last_name_first_and_escaped() {
        let der = certificate(|params| {
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "Example, Inc");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "client-1");
        });
        let rendered = subject(&der).unwrap();
        assert!(rendered.contains("CN=client-1"), "{rendered}");
        assert!(rendered.contains("O=Example\\, Inc"), "{rendered}");
    }

    #[test]
    fn truncated_and_garbage_input_is_none() {
        let der = certificate(|_| {});
        for cut in [0, 1, 2, 10, der.len() / 2] {
            assert_eq!(not_after(&der[..cut]), None);
        }
        assert_eq!(subject(b"\x30\x84\xff\xff\xff\xff"), None);
        assert_eq!(dotted(&[0x2a, 0x86, 0x48]), "1.2.840");
    }
}
