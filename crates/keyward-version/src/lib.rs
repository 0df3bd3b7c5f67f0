//! Keyward's version — one for the workspace, the UI and the packages — and the git commit
//! the build comes from. Its own crate, so a new commit rebuilds this and relinks the front
//! ends, and nothing else.

/// The workspace version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit (12 hex digits), or `KEYWARD_COMMIT` as the build was given it, or `unknown`.
pub const COMMIT: &str = env!("KEYWARD_COMMIT");

/// What `--version` and 设置与关于 show: `0.1.0 (1a2b3c4d5e6f)`.
pub const VERSION_LINE: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("KEYWARD_COMMIT"), ")");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_the_version_and_the_commit() {
        assert_eq!(VERSION_LINE, format!("{VERSION} ({COMMIT})"));
        assert!(!COMMIT.is_empty());
    }
}
