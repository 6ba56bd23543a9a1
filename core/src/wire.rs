//! Borrowed decoding of one response message: a `chat.completion(.chunk)`, a legacy
//! `text_completion`, an embeddings list, a Responses API object or stream event, or an error
//! body. Only the fields that bear on usage are read; unknown fields are skipped.
//!
//! Strings borrow the payload unless they contain escapes. Scalars are lenient: a field of an
//! unexpected type reads as absent (or, for usage counts, as [`Count::Invalid`]) instead of
//! failing the whole message, so one odd field never loses a usage chunk.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A usage count as sent by the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// A non-negative integer that fits in `u64`.
    Valid(u64),
    /// Present but not a usable count: negative, fractional, beyond `u64`, or not a number.
    Invalid,
}

impl Count {
    /// The value when valid.
    pub fn get(self) -> Option<u64> {
        match self {
            Count::Valid(v) => Some(v),
            Count::Invalid => None,
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Count, E> {
                Ok(Count::Valid(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Count, E> {
                Ok(u64::try_from(v).map_or(Count::Invalid, Count::Valid))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Count, E> {
                // Integral floats (e.g. `12.0`) are accepted; anything else is not a count.
                if v >= 0.0 && v.fract() == 0.0 && v < 18_446_744_073_709_551_616.0 {
                    Ok(Count::Valid(v as u64))
                } else {
                    Ok(Count::Invalid)
                }
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count::Invalid)
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count::Invalid)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count::Invalid)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Count::Invalid)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string field that reads as `None` when it is null or of another type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The string, when present.
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Text<'de>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Text<'de>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A lenient integer (ids, indexes, timestamps): `None` when absent or not an integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Int(pub Option<i64>);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Count::deserialize(d)? {
            Count::Valid(v) => Int(i64::try_from(v).ok()),
            Count::Invalid => Int(None),
        })
    }
}

/// A list that reads as empty when null or not an array. Elements that fail to decode make the
/// whole message fail (they are objects of our own lenient types, so that takes malformed JSON).
///
/// One message keeps at most [`MAX_LIST_ELEMENTS`] list elements in all, whatever the nesting
/// (choices × tool calls × ...): the rest are skipped without being stored and counted in
/// `dropped`, so a hostile body cannot turn a few bytes per element into hundreds of bytes of
/// heap each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List<T> {
    /// The elements kept, in order.
    pub items: Vec<T>,
    /// Elements skipped because the message's element budget was spent.
    pub dropped: usize,
}

/// The most list elements one decoded message keeps (see [`List`]).
pub const MAX_LIST_ELEMENTS: usize = 4096;

/// No budget: lists decoded outside [`with_list_budget`] keep every element.
const UNLIMITED: usize = usize::MAX;

thread_local! {
    /// List elements the message being decoded may still keep ([`UNLIMITED`] outside a
    /// budgeted decode, so nothing leaks from one decode into the next).
    static ELEMENT_BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(UNLIMITED) };
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List {
            items: Vec::new(),
            dropped: 0,
        }
    }
}

