//! NLTK's Porter stemmer (`nltk.stem.porter.PorterStemmer()`, default
//! `NLTK_EXTENSIONS` mode), which `rouge_score` uses with `use_stemmer=True`.
//!
//! A rule-for-rule port of NLTK 3.9's implementation, including its
//! departures from the original algorithm (the irregular-forms pool, words of
//! at most two letters left alone, `ies`/`ied` on four-letter words, the
//! two-letter cvc case, step 1c's `y` rule, the `alli`/`fulli`/`logi`
//! rules). Input is one lowercase ASCII token (what `rouge_score`'s tokenizer
//! produces); other input is returned lowercased and otherwise unchanged.

/// The stem of `word` as `PorterStemmer().stem(word)` returns it.
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if !lower.bytes().all(|b| b.is_ascii_lowercase()) {
        // Digits and non-ASCII never reach the stemmer from rouge_score's
        // tokenizer except as whole tokens; keep them intact.
        if lower.bytes().any(|b| !b.is_ascii_alphanumeric()) {
            return lower;
        }
    }
    if let Some(base) = irregular(&lower) {
        return base.to_string();
    }
    if lower.len() <= 2 {
        return lower;
    }
    let mut w = lower.into_bytes();
    w = step1a(w);
    w = step1b(w);
    w = step1c(w);
    w = step2(w);
    w = step3(w);
    w = step4(w);
    w = step5a(w);
    w = step5b(w);
    // Only ASCII bytes were ever inserted.
    String::from_utf8(w).unwrap_or_default()
}

fn irregular(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u')
}

fn is_consonant(w: &[u8], i: usize) -> bool {
    if is_vowel(w[i]) {
        return false;
    }
    if w[i] == b'y' {
        return i == 0 || !is_consonant(w, i - 1);
    }
    true
}

/// Number of "vc" pairs in the consonant/vowel pattern.
fn measure(stem: &[u8]) -> usize {
    let mut count = 0;
    let mut prev_vowel = false;
    for i in 0..stem.len() {
        let consonant = is_consonant(stem, i);
        if consonant && prev_vowel {
            count += 1;
        }
        prev_vowel = !consonant;
    }
    count
}

fn positive_measure(stem: &[u8]) -> bool {
    measure(stem) > 0
}

fn contains_vowel(stem: &[u8]) -> bool {
    (0..stem.len()).any(|i| !is_consonant(stem, i))
}

fn ends_double_consonant(w: &[u8]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

fn ends_cvc(w: &[u8]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], b'w' | b'x' | b'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

enum Cond<'a> {
    None,
    Positive,
    GreaterThanOne,
    Custom(&'a dyn Fn(&[u8]) -> bool),
}

impl Cond<'_> {
    fn holds(&self, stem: &[u8]) -> bool {
        match self {
            Cond::None => true,
            Cond::Positive => positive_measure(stem),
            Cond::GreaterThanOne => measure(stem) > 1,
            Cond::Custom(f) => f(stem),
        }
    }
}

/// The first rule whose suffix matches decides: replaced if its condition
/// holds, otherwise the word is returned unchanged (NLTK's
/// `_apply_rule_list`). The suffix `*d` means "ends in a double consonant".
fn apply_rules(w: Vec<u8>, rules: &[(&str, &[u8], Cond<'_>)]) -> Vec<u8> {
    for (suffix, replacement, cond) in rules {
        if *suffix == "*d" {
            if ends_double_consonant(&w) {
                let stem = &w[..w.len() - 2];
                return if cond.holds(stem) {
                    [stem, replacement].concat()
                } else {
                    w
                };
            }
            continue;
        }
        if w.ends_with(suffix.as_bytes()) {
            let stem = &w[..w.len() - suffix.len()];
            return if cond.holds(stem) {
                [stem, replacement].concat()
            } else {
                w
            };
        }
    }
    w
}

fn replace_suffix(w: &[u8], suffix_len: usize, replacement: &[u8]) -> Vec<u8> {
    [&w[..w.len() - suffix_len], replacement].concat()
}

fn step1a(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"ies") && w.len() == 4 {
        return replace_suffix(&w, 3, b"ie");
    }
    apply_rules(
        w,
        &[
            ("sses", b"ss", Cond::None),
            ("ies", b"i", Cond::None),
            ("ss", b"ss", Cond::None),
            ("s", b"", Cond::None),
        ],
    )
}

fn step1b(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"ied") {
        return if w.len() == 4 {
            replace_suffix(&w, 3, b"ie")
        } else {
            replace_suffix(&w, 3, b"i")
        };
    }
    if w.ends_with(b"eed") {
        let stem = &w[..w.len() - 3];
        return if measure(stem) > 0 {
            [stem, b"ee"].concat()
        } else {
            w
        };
    }
    let mut intermediate = None;
    for suffix in [&b"ed"[..], b"ing"] {
        if w.ends_with(suffix) {
            let stem = &w[..w.len() - suffix.len()];
            if contains_vowel(stem) {
                intermediate = Some(stem.to_vec());
                break;
            }
        }
    }
    let Some(stem) = intermediate else {
        return w;
    };
    let Some(&last) = stem.last() else {
        return stem;
    };
    let not_lsz = move |_: &[u8]| !matches!(last, b'l' | b's' | b'z');
    let cvc_one = |s: &[u8]| measure(s) == 1 && ends_cvc(s);
    apply_rules(
        stem,
        &[
            ("at", b"ate", Cond::None),
            ("bl", b"ble", Cond::None),
            ("iz", b"ize", Cond::None),
            ("*d", &[last], Cond::Custom(&not_lsz)),
            ("", b"e", Cond::Custom(&cvc_one)),
        ],
    )
}

