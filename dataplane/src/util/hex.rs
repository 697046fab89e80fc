//! Lower-case hex for IDs, secrets and fingerprints (too small a need for a dependency), and
//! [`Bytes`]: binary data that is hex in JSON (state files) and raw bytes in postcard (the wire).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// Decodes exactly `N` bytes from `2 * N` hex digits (either case); anything else is `None`.
pub fn decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *slot = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Decodes any even number of hex digits.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits.chunks_exact(2).map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?)).collect()
}

/// Binary data in a record: hex where people read it (JSON), raw bytes on the wire (postcard).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            decode(&text).map(Bytes).ok_or_else(|| serde::de::Error::custom("expected hex digits"))
        } else {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Bytes;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                    Ok(Bytes(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                    Ok(Bytes(v))
                }
            }
            deserializer.deserialize_bytes(Visitor)
        }
    }
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = [0x00, 0x7f, 0x80, 0xff];
        assert_eq!(encode(&bytes), "007f80ff");
        assert_eq!(decode_array::<4>("007F80ff"), Some(bytes));
    }

    #[test]
    fn rejects_wrong_length_and_digits() {
        assert_eq!(decode_array::<2>("abc"), None);
        assert_eq!(decode_array::<2>("abcdef"), None);
        assert_eq!(decode_array::<2>("abcg"), None);
        assert_eq!(decode_array::<1>("é"), None);
        assert_eq!(decode("abc"), None);
        assert_eq!(decode("0aff"), Some(vec![0x0a, 0xff]));
    }

    #[test]
    fn bytes_are_hex_in_json_and_raw_in_postcard() {
        let bytes = Bytes(vec![1, 2, 0xff]);
        assert_eq!(serde_json::to_string(&bytes).unwrap(), "\"0102ff\"");
        assert_eq!(serde_json::from_str::<Bytes>("\"0102ff\"").unwrap(), bytes);
        let wire = postcard::to_allocvec(&bytes).unwrap();
        assert_eq!(wire, [3, 1, 2, 0xff]);
        assert_eq!(postcard::from_bytes::<Bytes>(&wire).unwrap(), bytes);
    }
}
