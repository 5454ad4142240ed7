//! Session stores: the `SessionStore` trait, its conformance suite and the embedded WAL.