fn step1c(w: Vec<u8>) -> Vec<u8> {
    let cond = |s: &[u8]| s.len() > 1 && is_consonant(s, s.len() - 1);
    apply_rules(w, &[("y", b"i", Cond::Custom(&cond))])
}

fn step2(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"alli") && positive_measure(&w[..w.len() - 4]) {
        return step2(replace_suffix(&w, 4, b"al"));
    }
    let word = w.clone();
    let logi = move |_: &[u8]| positive_measure(&word[..word.len() - 3]);
    apply_rules(
        w,
        &[
            ("ational", b"ate", Cond::Positive),
            ("tional", b"tion", Cond::Positive),
            ("enci", b"ence", Cond::Positive),
            ("anci", b"ance", Cond::Positive),
            ("izer", b"ize", Cond::Positive),
            ("bli", b"ble", Cond::Positive),
            ("alli", b"al", Cond::Positive),
            ("entli", b"ent", Cond::Positive),
            ("eli", b"e", Cond::Positive),
            ("ousli", b"ous", Cond::Positive),
            ("ization", b"ize", Cond::Positive),
            ("ation", b"ate", Cond::Positive),
            ("ator", b"ate", Cond::Positive),
            ("alism", b"al", Cond::Positive),
            ("iveness", b"ive", Cond::Positive),
            ("fulness", b"ful", Cond::Positive),
            ("ousness", b"ous", Cond::Positive),
            ("aliti", b"al", Cond::Positive),
            ("iviti", b"ive", Cond::Positive),
            ("biliti", b"ble", Cond::Positive),
            ("fulli", b"ful", Cond::Positive),
            ("logi", b"log", Cond::Custom(&logi)),
        ],
    )
}

fn step3(w: Vec<u8>) -> Vec<u8> {
    apply_rules(
        w,
        &[
            ("icate", b"ic", Cond::Positive),
            ("ative", b"", Cond::Positive),
            ("alize", b"al", Cond::Positive),
            ("iciti", b"ic", Cond::Positive),
            ("ical", b"ic", Cond::Positive),
            ("ful", b"", Cond::Positive),
            ("ness", b"", Cond::Positive),
        ],
    )
}

fn step4(w: Vec<u8>) -> Vec<u8> {
    let ion = |s: &[u8]| measure(s) > 1 && matches!(s.last(), Some(b's' | b't'));
    apply_rules(
        w,
        &[
            ("al", b"", Cond::GreaterThanOne),
            ("ance", b"", Cond::GreaterThanOne),
            ("ence", b"", Cond::GreaterThanOne),
            ("er", b"", Cond::GreaterThanOne),
            ("ic", b"", Cond::GreaterThanOne),
            ("able", b"", Cond::GreaterThanOne),
            ("ible", b"", Cond::GreaterThanOne),
            ("ant", b"", Cond::GreaterThanOne),
            ("ement", b"", Cond::GreaterThanOne),
            ("ment", b"", Cond::GreaterThanOne),
            ("ent", b"", Cond::GreaterThanOne),
            ("ion", b"", Cond::Custom(&ion)),
            ("ou", b"", Cond::GreaterThanOne),
            ("ism", b"", Cond::GreaterThanOne),
            ("ate", b"", Cond::GreaterThanOne),
            ("iti", b"", Cond::GreaterThanOne),
            ("ous", b"", Cond::GreaterThanOne),
            ("ive", b"", Cond::GreaterThanOne),
            ("ize", b"", Cond::GreaterThanOne),
        ],
    )
}

fn step5a(w: Vec<u8>) -> Vec<u8> {
    if w.ends_with(b"e") {
        let stem = &w[..w.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_vec();
        }
    }
    w
}

fn step5b(w: Vec<u8>) -> Vec<u8> {
    let word = w.clone();
    let cond = move |_: &[u8]| measure(&word[..word.len() - 1]) > 1;
    apply_rules(w, &[("ll", b"l", Cond::Custom(&cond))])
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn nltk_stem_doctest_vectors() {
        // nltk/test/stem.doctest (PorterStemmer section).
        let plurals = "caresses flies dies mules denied died agreed owned humbled sized meeting \
                       stating siezing itemization sensational traditional reference colonizer plotted";
        let want = "caress fli die mule deni die agre own humbl size meet \
                    state siez item sensat tradit refer colon plot";
        let got: Vec<String> = plurals.split_whitespace().map(stem).collect();
        assert_eq!(got.join(" "), want);
    }

    #[test]
    fn nltk_unit_test_vectors() {
        // nltk/test/unit/test_stem.py: test_oed_bug, test_lowercase_option.
        assert_eq!(stem("oed"), "o");
        assert_eq!(stem("On"), "on");
        assert_eq!(stem("I"), "i");
        assert_eq!(stem("Github"), "github");
        // SnowballStemmer("porter") is this stemmer: stem.doctest.
        assert_eq!(stem("generously"), "gener");
    }

    #[test]
    fn nltk_extensions() {
        // The irregular-forms pool and the NLTK-only rules.
        assert_eq!(stem("skies"), "sky");
        assert_eq!(stem("dying"), "die");
        assert_eq!(stem("news"), "news");
        assert_eq!(stem("innings"), "inning");
        assert_eq!(stem("ties"), "tie"); // ies on a four-letter word
        assert_eq!(stem("tied"), "tie");
        assert_eq!(stem("cried"), "cri");
        assert_eq!(stem("fly"), "fli");
        assert_eq!(stem("say"), "say"); // y after a vowel stays
        assert_eq!(stem("am"), "am");
    }
}
