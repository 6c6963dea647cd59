//! vLLM's OpenAI-compatible request bodies, error bodies and response rendering.

use serde::{Deserialize, Serialize};

/// `prompt`: text, token ids, or lists of either.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
    Texts(Vec<String>),
    TokenLists(Vec<Vec<u32>>),
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StopInput {
    One(String),
    Many(Vec<String>),
}

impl StopInput {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            StopInput::One(s) => vec![s],
            StopInput::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub(crate) include_usage: Option<bool>,
    #[serde(default)]
    pub(crate) continuous_usage_stats: Option<bool>,
}

/// The fields of a completion or chat request the simulator uses (others are accepted and
/// ignored, as vLLM does with a warning).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GenerateRequest {
    pub(crate) model: Option<String>,
    pub(crate) prompt: Option<PromptInput>,
    pub(crate) messages: Option<Vec<ChatMessage>>,
    pub(crate) max_tokens: Option<u32>,
    pub(crate) max_completion_tokens: Option<u32>,
    pub(crate) min_tokens: Option<u32>,
    pub(crate) ignore_eos: Option<bool>,
    pub(crate) temperature: Option<f64>,
    pub(crate) seed: Option<u64>,
    pub(crate) stop: Option<StopInput>,
    pub(crate) stop_token_ids: Option<Vec<u32>>,
    pub(crate) n: Option<u32>,
    pub(crate) stream: Option<bool>,
    pub(crate) stream_options: Option<StreamOptions>,
    pub(crate) return_token_ids: Option<bool>,
}

/// One chat message; `content` is a string or a list of parts with `text`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatMessage {
    #[serde(default)]
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) content: serde_json::Value,
}

impl ChatMessage {
    pub(crate) fn text(&self) -> String {
        match &self.content {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }
}

/// vLLM's error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorResponse<'a> {
    pub(crate) error: ErrorInfo<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorInfo<'a> {
    pub(crate) message: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    pub(crate) param: Option<&'a str>,
    pub(crate) code: u16,
}

/// The error `type` vLLM gives a status.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 => "BadRequestError",
        401 => "UnauthorizedError",
        404 => "NotFoundError",
        429 => "TooManyRequestsError",
        501 => "NotImplementedError",
        503 => "ServiceUnavailableError",
        _ => "InternalServerError",
    }
}

pub(crate) fn error_json(status: u16, message: &str, param: Option<&str>) -> String {
    serde_json::to_string(&ErrorResponse {
        error: ErrorInfo {
            message,
            kind: error_type(status),
            param,
            code: status,
        },
    })
    .unwrap_or_default()
}

/// The error event of a stream: vLLM writes it with Python's `json.dumps` (", " and ": ").
pub(crate) fn streaming_error_json(status: u16, message: &str) -> String {
    let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".to_owned());
    format!(
        "{{\"error\": {{\"message\": {msg}, \"type\": \"{}\", \"param\": null, \"code\": {status}}}}}",
        error_type(status)
    )
}

/// Usage, in vLLM's field order.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u32,
    pub(crate) total_tokens: u32,
    pub(crate) completion_tokens: u32,
    pub(crate) prompt_tokens_details: Option<()>,
}

/// A non-streaming completion choice (vLLM's `CompletionResponseChoice`, all fields dumped).
#[derive(Debug, Serialize)]
pub(crate) struct CompletionChoice {
    pub(crate) index: u32,
    pub(crate) text: String,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: Option<&'static str>,
    pub(crate) stop_reason: serde_json::Value,
    pub(crate) token_ids: Option<Vec<u32>>,
    pub(crate) prompt_logprobs: Option<()>,
    pub(crate) prompt_token_ids: Option<Vec<u32>>,
    pub(crate) routed_experts: Option<()>,
}

/// A non-streaming completion (vLLM's `CompletionResponse`).
#[derive(Debug, Serialize)]
pub(crate) struct CompletionResponse<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
    pub(crate) choices: Vec<CompletionChoice>,
    pub(crate) service_tier: Option<()>,
    pub(crate) system_fingerprint: Option<()>,
    pub(crate) usage: Usage,
    pub(crate) kv_transfer_params: Option<()>,
    pub(crate) ec_transfer_params: Option<()>,
    pub(crate) metrics: Option<()>,
}

/// A chat message in a non-streaming response.
#[derive(Debug, Serialize)]
pub(crate) struct ChatResponseMessage {
    pub(crate) role: &'static str,
    pub(crate) content: String,
    pub(crate) refusal: Option<()>,
    pub(crate) annotations: Option<()>,
    pub(crate) audio: Option<()>,
    pub(crate) function_call: Option<()>,
    pub(crate) tool_calls: Vec<()>,
    pub(crate) reasoning: Option<()>,
}

/// A non-streaming chat choice.
#[derive(Debug, Serialize)]
pub(crate) struct ChatChoice {
    pub(crate) index: u32,
    pub(crate) message: ChatResponseMessage,
    pub(crate) logprobs: Option<()>,
    pub(crate) finish_reason: Option<&'static str>,
    pub(crate) stop_reason: serde_json::Value,
    pub(crate) token_ids: Option<Vec<u32>>,
}

/// A non-streaming chat completion.
#[derive(Debug, Serialize)]
pub(crate) struct ChatResponse<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) model: &'a str,
    pub(crate) choices: Vec<ChatChoice>,
    pub(crate) service_tier: Option<()>,
    pub(crate) system_fingerprint: Option<()>,
    pub(crate) usage: Usage,
    pub(crate) prompt_logprobs: Option<()>,
    pub(crate) prompt_token_ids: Option<Vec<u32>>,
    pub(crate) kv_transfer_params: Option<()>,
}

/// /v1/models.
#[derive(Debug, Serialize)]
pub(crate) struct ModelList<'a> {
    pub(crate) object: &'static str,
    pub(crate) data: Vec<ModelCard<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ModelCard<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) owned_by: &'static str,
    pub(crate) root: &'a str,
    pub(crate) parent: Option<()>,
    pub(crate) max_model_len: u32,
    pub(crate) permission: Vec<ModelPermission<'a>>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ModelPermission<'a> {
    pub(crate) id: &'a str,
    pub(crate) object: &'static str,
    pub(crate) created: u64,
    pub(crate) allow_create_engine: bool,
    pub(crate) allow_sampling: bool,
    pub(crate) allow_logprobs: bool,
    pub(crate) allow_search_indices: bool,
    pub(crate) allow_view: bool,
    pub(crate) allow_fine_tuning: bool,
    pub(crate) organization: &'static str,
    pub(crate) group: Option<()>,
    pub(crate) is_blocking: bool,
}

/// /tokenize request.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenizeRequest {
    #[serde(default)]
    pub(crate) prompt: Option<String>,
    #[serde(default)]
    pub(crate) messages: Option<Vec<ChatMessage>>,
}

/// /detokenize request.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DetokenizeRequest {
    pub(crate) tokens: Vec<u32>,
}
