//! NLTK's Porter stemmer (`nltk.stem.porter.PorterStemmer()`, default
//! `NLTK_EXTENSIONS` mode), which `rouge_score` uses with `use_stemmer=True`.
//!
//! A rule-for-rule port of NLTK 3.9's implementation, including its
//! departures from the original algorithm (the irregular-forms pool, words of
//! at most two letters left alone, `ies`/`ied` on four-letter words, the
//! two-letter cvc case, step 1c's `y` rule, the `alli`/`fulli`/`logi`
//! rules). Works on characters like NLTK (anything but a, e, i, o, u and
//! a `y` after a vowel is a consonant), so any word stems as NLTK stems it;
//! `rouge_score` only passes it lowercase ASCII tokens.

/// The stem of `word` as `PorterStemmer().stem(word)` returns it.
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some(base) = irregular(&lower) {
        return base.to_string();
    }
    if lower.chars().count() <= 2 {
        return lower;
    }
    let mut w: Vec<char> = lower.chars().collect();
    w = step1a(w);
    w = step1b(w);
    w = step1c(w);
    w = step2(w);
    w = step3(w);
    w = step4(w);
    w = step5a(w);
    w = step5b(w);
    w.into_iter().collect()
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

fn is_vowel(b: char) -> bool {
    matches!(b, 'a' | 'e' | 'i' | 'o' | 'u')
}

fn is_consonant(w: &[char], i: usize) -> bool {
    if is_vowel(w[i]) {
        return false;
    }
    if w[i] == 'y' {
        return i == 0 || !is_consonant(w, i - 1);
    }
    true
}

