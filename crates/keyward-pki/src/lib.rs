//! Pure data for Keyward.
