//! `user.conf` text through LoadGen's grammar, then the derivation of the
//! effective settings (the arithmetic that a hostile value could overflow).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loadgen::ConfigLoader;
use loadgen::settings::{EffectiveSettings, Scenario, TestSettings};

const SCENARIOS: [Scenario; 4] = [
    Scenario::Offline,
    Scenario::Server,
    Scenario::SingleStream,
    Scenario::MultiStream,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let scenario = SCENARIOS[usize::from(pick) % SCENARIOS.len()];
    let text = String::from_utf8_lossy(text);
    let mut settings = TestSettings {
        scenario,
        ..TestSettings::default()
    };
    let mut loader = ConfigLoader::new();
    if loader
        .user_conf_text(
            &mut settings,
            "fuzz.conf",
            &text,
            "llama3_1-8b",
            scenario.as_str(),
        )
        .is_ok()
    {
        let _ = EffectiveSettings::new(&settings, 1024, 13368);
    }
    let mut audit = TestSettings::default();
    let _ = loader.audit_config_text(&mut audit, "audit.config", &text, "*", scenario.as_str());
});
