//! The system under test for OpenAI-compatible servers (vLLM, llama.cpp): HTTP client, streaming, batching, replicas.
