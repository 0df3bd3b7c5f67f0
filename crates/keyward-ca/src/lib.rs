//! The Keyward reference CA online service (filled in by the CA issue).
