//! With the `official` feature: compiles MLCommons' LoadGen from the sources
//! in `$LOADGEN_SRC` (the unpacked mlcommons-loadgen sdist;
//! `scripts/peers/loadgen_src.sh` fetches it) with LoadGen's own release
//! flags, plus `shim/shim.cc`. Without the feature: nothing (no C++
//! toolchain needed).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "official")]
    official::build();
}

#[cfg(feature = "official")]
mod official {
    use std::path::{Path, PathBuf};

    /// LoadGen's library sources, as its setup.py lists them (`lib_sources`),
    /// and the version file setup.py generates (the sdist ships it).
    const SOURCES: &[&str] = &[
        "early_stopping.cc",
        "issue_query_controller.cc",
        "loadgen.cc",
        "logging.cc",
        "test_settings_internal.cc",
        "utils.cc",
        "version.cc",
        "results.cc",
        "generated/version_generated.cc",
    ];

    pub fn build() {
        println!("cargo::rerun-if-env-changed=LOADGEN_SRC");
        println!("cargo::rerun-if-changed=shim/shim.cc");
        let Some(src) = std::env::var_os("LOADGEN_SRC").map(PathBuf::from) else {
            fail(
                "the `official` feature needs LoadGen's C++ sources: set LOADGEN_SRC to the \
                 unpacked mlcommons-loadgen 6.0.17 sdist, e.g. \
                 `eval \"$(bash scripts/peers/loadgen_src.sh)\"`",
            );
        };
        for file in SOURCES {
            let path = src.join(file);
            if !path.is_file() {
                fail(&format!(
                    "LOADGEN_SRC={}: no {file}; it must be the unpacked mlcommons-loadgen sdist \
                     (scripts/peers/loadgen_src.sh)",
                    src.display()
                ));
            }
            println!("cargo::rerun-if-changed={}", path.display());
        }
        let mut build = cc::Build::new();
        build
            .cpp(true)
            // LoadGen's release flags (its CMakeLists.txt: -O3 -W -Wall),
            // whatever the cargo profile, so the library measures as released.
            .opt_level(3)
            .debug(false)
            .flag_if_supported("-std=c++14")
            .flag_if_supported("-W")
            .flag_if_supported("-Wall")
            // Its own sources' warnings are LoadGen's, not ours to fix.
            .warnings(false)
            .include(&src)
            .file(Path::new("shim/shim.cc"));
        for file in SOURCES {
            build.file(src.join(file));
        }
        build.compile("mlperf_loadgen");
        println!("cargo::rustc-link-lib=pthread");
    }

    /// Stops the build with cargo's error message (a build script ends
    /// by exiting; a panic would bury the message under a backtrace).
    #[allow(clippy::exit)]
    fn fail(message: &str) -> ! {
        println!("cargo::error={message}");
        std::process::exit(1)
    }
}
