//! The SSE parser on hostile streams. Besides "no panic", one property: how
//! the bytes are cut into network reads never changes the events parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sut::sse::SseParser;

/// Events (type, data) or the error, for the stream fed in the given pieces.
fn parse(pieces: &[&[u8]]) -> (Vec<(String, Vec<u8>)>, Option<String>, bool) {
    // A small limit so the size checks are reached too.
    let mut parser = SseParser::new(4096);
    let mut events = Vec::new();
    for piece in pieces {
        parser.feed(piece);
        loop {
            match parser.next_event() {
                Ok(Some(event)) => events.push((event.event.to_string(), event.data.to_vec())),
                Ok(None) => break,
                Err(e) => return (events, Some(e.to_string()), true),
            }
        }
    }
    let partial = parser.has_partial_event();
    (events, None, partial)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the cut points: every `step`-th byte starts a piece.
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 17) + 1;
    let whole = parse(&[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(step).collect();
    let cut = parse(&pieces);
    assert_eq!(
        whole, cut,
        "events depend on how the stream was cut (step {step})"
    );
});
