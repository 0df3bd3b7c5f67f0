//! The layering ARCHITECTURE.md names, checked from the manifests: the operator's front ends
//! (the CLI, the desktop shell, the browser bridge) reach the key and the CA service only
//! through keyward-flows. A front end that lists keyward-token or keyward-ca-client in any
//! of its dependency tables — normal, build or dev, for any target, under any name — fails
//! the check. What a front end needs of those crates' types, keyward-flows re-exports.
//!
//! `cargo xtask test` runs [`check`] before anything is built; the unit test below runs it
//! too, so `cargo nextest run -p xtask` catches it alone.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::cargo;

/// The operator's front ends, by package name (one not in the workspace yet is skipped).
pub const FRONT_ENDS: &[&str] = &["keyward-cli", "keyward-desktop", "keyward-bridge"];

/// The crates below keyward-flows that no front end may name.
pub const BELOW_FLOWS: &[&str] = &["keyward-token", "keyward-ca-client"];

/// One dependency that breaks the layering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The front end's package.
    pub front_end: String,
    /// The package it names.
    pub dependency: String,
    /// `normal`, `dev` or `build`.
    pub kind: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} depends on {} ({} dependency): go through keyward-flows instead",
            self.front_end, self.dependency, self.kind
        )
    }
}

/// Every dependency of a front end on a crate below keyward-flows, in the output of
/// `cargo metadata --format-version 1` (with or without `--no-deps`).
pub fn violations(metadata: &Value) -> Vec<Violation> {
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        let id = package["id"].as_str().unwrap_or_default();
        if !FRONT_ENDS.contains(&name) || !members.contains(&id) {
            continue;
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            // `name` is the package's own name, whatever `rename` calls it.
            let dependency = dep["name"].as_str().unwrap_or_default();
            if BELOW_FLOWS.contains(&dependency) {
                out.push(Violation {
                    front_end: name.to_owned(),
                    dependency: dependency.to_owned(),
                    kind: dep["kind"].as_str().unwrap_or("normal").to_owned(),
                });
            }
        }
    }
    out
}

/// The workspace's manifests, as cargo reads them (no dependency resolution, no network).
fn metadata() -> Result<Value> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("reading cargo metadata's output")
}

/// Fails, naming each one, when a front end depends on a crate below keyward-flows.
pub fn check() -> Result<()> {
    let found = violations(&metadata()?);
    if found.is_empty() {
        eprintln!("layers: the front ends reach the key and the CA through keyward-flows only");
        return Ok(());
    }
    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
    bail!(
        "the front ends break the layering:\n  {}",
        list.join("\n  ")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn package(name: &str, deps: Value) -> Value {
        json!({ "name": name, "id": format!("path+file:///w/{name}#0.1.0"), "dependencies": deps })
    }

    fn workspace(packages: Vec<Value>) -> Value {
        let members: Vec<Value> = packages.iter().map(|p| p["id"].clone()).collect();
        json!({ "packages": packages, "workspace_members": members })
    }

    #[test]
    fn every_table_and_every_name_counts() {
        let m = workspace(vec![
            package(
                "keyward-cli",
                json!([
                    { "name": "keyward-flows", "kind": null, "rename": null },
                    { "name": "keyward-token", "kind": null, "rename": "tok" },
                ]),
            ),
            package(
                "keyward-desktop",
                json!([
                    { "name": "keyward-ca-client", "kind": "dev", "rename": null },
                    { "name": "keyward-token", "kind": "build", "rename": null,
                      "target": "cfg(unix)" },
                ]),
            ),
            // Below keyward-flows, depending on each other is the point.
            package(
                "keyward-flows",
                json!([{ "name": "keyward-token", "kind": null, "rename": null }]),
            ),
        ]);
        let found = violations(&m);
        let seen: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|v| (v.front_end.as_str(), v.dependency.as_str(), v.kind.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("keyward-cli", "keyward-token", "normal"),
                ("keyward-desktop", "keyward-ca-client", "dev"),
                ("keyward-desktop", "keyward-token", "build"),
            ]
        );
        assert!(found[0].to_string().contains("keyward-flows instead"));
    }

    #[test]
    fn a_front_end_over_keyward_flows_alone_passes() {
        let m = workspace(vec![package(
            "keyward-bridge",
            json!([
                { "name": "keyward-flows", "kind": null, "rename": null },
                { "name": "keyward-pki", "kind": null, "rename": null },
                { "name": "softhsm-fixtures", "kind": "dev", "rename": null },
            ]),
        )]);
        assert!(violations(&m).is_empty());
    }

    /// The workspace as it is.
    #[test]
    fn the_front_ends_reach_the_key_and_the_ca_through_keyward_flows_only() {
        check().unwrap();
    }
}
