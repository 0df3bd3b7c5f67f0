//! Wire types of the Keyward CA online service (filled in by the CA issue).