/// Number of "vc" pairs in the consonant/vowel pattern.
fn measure(stem: &[char]) -> usize {
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

fn positive_measure(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn contains_vowel(stem: &[char]) -> bool {
    (0..stem.len()).any(|i| !is_consonant(stem, i))
}

fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

enum Cond<'a> {
    None,
    Positive,
    GreaterThanOne,
    Custom(&'a dyn Fn(&[char]) -> bool),
}

impl Cond<'_> {
    fn holds(&self, stem: &[char]) -> bool {
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
fn apply_rules(w: Vec<char>, rules: &[(&str, &[char], Cond<'_>)]) -> Vec<char> {
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
        if ends_with(&w, suffix) {
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

/// `w` ends with the ASCII `suffix`.
fn ends_with(w: &[char], suffix: &str) -> bool {
    let n = suffix.len();
    w.len() >= n
        && w[w.len() - n..]
            .iter()
            .zip(suffix.bytes())
            .all(|(&c, b)| c == char::from(b))
}

fn replace_suffix(w: &[char], suffix_len: usize, replacement: &[char]) -> Vec<char> {
    [&w[..w.len() - suffix_len], replacement].concat()
}

fn step1a(w: Vec<char>) -> Vec<char> {
    if w.ends_with(&['i', 'e', 's']) && w.len() == 4 {
        return replace_suffix(&w, 3, &['i', 'e']);
    }
    apply_rules(
        w,
        &[
            ("sses", &['s', 's'], Cond::None),
            ("ies", &['i'], Cond::None),
            ("ss", &['s', 's'], Cond::None),
            ("s", &[], Cond::None),
        ],
    )
}

fn step1b(w: Vec<char>) -> Vec<char> {
    if w.ends_with(&['i', 'e', 'd']) {
        return if w.len() == 4 {
            replace_suffix(&w, 3, &['i', 'e'])
        } else {
            replace_suffix(&w, 3, &['i'])
        };
    }
    if w.ends_with(&['e', 'e', 'd']) {
        let stem = &w[..w.len() - 3];
        return if measure(stem) > 0 {
            [stem, &['e', 'e']].concat()
        } else {
            w
        };
    }
    let mut intermediate = None;
    for suffix in [&['e', 'd'][..], &['i', 'n', 'g'][..]] {
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
    let not_lsz = move |_: &[char]| !matches!(last, 'l' | 's' | 'z');
    let cvc_one = |s: &[char]| measure(s) == 1 && ends_cvc(s);
    apply_rules(
        stem,
        &[
            ("at", &['a', 't', 'e'], Cond::None),
            ("bl", &['b', 'l', 'e'], Cond::None),
            ("iz", &['i', 'z', 'e'], Cond::None),
            ("*d", &[last], Cond::Custom(&not_lsz)),
            ("", &['e'], Cond::Custom(&cvc_one)),
        ],
    )
}

fn step1c(w: Vec<char>) -> Vec<char> {
    let cond = |s: &[char]| s.len() > 1 && is_consonant(s, s.len() - 1);
    apply_rules(w, &[("y", &['i'], Cond::Custom(&cond))])
}

fn step2(w: Vec<char>) -> Vec<char> {
    if w.ends_with(&['a', 'l', 'l', 'i']) && positive_measure(&w[..w.len() - 4]) {
        return step2(replace_suffix(&w, 4, &['a', 'l']));
    }
    let word = w.clone();
    let logi = move |_: &[char]| positive_measure(&word[..word.len() - 3]);
    apply_rules(
        w,
        &[
            ("ational", &['a', 't', 'e'], Cond::Positive),
            ("tional", &['t', 'i', 'o', 'n'], Cond::Positive),
            ("enci", &['e', 'n', 'c', 'e'], Cond::Positive),
            ("anci", &['a', 'n', 'c', 'e'], Cond::Positive),
            ("izer", &['i', 'z', 'e'], Cond::Positive),
            ("bli", &['b', 'l', 'e'], Cond::Positive),
            ("alli", &['a', 'l'], Cond::Positive),
            ("entli", &['e', 'n', 't'], Cond::Positive),
            ("eli", &['e'], Cond::Positive),
            ("ousli", &['o', 'u', 's'], Cond::Positive),
            ("ization", &['i', 'z', 'e'], Cond::Positive),
            ("ation", &['a', 't', 'e'], Cond::Positive),
            ("ator", &['a', 't', 'e'], Cond::Positive),
            ("alism", &['a', 'l'], Cond::Positive),
            ("iveness", &['i', 'v', 'e'], Cond::Positive),
            ("fulness", &['f', 'u', 'l'], Cond::Positive),
            ("ousness", &['o', 'u', 's'], Cond::Positive),
            ("aliti", &['a', 'l'], Cond::Positive),
            ("iviti", &['i', 'v', 'e'], Cond::Positive),
            ("biliti", &['b', 'l', 'e'], Cond::Positive),
            ("fulli", &['f', 'u', 'l'], Cond::Positive),
            ("logi", &['l', 'o', 'g'], Cond::Custom(&logi)),
        ],
    )
}

fn step3(w: Vec<char>) -> Vec<char> {
    apply_rules(
        w,
        &[
            ("icate", &['i', 'c'], Cond::Positive),
            ("ative", &[], Cond::Positive),
            ("alize", &['a', 'l'], Cond::Positive),
            ("iciti", &['i', 'c'], Cond::Positive),
            ("ical", &['i', 'c'], Cond::Positive),
            ("ful", &[], Cond::Positive),
            ("ness", &[], Cond::Positive),
        ],
    )
}

fn step4(w: Vec<char>) -> Vec<char> {
    let ion = |s: &[char]| measure(s) > 1 && matches!(s.last(), Some('s' | 't'));
    apply_rules(
        w,
        &[
            ("al", &[], Cond::GreaterThanOne),
            ("ance", &[], Cond::GreaterThanOne),
            ("ence", &[], Cond::GreaterThanOne),
            ("er", &[], Cond::GreaterThanOne),
            ("ic", &[], Cond::GreaterThanOne),
            ("able", &[], Cond::GreaterThanOne),
            ("ible", &[], Cond::GreaterThanOne),
            ("ant", &[], Cond::GreaterThanOne),
            ("ement", &[], Cond::GreaterThanOne),
            ("ment", &[], Cond::GreaterThanOne),
            ("ent", &[], Cond::GreaterThanOne),
            ("ion", &[], Cond::Custom(&ion)),
            ("ou", &[], Cond::GreaterThanOne),
            ("ism", &[], Cond::GreaterThanOne),
            ("ate", &[], Cond::GreaterThanOne),
            ("iti", &[], Cond::GreaterThanOne),
            ("ous", &[], Cond::GreaterThanOne),
            ("ive", &[], Cond::GreaterThanOne),
            ("ize", &[], Cond::GreaterThanOne),
        ],
    )
}

fn step5a(w: Vec<char>) -> Vec<char> {
    if w.ends_with(&['e']) {
        let stem = &w[..w.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_vec();
        }
    }
    w
}

fn step5b(w: Vec<char>) -> Vec<char> {
    let word = w.clone();
    let cond = move |_: &[char]| measure(&word[..word.len() - 1]) > 1;
    apply_rules(w, &[("ll", &['l'], Cond::Custom(&cond))])
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
