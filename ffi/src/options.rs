//! Meter options from the host's JSON.
//!
//! The core has no JSON form of its options, so it lives here: `{"model", "deployment",
//! "deployments": {name: model}, "image_sizes": {url: [width, height]}, "endpoint",
//! "reconcile", "limits": {...}}`, every field optional, unknown fields rejected.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::error::Category;
use usagetap::image::ImageSize;
use usagetap::{Endpoint, Limits, MeterOptions};

use crate::{usagetap_result, Failure};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OptionsJson {
    model: Option<String>,
    deployment: Option<String>,
    deployments: Option<HashMap<String, String>>,
    image_sizes: Option<HashMap<String, ImageSize>>,
    endpoint: Option<String>,
    reconcile: Option<bool>,
    limits: Option<LimitsJson>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsJson {
    max_line_bytes: Option<u64>,
    max_body_bytes: Option<u64>,
    max_text_bytes: Option<u64>,
    max_choices: Option<u64>,
    max_tool_calls: Option<u64>,
    max_json_depth: Option<u64>,
    max_images: Option<u64>,
    max_image_base64: Option<u64>,
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(usagetap_result::InvalidOptions, message)
}

/// Parses the options; whitespace only, or `null`, gives the defaults.
pub(crate) fn parse(json: &str) -> Result<MeterOptions, Failure> {
    if json.trim().is_empty() {
        return Ok(MeterOptions::default());
    }
    let parsed: Option<OptionsJson> = serde_json::from_str(json).map_err(|e| {
        let code = match e.classify() {
            Category::Data => usagetap_result::InvalidOptions,
            Category::Io | Category::Syntax | Category::Eof => usagetap_result::InvalidJson,
        };
        Failure::new(code, format!("options: {e}"))
    })?;
    let Some(p) = parsed else {
        return Ok(MeterOptions::default());
    };
    let mut o = MeterOptions {
        model: p.model.filter(|m| !m.is_empty()),
        deployment: p.deployment.filter(|d| !d.is_empty()),
        deployments: Arc::new(p.deployments.unwrap_or_default()),
        image_sizes: Arc::new(p.image_sizes.unwrap_or_default()),
        reconcile: p.reconcile.unwrap_or(false),
        ..MeterOptions::default()
    };
    if let Some(e) = p.endpoint.filter(|e| !e.is_empty()) {
        o.endpoint = Some(Endpoint::parse(&e).ok_or_else(|| {
            invalid(format!(
                "options: unknown endpoint {e:?} (expected chat.completions, completions, \
                 embeddings, responses, or a URL path ending in one of them)"
            ))
        })?);
    }
    if let Some(l) = p.limits {
        let d = Limits::default();
        let pick = |name: &str, v: Option<u64>, default: usize| -> Result<usize, Failure> {
            match v {
                None => Ok(default),
                Some(0) => Err(invalid(format!(
                    "options: limits.{name} must be at least 1"
                ))),
                Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            }
        };
        o.limits = Limits {
            max_line_bytes: pick("max_line_bytes", l.max_line_bytes, d.max_line_bytes)?,
            max_body_bytes: pick("max_body_bytes", l.max_body_bytes, d.max_body_bytes)?,
            max_text_bytes: pick("max_text_bytes", l.max_text_bytes, d.max_text_bytes)?,
            max_choices: pick("max_choices", l.max_choices, d.max_choices)?,
            max_tool_calls: pick("max_tool_calls", l.max_tool_calls, d.max_tool_calls)?,
            max_json_depth: pick("max_json_depth", l.max_json_depth, d.max_json_depth)?,
            max_images: pick("max_images", l.max_images, d.max_images)?,
            max_image_base64: pick("max_image_base64", l.max_image_base64, d.max_image_base64)?,
        };
    }
    Ok(o)
}
