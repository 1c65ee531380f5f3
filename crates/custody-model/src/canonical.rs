//! RFC 8785 (JCS) canonical JSON: the byte form of every ledger leaf.
//!
//! A ledger leaf is hashed as bytes, so the same event must always have the same bytes.
//! JCS fixes them: object members sorted by UTF-16 code units, no insignificant
//! whitespace, numbers in their shortest ECMAScript form, strings with minimal escaping.
//! Anyone with an RFC 8785 implementation (Python's `rfc8785`, say) can recompute a leaf
//! from the event it holds.
//!
//! Invariant held by [`CanonicalJson`]: its bytes are exactly the JCS serialisation of the
//! JSON value they encode, and that value is I-JSON (RFC 7493): every number is an integer
//! or float that an IEEE double represents exactly, so no implementation reads it
//! differently.

use std::fmt;

use serde_json::Value;

/// Largest integer every JSON implementation reads exactly (2^53 − 1, RFC 7493 §2.2).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why bytes or a value are not canonical JSON.
#[derive(Debug, thiserror::Error)]
pub enum CanonicalJsonError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    Syntax(String),
    /// JSON, but a number outside the range every reader agrees on.
    #[error("number {0} is outside ±(2^53 − 1); write it as a string")]
    UnsafeNumber(String),
    /// JSON, but not in RFC 8785 form (member order, whitespace, number or string form).
    #[error("JSON is not in RFC 8785 canonical form (first difference at byte {0})")]
    NotCanonical(usize),
}

/// JSON bytes in RFC 8785 canonical form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CanonicalJson(Vec<u8>);

impl CanonicalJson {
    /// Canonicalises a value.
    pub fn from_value(value: &Value) -> Result<Self, CanonicalJsonError> {
        check_numbers(value)?;
        serde_json_canonicalizer::to_vec(value)
            .map(CanonicalJson)
            .map_err(|e| CanonicalJsonError::Syntax(e.to_string()))
    }

    /// Accepts `bytes` only if they already are canonical JSON (e.g. a stored leaf).
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, CanonicalJsonError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| CanonicalJsonError::Syntax(e.to_string()))?;
        let canonical = Self::from_value(&value)?;
        if canonical.0 != bytes {
            let at = canonical
                .0
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(canonical.0.len().min(bytes.len()));
            return Err(CanonicalJsonError::NotCanonical(at));
        }
        Ok(canonical)
    }

    /// The canonical bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The canonical bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The value these bytes encode.
    pub fn to_value(&self) -> Value {
        // The bytes were produced by or checked against the canonicaliser, so they parse.
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }
}

impl fmt::Display for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // JCS output is UTF-8 by construction.
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CanonicalJson({self})")
    }
}

fn check_numbers(value: &Value) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Number(n) => {
            let safe = if let Some(u) = n.as_u64() {
                u <= MAX_SAFE_INTEGER
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_SAFE_INTEGER
            } else {
                n.as_f64().is_some_and(f64::is_finite)
            };
            if safe {
                Ok(())
            } else {
                Err(CanonicalJsonError::UnsafeNumber(n.to_string()))
            }
        }
        Value::Array(items) => items.iter().try_for_each(check_numbers),
        Value::Object(members) => members.values().try_for_each(check_numbers),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_members_and_drops_whitespace() {
        let c = CanonicalJson::from_value(&json!({"b": 1, "a": [true, null, "x"]})).unwrap();
        assert_eq!(c.as_bytes(), br#"{"a":[true,null,"x"],"b":1}"#);
    }

    #[test]
    fn numbers_take_their_shortest_ecmascript_form() {
        let c = CanonicalJson::from_value(&json!([1.0, 1e21, 0.000001, -0.0])).unwrap();
        assert_eq!(c.to_string(), "[1,1e+21,0.000001,0]");
    }

    #[test]
    fn accepts_canonical_bytes_and_rejects_the_rest() {
        assert!(CanonicalJson::from_canonical_bytes(br#"{"a":1,"b":"c"}"#).is_ok());
        for bad in [
            &br#"{"b":1,"a":2}"#[..],
            br#"{"a": 1}"#,
            b"1.0",
            br#""\u0041""#,
        ] {
            let err = CanonicalJson::from_canonical_bytes(bad).unwrap_err();
            assert!(matches!(err, CanonicalJsonError::NotCanonical(_)), "{err}");
        }
        assert!(matches!(
            CanonicalJson::from_canonical_bytes(b"{"),
            Err(CanonicalJsonError::Syntax(_))
        ));
    }

    #[test]
    fn rejects_integers_beyond_double_precision() {
        let err = CanonicalJson::from_value(&json!({"n": 9_007_199_254_740_993u64})).unwrap_err();
        assert!(err.to_string().contains("9007199254740993"), "{err}");
        assert!(CanonicalJson::from_value(&json!(-9_007_199_254_740_991i64)).is_ok());
    }
}
