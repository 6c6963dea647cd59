//! A vLLM-compatible serving simulator: OpenAI API, SSE streaming, Prometheus metrics, continuous batching model, fault injection.
