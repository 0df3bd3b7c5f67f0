//! The operator workflows (being written).
