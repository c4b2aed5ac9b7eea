//! Money is never a float: the crate's sources never name a float type.

use std::path::Path;

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// True when `text` contains `word` as a whole identifier.
fn has_identifier(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(index, _)| {
        let before = text[..index].chars().next_back();
        let after = text[index + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[test]
fn no_source_file_names_a_float_type() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() >= 4, "found the sources: {files:?}");
    // Spelled in two pieces so that this file does not trip its own check.
    let floats = [format!("f{}", 32), format!("f{}", 64)];
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source is readable");
        for float in &floats {
            assert!(
                !has_identifier(&text, float),
                "{} names {float}",
                file.display()
            );
        }
    }
}

#[test]
fn the_scan_finds_a_float_when_there_is_one() {
    assert!(has_identifier("let x: f64 = 1.0;", "f64"));
    assert!(!has_identifier("let xf64y = 1;", "f64"));
}