impl<T> std::ops::Deref for List<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<List<T>, A::Error> {
                let mut list = List::default();
                loop {
                    let left = ELEMENT_BUDGET.with(std::cell::Cell::get);
                    if left == 0 {
                        while a.next_element::<IgnoredAny>()?.is_some() {
                            list.dropped += 1;
                        }
                        return Ok(list);
                    }
                    let Some(x) = a.next_element()? else {
                        return Ok(list);
                    };
                    if left != UNLIMITED {
                        ELEMENT_BUDGET.with(|b| b.set(b.get().saturating_sub(1)));
                    }
                    list.items.push(x);
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<List<T>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(List::default())
            }
            fn visit_unit<E>(self) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_none<E>(self) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<List<T>, E> {
                Ok(List::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<List<T>, E> {
                Ok(List::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Usage details (`prompt_tokens_details`, `completion_tokens_details`, and the Responses API's
/// `input_tokens_details` / `output_tokens_details`): one struct for all of them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Details {
    pub cached_tokens: Option<Count>,
    pub audio_tokens: Option<Count>,
    pub image_tokens: Option<Count>,
    pub text_tokens: Option<Count>,
    pub cache_write_tokens: Option<Count>,
    pub reasoning_tokens: Option<Count>,
    pub accepted_prediction_tokens: Option<Count>,
    pub rejected_prediction_tokens: Option<Count>,
}

/// The `usage` object of any endpoint.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Usage {
    pub prompt_tokens: Option<Count>,
    pub completion_tokens: Option<Count>,
    pub total_tokens: Option<Count>,
    pub prompt_tokens_details: Option<Details>,
    pub completion_tokens_details: Option<Details>,
    pub input_tokens: Option<Count>,
    pub output_tokens: Option<Count>,
    pub input_tokens_details: Option<Details>,
    pub output_tokens_details: Option<Details>,
}

/// A function call or its streamed fragment.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct FunctionCall<'a> {
    #[serde(borrow, default)]
    pub name: Text<'a>,
    #[serde(borrow, default)]
    pub arguments: Text<'a>,
}

/// A tool call or its streamed fragment.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct ToolCall<'a> {
    #[serde(default)]
    pub index: Int,
    #[serde(borrow, default)]
    pub id: Text<'a>,
    #[serde(borrow, default)]
    pub function: Option<FunctionCall<'a>>,
}

/// A chat `delta` (streams) or `message` (JSON bodies).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct Delta<'a> {
    #[serde(borrow, default)]
    pub content: Text<'a>,
    #[serde(borrow, default)]
    pub refusal: Text<'a>,
    #[serde(borrow, default)]
    pub tool_calls: List<ToolCall<'a>>,
    #[serde(borrow, default)]
    pub function_call: Option<FunctionCall<'a>>,
}

/// One element of `choices`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct Choice<'a> {
    #[serde(default)]
    pub index: Int,
    #[serde(borrow, default)]
    pub delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Delta<'a>>,
    /// Legacy completions.
    #[serde(borrow, default)]
    pub text: Text<'a>,
    #[serde(borrow, default)]
    pub finish_reason: Text<'a>,
}

/// An error object (`{"error": {...}}` bodies, `error` events, failed responses).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct ErrorObject<'a> {
    #[serde(borrow, default)]
    pub message: Text<'a>,
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub code: Text<'a>,
}

/// A part of a Responses API output message (`output_text`, `refusal`) or reasoning summary.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct OutputPart<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub text: Text<'a>,
    #[serde(borrow, default)]
    pub refusal: Text<'a>,
}

/// An item of a Responses API `output` list.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct OutputItem<'a> {
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub name: Text<'a>,
    #[serde(borrow, default)]
    pub arguments: Text<'a>,
    #[serde(borrow, default)]
    pub content: List<OutputPart<'a>>,
    #[serde(borrow, default)]
    pub summary: List<OutputPart<'a>>,
}

/// A Responses API `response` object (JSON body, or inside `response.*` events).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct ResponseObject<'a> {
    #[serde(borrow, default)]
    pub id: Text<'a>,
    #[serde(borrow, default)]
    pub model: Text<'a>,
    #[serde(default)]
    pub created_at: Int,
    #[serde(borrow, default)]
    pub status: Text<'a>,
    #[serde(borrow, default)]
    pub output: List<OutputItem<'a>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(borrow, default)]
    pub error: Option<ErrorObject<'a>>,
}

/// One decoded message: the union of the fields of every shape this library reads. Which ones
/// are set tells the shape (`object`, or `type` for Responses API events).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[allow(missing_docs)]
pub struct Message<'a> {
    #[serde(borrow, default)]
    pub id: Text<'a>,
    #[serde(borrow, default)]
    pub object: Text<'a>,
    #[serde(borrow, default)]
    pub model: Text<'a>,
    #[serde(default)]
    pub created: Int,
    #[serde(borrow, default)]
    pub system_fingerprint: Text<'a>,
    #[serde(borrow, default)]
    pub choices: List<Choice<'a>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(borrow, default)]
    pub error: Option<ErrorObject<'a>>,
    // Responses API: a JSON body is a response object; events have `type`.
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    #[serde(borrow, default)]
    pub status: Text<'a>,
    #[serde(default)]
    pub created_at: Int,
    #[serde(borrow, default)]
    pub output: List<OutputItem<'a>>,
    #[serde(borrow, default)]
    pub response: Option<ResponseObject<'a>>,
    #[serde(borrow, default)]
    pub delta: Text<'a>,
    #[serde(default)]
    pub output_index: Int,
    #[serde(borrow, default)]
    pub item: Option<OutputItem<'a>>,
    /// `error` events of the Responses API carry the message at the top level.
    #[serde(borrow, default)]
    pub message: Text<'a>,
    #[serde(borrow, default)]
    pub code: Text<'a>,
}

