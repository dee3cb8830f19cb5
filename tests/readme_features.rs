//! The README's feature table says what Cargo.toml's `[features]` says:
//! every feature in one is in the other, with the same default.

use std::collections::BTreeMap;

fn read(name: &str) -> String {
    let path = format!("{}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Feature name to "on by default", from Cargo.toml's `[features]` table.
fn manifest_features(manifest: &str) -> BTreeMap<String, bool> {
    let section: Vec<&str> = manifest
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "[features]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let names = |line: &str| -> Vec<String> {
        let list = line.split_once('=').expect("feature line has `=`").1;
        list.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|item| item.trim().trim_matches('"').to_owned())
            .filter(|item| !item.is_empty())
            .collect()
    };
    let defaults = section
        .iter()
        .find(|line| line.starts_with("default"))
        .map(|line| names(line))
        .unwrap_or_default();
    section
        .iter()
        .map(|line| line.split_once('=').expect("feature line has `=`").0.trim())
        .filter(|name| *name != "default")
        .map(|name| (name.to_owned(), defaults.iter().any(|d| d == name)))
        .collect()
}

/// Feature name to "on by default", from the README's `## Feature flags` table.
fn readme_features(readme: &str) -> BTreeMap<String, bool> {
    let rows = readme
        .lines()
        .skip_while(|line| line.trim() != "## Feature flags")
        .skip(1)
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2); // the header and the `|---|` line
    rows.map(|row| {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let default = match cells[2] {
            "yes" => true,
            "no" => false,
            other => panic!("README feature `{name}`: default column is {other:?}, not yes/no"),
        };
        (name, default)
    })
    .collect()
}

#[test]
fn readme_feature_table_matches_cargo_toml() {
    let manifest = manifest_features(&read("Cargo.toml"));
    let readme = readme_features(&read("README.md"));
    assert!(!manifest.is_empty(), "no [features] read from Cargo.toml");
    assert!(!readme.is_empty(), "no feature table read from README.md");
    assert_eq!(
        readme, manifest,
        "README.md's feature table (left) differs from Cargo.toml's [features] (right): name and default column"
    );
}
