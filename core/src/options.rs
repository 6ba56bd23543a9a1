//! Options: what the host knows about an exchange, and the resource limits.

use std::collections::HashMap;
use std::sync::Arc;

use crate::image::ImageSize;
use crate::record::Endpoint;

/// Resource limits. Every one is enforced with a flag in the record, never by buffering
/// without bound and never by a panic. The defaults suit a gateway: generous for real traffic,
/// small enough that a hostile stream cannot take the host's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest SSE line kept (default 8 MiB); longer lines are dropped, flag `line_too_long`.
    pub max_line_bytes: usize,
    /// Largest JSON body, or SSE event data, read (default 64 MiB); flag `body_too_large`.
    pub max_body_bytes: usize,
    /// Most completion text kept for counting, all choices together (default 32 MiB); flag
    /// `text_limit_reached`. Text is kept in arrival order up to the cap (cut at a character
    /// boundary) and none after it.
    pub max_text_bytes: usize,
    /// Highest choice index tracked plus one (default 128); flag `too_many_choices`.
    pub max_choices: usize,
    /// Most tool calls tracked per choice (default 1024); flag `too_many_tool_calls`.
    pub max_tool_calls: usize,
    /// Deepest JSON nesting accepted in a request body, a JSON response body or an SSE event
    /// (default 127, which is also the ceiling: the JSON reader accepts no more, to protect
    /// the stack). Deeper input is skipped whole; flag `json_too_deep`.
    pub max_json_depth: usize,
    /// Most images in one request whose header is read to size them (default 500, the service's
    /// own per-request cap). Further images get the point estimate for an unknown size; flags
    /// `too_many_images`, `image_size_unknown`.
    pub max_images: usize,
    /// Longest prefix of an image's base64 data decoded to find its header (default 64 KiB). A
    /// header not found within it leaves the size unknown; flag `image_size_unknown`.
    pub max_image_base64: usize,
}

impl Limits {
    /// The deepest nesting the JSON reader accepts whatever the limit says.
    pub const JSON_DEPTH_CEILING: usize = 127;

    /// `max_json_depth` as enforced: never above [`Limits::JSON_DEPTH_CEILING`].
    pub fn json_depth(&self) -> usize {
        self.max_json_depth.min(Self::JSON_DEPTH_CEILING)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 8 << 20,
            max_body_bytes: 64 << 20,
            max_text_bytes: 32 << 20,
            max_choices: 128,
            max_tool_calls: 1024,
            max_json_depth: Limits::JSON_DEPTH_CEILING,
            max_images: 500,
            max_image_base64: crate::image::DEFAULT_MAX_BASE64,
        }
    }
}

/// What the host tells the meter about an exchange. Every field is optional.
///
/// # Example: a deployment map for Azure
/// ```
/// use usagetap::MeterOptions;
/// let mut o = MeterOptions::default();
/// o.deployment("chat-prod").map_deployment("chat-prod", "gpt-4o-mini");
/// assert_eq!(o.model_for_deployment("chat-prod"), Some("gpt-4o-mini"));
/// o.url("/openai/deployments/emb-1/embeddings?api-version=2024-10-21");
/// assert_eq!(o.deployment.as_deref(), Some("emb-1"));
/// assert_eq!(o.endpoint, Some(usagetap::Endpoint::Embeddings));
/// ```
#[derive(Clone, Debug, Default)]
pub struct MeterOptions {
    /// The model, when the host knows it; the response's own `model` still wins.
    pub model: Option<String>,
    /// The deployment (Azure), when known.
    pub deployment: Option<String>,
    /// Deployment name → model, consulted when no known model name is found.
    pub deployments: Arc<HashMap<String, String>>,
    /// The endpoint; detected from the request and response when `None`.
    pub endpoint: Option<Endpoint>,
    /// Compute counts even when usage was reported, and put them in `computed`.
    pub reconcile: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Image URL → size in pixels, for images the library cannot size itself: an http(s) URL
    /// is never fetched, so a host that knows the size (it fetched or stored the image) supplies
    /// it here, and the image is priced by the size instead of the estimate for an unknown one.
    /// Data URLs are sized from their header; an entry for one is used only when the header
    /// cannot be read. An entry with a zero width or height counts as no entry.
    pub image_sizes: Arc<HashMap<String, ImageSize>>,
}

impl MeterOptions {
    /// Sets the model.
    pub fn model(&mut self, model: impl Into<String>) -> &mut Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the deployment.
    pub fn deployment(&mut self, deployment: impl Into<String>) -> &mut Self {
        self.deployment = Some(deployment.into());
        self
    }

    /// Adds a deployment → model entry.
    pub fn map_deployment(
        &mut self,
        deployment: impl Into<String>,
        model: impl Into<String>,
    ) -> &mut Self {
        Arc::make_mut(&mut self.deployments).insert(deployment.into(), model.into());
        self
    }

    /// Sets the endpoint.
    pub fn endpoint(&mut self, endpoint: Endpoint) -> &mut Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Takes the endpoint and the Azure deployment from the request URL or path (e.g.
    /// `/openai/deployments/chat-prod/chat/completions?api-version=...`, `/v1/responses`);
    /// what the URL does not say is left as it was.
    pub fn url(&mut self, url: &str) -> &mut Self {
        let r = crate::adapters::route(url);
        if let Some(e) = r.endpoint {
            self.endpoint = Some(e);
        }
        if let Some(d) = r.deployment {
            self.deployment = Some(d);
        }
        self
    }

    /// Adds the size of the image at `url` (see [`MeterOptions::image_sizes`]).
    pub fn image_size(&mut self, url: impl Into<String>, width: u32, height: u32) -> &mut Self {
        Arc::make_mut(&mut self.image_sizes).insert(url.into(), ImageSize { width, height });
        self
    }

    /// Turns reconciling on or off.
    pub fn reconcile(&mut self, on: bool) -> &mut Self {
        self.reconcile = on;
        self
    }

    /// The model mapped to `deployment`, if any.
    pub fn model_for_deployment(&self, deployment: &str) -> Option<&str> {
        self.deployments.get(deployment).map(String::as_str)
    }
}
