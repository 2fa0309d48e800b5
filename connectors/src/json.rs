//! Lenient JSON building blocks shared by the webhook parsers.
//!
//! Two rules from the platforms shape this module: unknown or oddly typed fields must never fail a
//! batch, and large numeric ids (19 digits) must keep every digit, so they never pass through
//! `f64`. Field helpers here never fail on any JSON value: a value of an unexpected type reads as
//! `None`.
//!
//! Batches are parsed in one of two [`Mode`]s. [`Fast`] deserializes the whole body in one pass;
//! if anything in it is malformed, the parser starts again in [`Careful`] mode, where each element
//! of a list is captured raw and deserialized on its own, so one broken element becomes one
//! `ignored` / `unsupported` event instead of failing its neighbours.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// How list elements are read: see the module documentation.
pub(crate) trait Mode {
    type Of<T>: Element<T>;
}

/// One pass; any malformed element fails the whole parse (which then retries in [`Careful`]).
pub(crate) struct Fast;

/// Element by element; a malformed element is kept as [`Malformed`].
pub(crate) struct Careful;

impl Mode for Fast {
    type Of<T> = Strict<T>;
}

impl Mode for Careful {
    type Of<T> = Tolerant<T>;
}

/// A list element that either deserialized or was kept raw with the reason it did not.
pub(crate) trait Element<T> {
    fn into_result(self) -> Result<T, Malformed>;
}

/// An element that did not match the expected shape.
#[derive(Debug, Clone)]
pub(crate) struct Malformed {
    pub error: String,
    /// The element's JSON text, for salvaging what can be salvaged (ids, types).
    pub raw: String,
}

#[derive(serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Strict<T>(T);

impl<T> Element<T> for Strict<T> {
    fn into_result(self) -> Result<T, Malformed> {
        Ok(self.0)
    }
}

pub(crate) enum Tolerant<T> {
    Parsed(T),
    Malformed(Malformed),
}

impl<T> Element<T> for Tolerant<T> {
    fn into_result(self) -> Result<T, Malformed> {
        match self {
            Tolerant::Parsed(value) => Ok(value),
            Tolerant::Malformed(malformed) => Err(malformed),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tolerant<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(match serde_json::from_str::<T>(raw.get()) {
            Ok(value) => Tolerant::Parsed(value),
            Err(error) => Tolerant::Malformed(Malformed {
                error: error.to_string(),
                raw: raw.get().to_owned(),
            }),
        })
    }
}

/// A list field: absent and `null` both read as empty.
pub(crate) fn list<T>(items: Option<Vec<T>>) -> Vec<T> {
    items.unwrap_or_default()
}

/// A string, or an integer kept digit for digit (ids, which some platforms send as numbers).
/// Anything else reads as `None`.
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(TextVisitor)
}

/// Unix time as an integer, a float or a numeric string (WhatsApp sends strings, the others
/// numbers). Anything else reads as `None`.
pub(crate) fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(TimestampVisitor)
}

/// An integer (error codes), read like [`opt_timestamp`].
pub(crate) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(TimestampVisitor)
}

/// A list element read with [`opt_text`] (lists of ids).
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct LenientText(#[serde(deserialize_with = "opt_text")] pub Option<String>);

/// A number or a numeric string (coordinates). Anything else reads as `None`.
pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(FloatVisitor)
}

/// A boolean or `"true"`/`"false"`. Anything else reads as `None`.
pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(BoolVisitor)
}

/// Implements the visitor methods every lenient helper shares: `null` and values of other
/// shapes read as `None`; maps and lists are consumed so the surrounding parse carries on.
macro_rules! lenient_defaults {
    () => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    // A float id has already lost digits: refuse it rather than store a wrong id.
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    lenient_defaults!();
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a unix timestamp")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).ok())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(float_to_i64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let v = v.trim();
        Ok(v.parse::<i64>()
            .ok()
            .or_else(|| v.parse::<f64>().ok().and_then(float_to_i64)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    lenient_defaults!();
}

fn float_to_i64(v: f64) -> Option<i64> {
    // i64::MAX is not exactly representable; stay well inside the range.
    (v.is_finite() && v.abs() < 9.0e18).then_some(v.trunc() as i64)
}

struct FloatVisitor;

impl<'de> Visitor<'de> for FloatVisitor {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.is_finite().then_some(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.trim().parse::<f64>().ok().filter(|f| f.is_finite()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    lenient_defaults!();
}

struct BoolVisitor;

impl<'de> Visitor<'de> for BoolVisitor {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(match v {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        })
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    lenient_defaults!();
}

/// The non-empty value, if any (platforms send `""` for "absent" in places).
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "opt_text")]
        id: Option<String>,
        #[serde(default, deserialize_with = "opt_timestamp")]
        ts: Option<i64>,
        #[serde(default, deserialize_with = "opt_f64")]
        lat: Option<f64>,
        #[serde(default, deserialize_with = "opt_bool")]
        flag: Option<bool>,
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn nineteen_digit_numeric_ids_keep_every_digit() {
        let p = probe(r#"{"id": 7456789012345678901}"#);
        assert_eq!(p.id.as_deref(), Some("7456789012345678901"));
        let p = probe(r#"{"id": 18446744073709551615}"#);
        assert_eq!(p.id.as_deref(), Some("18446744073709551615"));
        let p = probe(r#"{"id": -42}"#);
        assert_eq!(p.id.as_deref(), Some("-42"));
    }

    #[test]
    fn odd_types_read_as_none_and_do_not_fail() {
        let p = probe(r#"{"id": {"a": [1, 2]}, "ts": [1], "lat": "north", "flag": {"x": 1}}"#);
        assert!(p.id.is_none() && p.ts.is_none() && p.lat.is_none() && p.flag.is_none());
        let p = probe(r#"{"id": 1.5, "ts": null, "lat": null, "flag": 3}"#);
        assert!(p.id.is_none() && p.ts.is_none() && p.lat.is_none() && p.flag.is_none());
    }

    #[test]
    fn timestamps_accept_strings_and_numbers() {
        assert_eq!(probe(r#"{"ts": "1767225600"}"#).ts, Some(1_767_225_600));
        assert_eq!(probe(r#"{"ts": 1767225600123}"#).ts, Some(1_767_225_600_123));
        assert_eq!(probe(r#"{"ts": 1767225600.9}"#).ts, Some(1_767_225_600));
        assert_eq!(probe(r#"{"ts": 1e300}"#).ts, None);
    }

    #[test]
    fn tolerant_elements_keep_the_raw_text_of_bad_elements() {
        #[derive(serde::Deserialize)]
        struct Item {
            #[allow(dead_code)]
            n: u8,
        }
        let items: Vec<Tolerant<Item>> = serde_json::from_str(r#"[{"n":1},{"n":"x"}]"#).unwrap();
        let results: Vec<_> = items.into_iter().map(Element::into_result).collect();
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().err().unwrap().raw, r#"{"n":"x"}"#);
    }
}
