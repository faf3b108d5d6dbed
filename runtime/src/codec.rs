//! Codecs turn job arguments and results into bytes and back.
//!
//! A backend is generic over its codec (`SqliteBackend<JsonCodec>` by
//! default); every task it stores is encoded with it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::CodecError;

/// Encodes and decodes task arguments and results.
///
/// # Examples
///
/// ```
/// use errand_runtime::{Codec, JsonCodec};
///
/// let bytes = JsonCodec::encode(&(1, "two"), "an example").unwrap();
/// let back: (u32, String) = JsonCodec::decode(&bytes, "an example").unwrap();
/// assert_eq!(back, (1, "two".to_owned()));
/// ```
pub trait Codec: Send + Sync + 'static {
    /// A short name for messages, e.g. `"json"`.
    const NAME: &'static str;

    /// Encodes `value`; `what` describes it for the error message.
    ///
    /// # Errors
    ///
    /// When the value cannot be represented in this format.
    fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>, CodecError>;

    /// Decodes a value; `what` describes it for the error message.
    ///
    /// # Errors
    ///
    /// When the bytes are not a valid encoding of `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, CodecError>;
}

fn error(codec: &'static str, action: &'static str, what: &str, source: impl Into<crate::BoxError>) -> CodecError {
    CodecError { codec, action, what: what.to_owned(), source: source.into() }
}

/// JSON via `serde_json`: readable in the database, the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(value).map_err(|e| error(Self::NAME, "encode", what, e))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| error(Self::NAME, "decode", what, e))
    }
}

/// MessagePack via `rmp-serde` (feature `msgpack`): compact, self-describing.
///
/// Structs are encoded as maps, so adding an optional field stays compatible.
#[cfg(feature = "msgpack")]
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPackCodec;

#[cfg(feature = "msgpack")]
impl Codec for MsgPackCodec {
    const NAME: &'static str = "msgpack";

    fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>, CodecError> {
        rmp_serde::to_vec_named(value).map_err(|e| error(Self::NAME, "encode", what, e))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, CodecError> {
        rmp_serde::from_slice(bytes).map_err(|e| error(Self::NAME, "decode", what, e))
    }
}

/// bincode 2 via its serde support (feature `bincode`): the smallest and
/// fastest, but not self-describing: changing a job's arguments makes stored
/// tasks undecodable (they go dead with the decode error).
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Copy, Default)]
pub struct BincodeCodec;

#[cfg(feature = "bincode")]
impl Codec for BincodeCodec {
    const NAME: &'static str = "bincode";

    fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>, CodecError> {
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| error(Self::NAME, "encode", what, e))
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, CodecError> {
        match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
            Ok((value, read)) if read == bytes.len() => Ok(value),
            Ok((_, read)) => Err(error(
                Self::NAME,
                "decode",
                what,
                format!("{} trailing byte(s) after the value", bytes.len() - read),
            )),
            Err(e) => Err(error(Self::NAME, "decode", what, e)),
        }
    }
}
