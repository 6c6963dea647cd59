//! llama.cpp's `GET /slots` as exposition lines, so the KV-cache row of the
//! mapping table has a source on servers that no longer export
//! `llamacpp:kv_cache_usage_ratio`.
//!
//! Per slot, `llamacpp_slots:n_ctx{slot="N"}` (its context size) and
//! `llamacpp_slots:busy_context_tokens{slot="N"}`: the prompt and decoded
//! tokens of the request it is processing, 0 when idle (an idle slot's
//! cached tokens are reusable, not in use). The lines are appended to the
//! scrape, so they are kept as scraped like every other series.

use serde_json::Value;

/// Exposition lines for a `/slots` answer; `Err` says why it is not one.
pub fn slots_exposition(json: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let slots = value.as_array().ok_or("not a JSON array of slots")?;
    let mut out = String::from(
        "# TYPE llamacpp_slots:n_ctx gauge\n# TYPE llamacpp_slots:busy_context_tokens gauge\n",
    );
    for (i, slot) in slots.iter().enumerate() {
        let id = slot.get("id").and_then(Value::as_u64).unwrap_or(i as u64);
        let n_ctx = slot
            .get("n_ctx")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("slot {id}: no n_ctx"))?;
        let busy = slot
            .get("is_processing")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let tokens = if busy {
            let prompt = slot
                .get("n_prompt_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let decoded = slot
                .get("next_token")
                .and_then(|n| n.get(0).or(Some(n)))
                .and_then(|n| n.get("n_decoded"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            prompt + decoded
        } else {
            0
        };
        out.push_str(&format!(
            "llamacpp_slots:n_ctx{{slot=\"{id}\"}} {n_ctx}\nllamacpp_slots:busy_context_tokens{{slot=\"{id}\"}} {tokens}\n"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_slots_count_prompt_and_decoded_tokens() {
        let json = r#"[{"id":0,"n_ctx":1024,"is_processing":true,"n_prompt_tokens":17,
            "next_token":[{"n_decoded":6}]},{"id":1,"n_ctx":1024,"is_processing":false,
            "n_prompt_tokens":210,"next_token":[{"n_decoded":0}]}]"#;
        let text = slots_exposition(json).unwrap();
        assert!(text.contains("llamacpp_slots:busy_context_tokens{slot=\"0\"} 23\n"));
        assert!(text.contains("llamacpp_slots:busy_context_tokens{slot=\"1\"} 0\n"));
        assert!(text.contains("llamacpp_slots:n_ctx{slot=\"1\"} 1024\n"));
        assert!(slots_exposition("{}").is_err());
        assert!(
            slots_exposition("[{\"id\":0}]")
                .unwrap_err()
                .contains("n_ctx")
        );
    }
}
