//! SQL recognition: what a statement changes, read from its text once and cached.
