//! Borrowed parsing of request bodies: chat completions, legacy completions, embeddings and the
//! Responses API. Only what bears on token counts is read; schemas and other nested values stay
//! as borrowed raw JSON until a rule needs them.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, Result};
use crate::record::Endpoint;
use crate::wire::{Int, List, Text};

/// A boolean that reads as `None` when absent or not a boolean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bool(pub Option<bool>);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <&RawValue>::deserialize(d).ok();
        Ok(Bool(match v.map(RawValue::get) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        }))
    }
}

/// Gives a struct whose derived deserializer is generated with `#[serde(remote = "Self")]` a
/// `Deserialize` impl that never fails on the value's type: an object is read field by field
/// (unknown fields skipped), anything else (string, number, array, `null`) reads as the default.
/// A request element of an odd type then costs its own fields, not the whole request.
macro_rules! lenient_object {
    ($t:ident<$a:lifetime>) => {
        impl<'de: $a, $a> ::serde::Deserialize<'de> for $t<$a> {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                $crate::request::lenient_object!(@visit d, $t<'de>)
            }
        }
    };
    ($t:ident) => {
        impl<'de> ::serde::Deserialize<'de> for $t {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                $crate::request::lenient_object!(@visit d, $t)
            }
        }
    };
    (@visit $d:ident, $v:ty) => {{
        use ::serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        use ::std::result::Result;
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = $v;
            fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
                <$v>::deserialize(::serde::de::value::MapAccessDeserializer::new(a))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(<$v>::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(<$v>::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(<$v>::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(<$v>::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(<$v>::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(<$v>::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(<$v>::default())
            }
        }
        ::serde::Deserializer::deserialize_any($d, V)
    }};
}
pub(crate) use lenient_object;

/// `stream_options`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(remote = "Self")]
pub struct StreamOptions {
    /// `include_usage`.
    #[serde(default)]
    pub include_usage: Bool,
}

lenient_object!(StreamOptions);

/// `image_url` of a content part: an object `{url, detail}` or (Responses API) a bare string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageUrl<'a> {
    /// The URL (`data:` or http(s)).
    pub url: Option<Cow<'a, str>>,
    /// `low`, `high` or `auto`.
    pub detail: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ImageUrl<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Obj<'a> {
            #[serde(borrow, default)]
            url: Text<'a>,
            #[serde(borrow, default)]
            detail: Text<'a>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ImageUrl<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an image_url")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl {
                    url: Some(Cow::Borrowed(v)),
                    detail: None,
                })
            }
            fn visit_str<E>(self, v: &str) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl {
                    url: Some(Cow::Owned(v.to_owned())),
                    detail: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<ImageUrl<'de>, A::Error> {
                let o = Obj::deserialize(de::value::MapAccessDeserializer::new(a))?;
                Ok(ImageUrl {
                    url: o.url.0,
                    detail: o.detail.0,
                })
            }
            fn visit_unit<E>(self) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<ImageUrl<'de>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ImageUrl::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<ImageUrl<'de>, E> {
                Ok(ImageUrl::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// One part of an array `content` (chat: `text`, `image_url`, `input_audio`, `file`;
/// Responses API: `input_text`, `input_image`, `input_file`, `output_text`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(remote = "Self")]
pub struct Part<'a> {
    /// The part's `type`.
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    /// Text of text parts.
    #[serde(borrow, default)]
    pub text: Text<'a>,
    /// The image of chat `image_url` parts.
    #[serde(borrow, default)]
    pub image_url: Option<ImageUrl<'a>>,
    /// `detail` of Responses API `input_image` parts (their `image_url` is a string).
    #[serde(borrow, default)]
    pub detail: Text<'a>,
    /// `refusal` parts of assistant messages.
    #[serde(borrow, default)]
    pub refusal: Text<'a>,
}

lenient_object!(Part<'a>);

/// A message `content`: a string, an array of parts, or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Content<'a> {
    /// `null` or absent.
    #[default]
    None,
    /// A plain string.
    Text(Cow<'a, str>),
    /// An array of parts.
    Parts(Vec<Part<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("message content")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Content<'de>, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Content<'de>, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Content<'de>, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Content<'de>, A::Error> {
                let mut v = Vec::new();
                while let Some(p) = a.next_element()? {
                    v.push(p);
                }
                Ok(Content::Parts(v))
            }
            fn visit_unit<E>(self) -> Result<Content<'de>, E> {
                Ok(Content::None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Content<'de>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Content::None)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Content<'de>, E> {
                Ok(Content::None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Content<'de>, E> {
                Ok(Content::None)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Content<'de>, E> {
                Ok(Content::None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Content<'de>, E> {
                Ok(Content::None)
            }
        }
        d.deserialize_any(V)
    }
}

/// A function call in an assistant message (`tool_calls[].function`, legacy `function_call`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(remote = "Self")]
pub struct FunctionCall<'a> {
    /// The function's name.
    #[serde(borrow, default)]
    pub name: Text<'a>,
    /// The arguments, a JSON text.
    #[serde(borrow, default)]
    pub arguments: Text<'a>,
}

lenient_object!(FunctionCall<'a>);

/// A tool call in an assistant message.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(remote = "Self")]
pub struct ToolCall<'a> {
    /// The call id.
    #[serde(borrow, default)]
    pub id: Text<'a>,
    /// `function` for function tools.
    #[serde(borrow, default, rename = "type")]
    pub kind: Text<'a>,
    /// The call.
    #[serde(borrow, default)]
    pub function: Option<FunctionCall<'a>>,
}

lenient_object!(ToolCall<'a>);

/// A chat message.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(remote = "Self")]
pub struct Message<'a> {
    /// `system`, `developer`, `user`, `assistant`, `tool`, `function`.
    #[serde(borrow, default)]
    pub role: Text<'a>,
    /// The content.
    #[serde(borrow, default)]
    pub content: Content<'a>,
    /// The optional participant name.
    #[serde(borrow, default)]
    pub name: Text<'a>,
    /// Assistant tool calls.
    #[serde(borrow, default)]
    pub tool_calls: List<ToolCall<'a>>,
    /// Legacy assistant function call.
    #[serde(borrow, default)]
    pub function_call: Option<FunctionCall<'a>>,
    /// The call a `tool` message answers.
    #[serde(borrow, default)]
    pub tool_call_id: Text<'a>,
    /// Assistant `refusal` text in history.
    #[serde(borrow, default)]
    pub refusal: Text<'a>,
}

lenient_object!(Message<'a>);

/// The most list elements (messages, parts, tool calls, all together) one request keeps; the
/// rest are skipped and the prompt is then flagged `prompt_estimated`.
pub const MAX_REQUEST_LIST_ELEMENTS: usize = 1 << 16;

/// A request body of any endpoint, borrowed from the bytes it was parsed from.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Request<'a> {
    /// `model` (on Azure often absent: the deployment is in the URL).
    #[serde(borrow, default)]
    pub model: Text<'a>,
    /// `stream`.
    #[serde(default)]
    pub stream: Bool,
    /// `stream_options`.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// `n` (chat, completions).
    #[serde(default)]
    pub n: Int,
    /// `best_of` (completions).
    #[serde(default)]
    pub best_of: Int,
    /// `echo` (completions).
    #[serde(default)]
    pub echo: Bool,
    /// Chat `messages`.
    #[serde(borrow, default)]
    pub messages: Option<List<Message<'a>>>,
    /// `tools`, raw.
    #[serde(borrow, default)]
    pub tools: Option<&'a RawValue>,
    /// Legacy `functions`, raw.
    #[serde(borrow, default)]
    pub functions: Option<&'a RawValue>,
    /// `tool_choice`, raw.
    #[serde(borrow, default)]
    pub tool_choice: Option<&'a RawValue>,
    /// Legacy `function_call`, raw.
    #[serde(borrow, default)]
    pub function_call: Option<&'a RawValue>,
    /// `parallel_tool_calls`.
    #[serde(default)]
    pub parallel_tool_calls: Bool,
    /// `response_format`, raw.
    #[serde(borrow, default)]
    pub response_format: Option<&'a RawValue>,
    /// `prediction`, raw.
    #[serde(borrow, default)]
    pub prediction: Option<&'a RawValue>,
    /// Legacy completions `prompt`, raw (string, strings, token arrays).
    #[serde(borrow, default)]
    pub prompt: Option<&'a RawValue>,
    /// Embeddings / Responses API `input`, raw.
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    /// Responses API `instructions`.
    #[serde(borrow, default)]
    pub instructions: Text<'a>,
    /// Responses API `text` (holds `format`), raw.
    #[serde(borrow, default)]
    pub text: Option<&'a RawValue>,
    /// Responses API `previous_response_id`.
    #[serde(borrow, default)]
    pub previous_response_id: Text<'a>,
    /// Embeddings `encoding_format`.
    #[serde(borrow, default)]
    pub encoding_format: Text<'a>,
    /// Embeddings `dimensions`.
    #[serde(default)]
    pub dimensions: Int,
    /// Responses API `background`.
    #[serde(default)]
    pub background: Bool,
}

/// What a request's model and endpoint are decided by: gathered from a parsed [`Request`], or
/// by the quick check `Meter::request` runs first (`fast::request_shape`), so that both decide
/// alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape<'a> {
    /// `model`, when a string.
    pub model: Option<&'a str>,
    /// `messages` is present and not `null`.
    pub messages: bool,
    /// `prompt` is present and not `null`.
    pub prompt: bool,
    /// `input` is present and not `null`.
    pub input: bool,
    /// `encoding_format` is a string, or `dimensions` an integer from 0 to `i64::MAX`.
    pub embedding_options: bool,
    /// `instructions` or `previous_response_id` is a string.
    pub responses_fields: bool,
}

impl Shape<'_> {
    /// See [`Request::endpoint`].
    pub(crate) fn endpoint(&self) -> Option<Endpoint> {
        if self.messages {
            return Some(Endpoint::ChatCompletions);
        }
        if self.prompt {
            return Some(Endpoint::Completions);
        }
        if self.input {
            let embedding =
                self.model.is_some_and(|m| m.contains("embedding")) || self.embedding_options;
            return Some(if embedding {
                Endpoint::Embeddings
            } else {
                Endpoint::Responses
            });
        }
        self.responses_fields.then_some(Endpoint::Responses)
    }
}

impl<'a> Request<'a> {
    /// Parses a request body.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidJson`] when `body` is not JSON, [`ErrorKind::InvalidRequest`] when it
    /// is JSON but not an object of a readable shape.
    pub fn parse(body: &'a [u8]) -> Result<Request<'a>> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|&b| b != b'{') {
            // serde would read a struct from an array of its fields; a body is an object.
            let e = serde_json::from_slice::<serde::de::IgnoredAny>(body);
            return Err(match e {
                Err(e) => Error::json(&e, "request"),
                Ok(_) => Error::new(ErrorKind::InvalidRequest, "request: not a JSON object"),
            });
        }
        // Requests legitimately hold long histories: a larger element budget than responses.
        let parsed = crate::wire::with_list_budget(MAX_REQUEST_LIST_ELEMENTS, || {
            serde_json::from_slice::<Request<'a>>(body)
        });
        match parsed {
            Ok(r) => Ok(r),
            Err(e) if e.is_data() => Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("request: {e}"),
            )),
            Err(e) => Err(Error::json(&e, "request")),
        }
    }

    /// The endpoint the body's shape implies: `messages` → chat, `prompt` → completions,
    /// `input` → embeddings when the model or options are an embedding's, else Responses API.
    pub fn endpoint(&self) -> Option<Endpoint> {
        self.shape().endpoint()
    }

    /// The fields [`Self::endpoint`] is decided by.
    pub(crate) fn shape(&self) -> Shape<'_> {
        Shape {
            model: self.model.as_deref(),
            messages: self.messages.is_some(),
            prompt: self.prompt.is_some(),
            input: self.input.is_some(),
            embedding_options: self.encoding_format.0.is_some() || self.dimensions.0.is_some(),
            responses_fields: self.instructions.0.is_some()
                || self.previous_response_id.0.is_some(),
        }
    }

    /// Whether the client asked for a stream.
    pub fn streams(&self) -> bool {
        self.stream.0 == Some(true)
    }

    /// Whether the client asked for the usage chunk of a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage.0) == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_shapes() {
        let body = br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"n":2,
            "messages":[{"role":"system","content":"be brief"},
              {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}}]},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"42"}],
            "tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}"#;
        let r = Request::parse(body).unwrap();
        assert_eq!(r.endpoint(), Some(Endpoint::ChatCompletions));
        assert!(r.streams() && r.include_usage());
        assert_eq!(r.n, Int(Some(2)));
        let m = &r.messages.as_ref().unwrap().items;
        assert_eq!(m.len(), 4);
        match &m[1].content {
            Content::Parts(p) => {
                assert_eq!(
                    p[1].image_url.as_ref().unwrap().detail.as_deref(),
                    Some("low")
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            m[2].tool_calls[0]
                .function
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("f")
        );
        assert!(r.tools.is_some());
    }

    #[test]
    fn unused_and_odd_typed_fields_never_fail() {
        // The OpenAI Agents SDK shape: `include: []`, function-call items, flat strict tools.
        let body = br#"{"input":[{"content":"What is 1+2?","role":"user"},
              {"arguments":"{\"a\":1}","call_id":"c1","name":"add","type":"function_call","id":"fc_1","status":"completed"},
              {"call_id":"c1","output":"3","type":"function_call_output"}],
            "model":"gpt-4o","include":[],"instructions":"Add.","stream":false,
            "tools":[{"name":"add","parameters":{"properties":{"a":{"title":"A","type":"integer"}},"required":["a"],"title":"add_args","type":"object","additionalProperties":false},"strict":true,"type":"function","description":"Add"}]}"#;
        let r = Request::parse(body).unwrap();
        assert_eq!(r.endpoint(), Some(Endpoint::Responses));
        assert_eq!(r.instructions.as_deref(), Some("Add."));
        // Every element or object we read may be of any type: it reads as empty, the rest counts.
        let body = br#"{"model":"gpt-4o","include":{"x":[1,{"y":null}]},"stream_options":"yes",
            "metadata":[1,2],"user":7,"messages":[1,"x",null,[],
              {"role":"user","content":["a",{"type":"text","text":"hi"},3]},
              {"role":"assistant","tool_calls":["x",{"id":"c","function":5},{"function":{"name":"f","arguments":{}}}]}]}"#;
        let r = Request::parse(body).unwrap();
        assert_eq!(r.stream_options, Some(StreamOptions::default()));
        let m = &r.messages.as_ref().unwrap().items;
        assert_eq!(m.len(), 6);
        assert_eq!(m[0], Message::default());
        match &m[4].content {
            Content::Parts(p) => {
                assert_eq!(p.len(), 3);
                assert_eq!(
                    (p[0].kind.as_deref(), p[1].text.as_deref()),
                    (None, Some("hi"))
                );
            }
            other => panic!("{other:?}"),
        }
        let calls = &m[5].tool_calls;
        assert_eq!(
            (calls[0].id.as_deref(), calls[1].function.as_ref()),
            (None, Some(&FunctionCall::default()))
        );
        assert_eq!(
            calls[2].function.as_ref().unwrap().name.as_deref(),
            Some("f")
        );
    }

    #[test]
    fn endpoints_by_shape() {
        let e = |b: &[u8]| Request::parse(b).unwrap().endpoint();
        assert_eq!(
            e(br#"{"prompt":"x","model":"gpt-3.5-turbo-instruct"}"#),
            Some(Endpoint::Completions)
        );
        assert_eq!(
            e(br#"{"input":"x","model":"text-embedding-3-small"}"#),
            Some(Endpoint::Embeddings)
        );
        assert_eq!(
            e(br#"{"input":"x","model":"gpt-4o"}"#),
            Some(Endpoint::Responses)
        );
        assert!(Request::parse(b"[1]").is_err());
        assert!(Request::parse(b"{").is_err());
    }
}
