//! Undo logs: the branch undo log model and its encodings in `undo_log.rollback_info`.