/// Decodes one JSON payload.
///
/// # Errors
/// The JSON error when the payload is not a JSON object of a readable shape;
/// `serde_json::Error::is_eof` tells a payload that was cut short.
pub fn decode(payload: &[u8]) -> Result<Message<'_>, serde_json::Error> {
    with_list_budget(MAX_LIST_ELEMENTS, || serde_json::from_slice(payload))
}

/// Runs one decode with a budget of `n` list elements (see [`List`]).
pub(crate) fn with_list_budget<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let before = ELEMENT_BUDGET.with(|b| b.replace(n));
    let r = f();
    ELEMENT_BUDGET.with(|b| b.set(before));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_first_chunk_and_usage_chunk() {
        let m = decode(br#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}"#).unwrap();
        assert!(m.choices.is_empty() && m.usage.is_none());
        let m = decode(br#"{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":null}}"#).unwrap();
        let u = m.usage.unwrap();
        assert_eq!(u.prompt_tokens, Some(Count::Valid(5)));
        assert_eq!(
            u.prompt_tokens_details.unwrap().cached_tokens,
            Some(Count::Valid(0))
        );
    }

    #[test]
    fn content_filter_chunk_without_delta() {
        let m = decode(br#"{"choices":[{"index":0,"finish_reason":null,"content_filter_results":{"hate":{"filtered":false}}}],"usage":null}"#).unwrap();
        assert!(m.choices[0].delta.is_none());
        assert!(m.usage.is_none());
    }

    #[test]
    fn list_elements_are_bounded_per_message() {
        let mut body = String::from(r#"{"choices":["#);
        for i in 0..MAX_LIST_ELEMENTS + 10 {
            body.push_str(if i == 0 { "{}" } else { ",{}" });
        }
        body.push_str("]}");
        let m = decode(body.as_bytes()).unwrap();
        assert_eq!(
            (m.choices.len(), m.choices.dropped),
            (MAX_LIST_ELEMENTS, 10)
        );
        // The budget is per message.
        let m = decode(br#"{"choices":[{},{}]}"#).unwrap();
        assert_eq!((m.choices.len(), m.choices.dropped), (2, 0));
    }

    #[test]
    fn no_budget_outside_a_budgeted_decode() {
        // Decoding many messages on one thread never drains anything for later plain parses.
        for _ in 0..3 {
            let mut body = String::from(r#"{"choices":["#);
            for i in 0..MAX_LIST_ELEMENTS {
                body.push_str(if i == 0 { "{}" } else { ",{}" });
            }
            body.push_str("]}");
            assert_eq!(
                decode(body.as_bytes()).unwrap().choices.len(),
                MAX_LIST_ELEMENTS
            );
        }
        let plain: Message<'_> = serde_json::from_slice(br#"{"choices":[{},{}]}"#).unwrap();
        assert_eq!(plain.choices.len(), 2);
    }

    #[test]
    fn lenient_scalars() {
        let m = decode(br#"{"created":"soon","model":7,"usage":{"prompt_tokens":-3,"completion_tokens":1e30,"total_tokens":99999999999999999999999}}"#).unwrap();
        assert_eq!(m.created, Int(None));
        assert_eq!(m.model, Text(None));
        let u = m.usage.unwrap();
        assert_eq!(u.prompt_tokens, Some(Count::Invalid));
        assert_eq!(u.completion_tokens, Some(Count::Invalid));
        assert_eq!(u.total_tokens, Some(Count::Invalid));
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let m =
            decode(br#"{"choices":[{"delta":{"content":"plain"}},{"delta":{"content":"a\nb"}}]}"#)
                .unwrap();
        assert!(matches!(
            m.choices[0].delta.as_ref().unwrap().content.0,
            Some(Cow::Borrowed("plain"))
        ));
        assert_eq!(
            m.choices[1].delta.as_ref().unwrap().content.as_deref(),
            Some("a\nb")
        );
    }
}
